// Helpers shared by the data tests: TempDir (a fresh directory under the system temp folder,
// removed with everything in it) and error_of (the message of the error an action throws).
#pragma once

#include <c10/util/Exception.h>

#include <filesystem>
#include <functional>
#include <random>
#include <string>

namespace winnow::data::testing {

class TempDir {
 public:
  TempDir() {
    std::random_device entropy;
    path_ = std::filesystem::temp_directory_path() /
            ("winnow-data-test-" + std::to_string(entropy()) + std::to_string(entropy()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  // Path of `name` inside the directory.
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// The message (without backtrace) of the c10::Error `action` throws, or "<no error>".
inline std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const c10::Error& e) {
    return e.what_without_backtrace();
  }
  return "<no error>";
}

}  // namespace winnow::data::testing
