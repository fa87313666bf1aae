// Tests what writes do when the disk refuses them, and the text of errors for people:
// AtomicFile / write_file_atomically / h5_write_atomically under a file-size limit (EFBIG stands
// in for a full disk: the same failed write(2), without needing a mount), error_message without
// backtraces (also inside wrapped messages), and escaped_bytes.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <csignal>
#include <filesystem>
#include <fstream>

#include "data/atomic_file.h"
#include "data/error_text.h"
#include "data/h5_file.h"
#include "tests/data/test_support.h"

namespace winnow::data {
namespace {

using testing::error_of;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::TempDir;

// While alive, files of this process cannot grow past `bytes` (writes fail with EFBIG instead of
// raising SIGXFSZ).
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    previous_signal_ = std::signal(SIGXFSZ, SIG_IGN);
    getrlimit(RLIMIT_FSIZE, &previous_);
    rlimit limit = previous_;
    limit.rlim_cur = bytes;
    EXPECT_EQ(setrlimit(RLIMIT_FSIZE, &limit), 0);
  }
  ~FileSizeLimit() {
    setrlimit(RLIMIT_FSIZE, &previous_);
    std::signal(SIGXFSZ, previous_signal_);
  }

 private:
  rlimit previous_{};
  void (*previous_signal_)(int) = nullptr;
};

int files_in(const TempDir& dir) {
  int count = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir.path()))
    ++count;
  return count;
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(WriteFaults, TextFileTooLargeKeepsTheOldFileAndNoTemporary) {
  TempDir dir;
  const std::string path = dir.file("summary.json");
  write_file_atomically(path, "old\n");
  std::string error;
  {
    FileSizeLimit limit(64 * 1024);
    error = error_of([&] { write_file_atomically(path, std::string(1 << 20, 'x')); });
  }
  EXPECT_THAT(error, HasSubstr("cannot write '" + path + "'"));
  EXPECT_THAT(error, HasSubstr("File too large"));
  EXPECT_EQ(read_all(path), "old\n");
  EXPECT_EQ(files_in(dir), 1) << "the temporary file must be removed";
}

TEST(WriteFaults, TextFileInAMissingFolderNamesIt) {
  TempDir dir;
  const std::string path = dir.file("no/such/folder/config.ini");
  EXPECT_THAT(error_of([&] { write_file_atomically(path, "x"); }),
              HasSubstr("No such file or directory"));
  EXPECT_THAT(error_of([&] { write_file_atomically(path, "x"); }), HasSubstr(path));
}

TEST(WriteFaults, Hdf5FileTooLargeKeepsTheOldFileAndNoTemporary) {
  TempDir dir;
  const std::string path = dir.file("data.h5");
  h5_write_atomically(path, [](H5File& file) { file.set_attr_int("/", "version", 1); });
  std::string error;
  {
    FileSizeLimit limit(256 * 1024);
    error = error_of([&] {
      h5_write_atomically(path, [](H5File& file) {
        file.set_attr_int("/", "version", 2);
        for (int i = 0; i < 8; ++i)  // 8 x 512 kB, uncompressed
          file.write_tensor("d" + std::to_string(i), torch::ones({128 * 1024}),
                            H5WriteOptions{0, false, 1 << 20});
      });
    });
  }
  EXPECT_THAT(error, HasSubstr("File too large"));
  EXPECT_THAT(error, Not(HasSubstr("frame #")));
  EXPECT_EQ(H5File(path, H5File::Mode::kRead).attr_int("/", "version"), 1);
  EXPECT_EQ(files_in(dir), 1) << "the temporary file must be removed";
  // (A file whose close failed would stay in HDF5's table: winnow turns off HDF5's exit handler,
  // which crashed on it, so this test binary must also exit cleanly.)
  h5_write_atomically(path, [](H5File& file) { file.set_attr_int("/", "version", 3); });
  EXPECT_EQ(H5File(path, H5File::Mode::kRead).attr_int("/", "version"), 3);
}

TEST(ErrorText, TorchErrorsLoseTheirBacktrace) {
  try {
    TORCH_CHECK(false, "expected 3 heads, got 4");
  } catch (const c10::Error& e) {
    ASSERT_THAT(std::string(e.what()), HasSubstr("Exception raised from"));  // LibTorch's
    EXPECT_EQ(error_message(e), "expected 3 heads, got 4");
  }
}

TEST(ErrorText, AWrappedErrorLosesTheInnerBacktraceToo) {
  try {
    try {
      TORCH_CHECK(false, "h5_file: cannot write dataset: No space left on device");
    } catch (const std::exception& inner) {
      // The mistake the issue found: what() of the inner error, with its backtrace, wrapped.
      TORCH_CHECK(false, "saving the checkpoint of step 4 failed: ", inner.what(),
                  " (the previous checkpoint is intact)");
    }
  } catch (const c10::Error& outer) {
    const std::string message = error_message(outer);
    EXPECT_THAT(message, HasSubstr("saving the checkpoint of step 4 failed: h5_file: cannot "
                                   "write dataset: No space left on device"));
    EXPECT_THAT(message, Not(HasSubstr("frame #")));
    EXPECT_THAT(message, Not(HasSubstr("Exception raised from")));
  }
  const std::runtime_error plain(
      "outer: inner\nException raised from f at x.cpp:1 (most recent call first):\nframe #0: "
      "f() + 0x1\nframe #1: g() + 0x2\n\ncontinued");
  EXPECT_EQ(error_message(plain), "outer: inner\ncontinued");
}

TEST(ErrorText, BytesFromFilesAreEscaped) {
  EXPECT_EQ(escaped_bytes("winnow.tokens"), "winnow.tokens");
  EXPECT_EQ(escaped_bytes(std::string("a\x1b[2J\x07\n\0b", 9)), "a\\x1b[2J\\x07\\x0a\\x00b");
  EXPECT_EQ(escaped_bytes("quote' back\\slash"), "quote\\' back\\\\slash");
  EXPECT_EQ(escaped_bytes("\xff\xfe"), "\\xff\\xfe");
  EXPECT_EQ(escaped_bytes(std::string(100, 'x'), 4), "xxxx...");
}

}  // namespace
}  // namespace winnow::data
