// Implements AtomicFile and the checked write, sync and rename steps it is made of.
#include "data/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <c10/util/Exception.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

namespace winnow::data {
namespace {

std::string folder_of(const std::string& path) {
  const auto parent = std::filesystem::path(path).parent_path();
  return parent.empty() ? "." : parent.string();
}

std::string unique_temporary(const std::string& target) {
  static std::atomic<uint64_t> counter{0};
  return target + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
}

}  // namespace

std::string system_error_text(int error) {
  return std::strerror(error);
}

void sync_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  TORCH_CHECK(fd >= 0, "cannot open '", path, "' to flush it to disk: ", system_error_text(errno));
  const int synced = ::fsync(fd);
  const int sync_error = errno;
  const int closed = ::close(fd);
  const int close_error = errno;
  TORCH_CHECK(synced == 0, "cannot flush '", path, "' to disk: ", system_error_text(sync_error));
  TORCH_CHECK(closed == 0, "cannot close '", path, "': ", system_error_text(close_error));
}

void sync_folder(const std::string& folder) {
  const int fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

AtomicFile::AtomicFile(std::string target)
    : target_(std::move(target)), temporary_(unique_temporary(target_)) {}

AtomicFile::~AtomicFile() {
  if (!committed_) std::remove(temporary_.c_str());
}

void AtomicFile::commit() {
  TORCH_CHECK(!committed_, "atomic file: '", target_, "' was already committed");
  sync_file(temporary_);
  TORCH_CHECK(std::rename(temporary_.c_str(), target_.c_str()) == 0, "cannot rename '", temporary_,
              "' to '", target_, "': ", system_error_text(errno));
  committed_ = true;
  sync_folder(folder_of(target_));
}

void write_file_atomically(const std::string& path, const std::string& content) {
  AtomicFile file(path);
  std::FILE* out = std::fopen(file.temporary_path().c_str(), "wb");
  TORCH_CHECK(out != nullptr, "cannot create '", file.temporary_path(),
              "': ", system_error_text(errno));
  const size_t written = std::fwrite(content.data(), 1, content.size(), out);
  const int write_error = errno;
  const bool flushed = std::fflush(out) == 0;
  const int flush_error = errno;
  const bool closed = std::fclose(out) == 0;
  const int close_error = errno;
  TORCH_CHECK(written == content.size(), "cannot write '", path,
              "': ", system_error_text(write_error));
  TORCH_CHECK(flushed, "cannot write '", path, "': ", system_error_text(flush_error));
  TORCH_CHECK(closed, "cannot write '", path, "': ", system_error_text(close_error));
  file.commit();
}

}  // namespace winnow::data
