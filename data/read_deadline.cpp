// Implements ReadDeadline: one watchdog thread, started on first use, sleeping until the earliest
// deadline of the files being read.
#include "data/read_deadline.h"

#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "data/error_text.h"

namespace winnow::data {
namespace {

using Clock = std::chrono::steady_clock;

struct Reading {
  Clock::time_point deadline;
  std::string message;  // printed when the deadline passes
};

class Watchdog {
 public:
  static Watchdog& instance() {
    static Watchdog* watchdog = new Watchdog();  // never destroyed: the thread outlives main()
    return *watchdog;
  }

  int64_t add(Reading reading) {
    std::lock_guard<std::mutex> lock(mutex_);
    const int64_t id = next_id_++;
    readings_.emplace(id, std::move(reading));
    if (!thread_.joinable()) thread_ = std::thread([this] { watch(); });
    changed_.notify_one();
    return id;
  }

  void remove(int64_t id) {
    std::lock_guard<std::mutex> lock(mutex_);
    readings_.erase(id);
  }

 private:
  void watch() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      if (readings_.empty()) {
        changed_.wait(lock);
        continue;
      }
      auto earliest = readings_.begin();
      for (auto it = readings_.begin(); it != readings_.end(); ++it)
        if (it->second.deadline < earliest->second.deadline) earliest = it;
      // A copy: the entry may be removed while the wait has the lock released.
      const Clock::time_point deadline = earliest->second.deadline;
      if (Clock::now() < deadline) {
        changed_.wait_until(lock, deadline);
        continue;
      }
      // The reading thread is stuck inside HDF5 (holding its global lock): no HDF5 call, no
      // unwinding; write the message and end the process.
      const std::string& message = earliest->second.message;
      ssize_t ignored = ::write(STDERR_FILENO, message.data(), message.size());
      (void)ignored;
      std::_Exit(1);
    }
  }

  std::mutex mutex_;
  std::condition_variable changed_;
  std::map<int64_t, Reading> readings_;
  int64_t next_id_ = 0;
  std::thread thread_;
};

}  // namespace

double read_timeout_seconds(const std::string& path) {
  if (const char* text = std::getenv("WINNOW_READ_TIMEOUT")) {
    char* end = nullptr;
    const double seconds = std::strtod(text, &end);
    if (end != text && *end == '\0' && seconds >= 0) return seconds;
  }
  std::error_code ec;
  const auto bytes = std::filesystem::file_size(path, ec);
  return 60.0 + (ec ? 0.0 : static_cast<double>(bytes) / 20e6);
}

ReadDeadline::ReadDeadline(const std::string& path) {
  const double seconds = read_timeout_seconds(path);
  if (seconds <= 0) return;
  std::ostringstream message;
  message << "\nwinnow: error: reading '" << escaped_bytes(path, 256) << "' has not finished after "
          << seconds
          << " s: the file is probably damaged (HDF5 can loop forever on some damaged files). "
             "Giving up. (WINNOW_READ_TIMEOUT=SECONDS allows more time; 0: no limit)\n";
  Reading reading;
  reading.deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                        std::chrono::duration<double>(seconds));
  reading.message = message.str();
  id_ = Watchdog::instance().add(std::move(reading));
}

ReadDeadline::~ReadDeadline() {
  if (id_ >= 0) Watchdog::instance().remove(id_);
}

}  // namespace winnow::data
