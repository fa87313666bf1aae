// Atomic file replacement, with every step checked: the content goes to a temporary file next to
// the target, which is flushed to disk and renamed over the target only when all of it was
// written. Any failure (disk full, I/O error, quota) throws an error naming the file and the
// system's reason, removes the temporary file and leaves the target as it was.
#pragma once

#include <string>

namespace winnow::data {

// A temporary name next to `target`, removed when the object is destroyed unless commit() renamed
// it over the target. Use: write temporary_path(), then commit().
class AtomicFile {
 public:
  explicit AtomicFile(std::string target);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  const std::string& target() const { return target_; }
  // "<target>.tmp.<pid>.<n>": unique per process and object; matches the "*.tmp.*" leftovers
  // that checkpoint folders clean up.
  const std::string& temporary_path() const { return temporary_; }
  // fsyncs the temporary file, renames it over the target and fsyncs the folder (best effort:
  // some file systems refuse fsync on folders). Throws on failure (the temporary is removed).
  void commit();

 private:
  std::string target_, temporary_;
  bool committed_ = false;
};

// Writes `content` to `path` atomically (an AtomicFile, every write checked).
void write_file_atomically(const std::string& path, const std::string& content);

// Flushes a written file to disk; throws naming the file and the reason on failure.
void sync_file(const std::string& path);
// Best effort: makes a rename or creation inside `folder` durable.
void sync_folder(const std::string& folder);

// strerror(error) as a std::string ("No space left on device").
std::string system_error_text(int error);

}  // namespace winnow::data
