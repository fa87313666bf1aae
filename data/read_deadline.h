// ReadDeadline: a time limit on reading one file. HDF5 1.10 (Debian 12's) loops forever on some
// damaged files — a damaged global heap, for one, read through any variable-length string — and
// no error ever comes back, so a job would hang instead of failing. While a ReadDeadline lives, a
// watchdog thread ends the process with exit code 1 and a message naming the file once the
// deadline passes (under mpirun the launcher then ends the other ranks).
#pragma once

#include <cstdint>
#include <string>

namespace winnow::data {

// Seconds allowed to read `path`: the WINNOW_READ_TIMEOUT environment variable when set (seconds;
// 0 = no limit), else 60 s plus 1 s per 20 MB of the file.
double read_timeout_seconds(const std::string& path);

class ReadDeadline {
 public:
  // Starts the deadline for reading `path` (read_timeout_seconds; no deadline when it is 0).
  explicit ReadDeadline(const std::string& path);
  ~ReadDeadline();
  ReadDeadline(const ReadDeadline&) = delete;
  ReadDeadline& operator=(const ReadDeadline&) = delete;

 private:
  int64_t id_ = -1;  // in the watchdog's table; -1 = no deadline
};

}  // namespace winnow::data
