// JSON-lines metrics and progress output.
#include "train/metrics.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <sstream>

#include <torch/torch.h>

#include "data/atomic_file.h"

namespace winnow::train {

std::string json_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size() + 2);
  for (char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out;
}

void JsonLine::key(const std::string& k) {
  if (!body_.empty()) body_ += ",";
  body_ += "\"" + json_escape(k) + "\":";
}

JsonLine& JsonLine::add(const std::string& k, const std::string& value) {
  key(k);
  body_ += "\"" + json_escape(value) + "\"";
  return *this;
}

JsonLine& JsonLine::add(const std::string& k, double value) {
  key(k);
  if (!std::isfinite(value)) {
    body_ += "null";  // JSON has no NaN/Inf
  } else {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.9g", value);
    body_ += buf;
  }
  return *this;
}

JsonLine& JsonLine::add(const std::string& k, int64_t value) {
  key(k);
  body_ += std::to_string(value);
  return *this;
}

JsonLine& JsonLine::add(const std::string& k, bool value) {
  key(k);
  body_ += value ? "true" : "false";
  return *this;
}

JsonLine& JsonLine::add(const std::string& k, const std::vector<int64_t>& values) {
  key(k);
  body_ += "[";
  for (size_t i = 0; i < values.size(); ++i) body_ += (i ? "," : "") + std::to_string(values[i]);
  body_ += "]";
  return *this;
}

JsonLine& JsonLine::add(const std::string& k, const std::vector<double>& values) {
  key(k);
  body_ += "[";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i) body_ += ",";
    if (!std::isfinite(values[i])) {
      body_ += "null";
    } else {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.9g", values[i]);
      body_ += buf;
    }
  }
  body_ += "]";
  return *this;
}

MetricsLog::MetricsLog(const std::string& path) : path_(path), out_(std::fopen(path.c_str(), "a")) {
  TORCH_CHECK(out_ != nullptr, "metrics: cannot open '", path,
              "' for appending: ", data::system_error_text(errno));
}

void MetricsLog::write(const JsonLine& line) {
  if (!out_) return;
  const std::string text = line.str() + "\n";
  const bool written = std::fwrite(text.data(), 1, text.size(), out_.get()) == text.size() &&
                       std::fflush(out_.get()) == 0;
  TORCH_CHECK(written, "metrics: cannot write to '", path_, "': ", data::system_error_text(errno));
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const auto total = static_cast<int64_t>(seconds + 0.5);
  char buf[32];
  if (total >= 3600) {
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(total / 3600),
                  static_cast<long long>((total % 3600) / 60));
  } else {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(total / 60),
                  static_cast<long long>(total % 60));
  }
  return buf;
}

Progress::Progress(int64_t total_steps, int64_t every, bool enabled, bool live)
    : total_(total_steps),
      every_(every > 0 ? every : 1),
      enabled_(enabled),
      live_(enabled && live),
      start_(std::chrono::steady_clock::now()) {}

void Progress::update(int64_t step, double loss, double throughput, const char* unit, double lr) {
  if (!enabled_) return;
  if (start_step_ < 0) {
    start_step_ = step;
    start_ = std::chrono::steady_clock::now();
  }
  const int64_t done = step + 1;
  const bool last = done == total_;
  if (!live_ && done % every_ != 0 && !last) return;
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const int64_t steps_here = done - start_step_;
  const double eta = steps_here > 0 ? elapsed / static_cast<double>(steps_here) *
                                          static_cast<double>(total_ - done)
                                    : NAN;
  char buf[256];
  std::snprintf(buf, sizeof buf, "step %lld/%lld  loss %.4f  %.1f %s  lr %.2e  elapsed %s  eta %s",
                static_cast<long long>(done), static_cast<long long>(total_), loss, throughput,
                unit, lr, format_duration(elapsed).c_str(), format_duration(eta).c_str());
  if (live_) {
    std::cout << "\r\033[K" << buf << std::flush;
    live_line_ = true;
  } else {
    std::cout << buf << std::endl;
  }
}

void Progress::message(const std::string& text) {
  if (!enabled_) return;
  if (live_line_) std::cout << "\n";
  live_line_ = false;
  std::cout << text << std::endl;
}

void Progress::finish() {
  if (enabled_ && live_line_) std::cout << std::endl;
  live_line_ = false;
}

}  // namespace winnow::train
