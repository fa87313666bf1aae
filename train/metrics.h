// Metrics output: one JSON object per line in <run_dir>/metrics.jsonl, and human progress lines
// (a live line on a terminal, a plain line every N steps in logs).
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace winnow::train {

// A flat JSON object built field by field: {"event":"step","step":3,"loss":2.1,...}.
class JsonLine {
 public:
  JsonLine& add(const std::string& key, const std::string& value);
  JsonLine& add(const std::string& key, const char* value) { return add(key, std::string(value)); }
  JsonLine& add(const std::string& key, double value);
  JsonLine& add(const std::string& key, int64_t value);
  JsonLine& add(const std::string& key, int value) { return add(key, static_cast<int64_t>(value)); }
  JsonLine& add(const std::string& key, bool value);
  JsonLine& add(const std::string& key, const std::vector<int64_t>& values);
  JsonLine& add(const std::string& key, const std::vector<double>& values);  // NaN -> null
  std::string str() const { return "{" + body_ + "}"; }

 private:
  void key(const std::string& k);
  std::string body_;
};

std::string json_escape(const std::string& text);

// Appends JSON lines to a file, flushing each line so a crash loses nothing already logged.
// A failed write (disk full, I/O error) throws an error naming the file and the system's reason.
// A default-constructed log (non-root ranks) writes nothing.
class MetricsLog {
 public:
  MetricsLog() = default;
  explicit MetricsLog(const std::string& path);
  void write(const JsonLine& line);
  bool enabled() const { return out_ != nullptr; }
  const std::string& path() const { return path_; }

 private:
  struct Closer {
    void operator()(std::FILE* file) const { std::fclose(file); }
  };
  std::string path_;
  std::unique_ptr<std::FILE, Closer> out_;
};

// Progress on stdout: with `live` (a terminal) one line rewritten in place; otherwise a plain
// line every `every` steps.
class Progress {
 public:
  Progress(int64_t total_steps, int64_t every, bool enabled, bool live);
  void update(int64_t step, double loss, double throughput, const char* unit, double lr);
  void message(const std::string& text);  // a full line (ends the live line first)
  void finish();

 private:
  int64_t total_, every_;
  bool enabled_, live_, live_line_ = false;
  std::chrono::steady_clock::time_point start_;
  int64_t start_step_ = -1;
};

std::string format_duration(double seconds);

}  // namespace winnow::train
