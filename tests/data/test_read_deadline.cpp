// ReadDeadline: a read that outlives its deadline ends the process with exit code 1 and a message
// naming the file; a read that finishes in time, or WINNOW_READ_TIMEOUT=0, never does.
#include "data/read_deadline.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <thread>

namespace winnow::data {
namespace {

using std::chrono::milliseconds;

// Sets WINNOW_READ_TIMEOUT for one test.
class ReadTimeout {
 public:
  explicit ReadTimeout(const char* seconds) { setenv("WINNOW_READ_TIMEOUT", seconds, 1); }
  ~ReadTimeout() { unsetenv("WINNOW_READ_TIMEOUT"); }
};

TEST(ReadDeadline, TheTimeoutComesFromTheEnvironmentOrTheFileSize) {
  EXPECT_DOUBLE_EQ(read_timeout_seconds("/no/such/file"), 60.0);
  ReadTimeout timeout("2.5");
  EXPECT_DOUBLE_EQ(read_timeout_seconds("/no/such/file"), 2.5);
}

TEST(ReadDeadlineDeathTest, AReadPastItsDeadlineEndsTheProcessNamingTheFile) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  ReadTimeout timeout("0.2");
  EXPECT_EXIT(
      {
        ReadDeadline deadline("/data/stuck.h5");
        std::this_thread::sleep_for(milliseconds(5000));  // a read stuck inside HDF5
      },
      ::testing::ExitedWithCode(1),
      "reading '/data/stuck.h5' has not finished after 0.2 s: the file is probably damaged");
}

TEST(ReadDeadlineDeathTest, AReadThatFinishesInTimeOrWithoutLimitIsLeftAlone) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        {
          ReadTimeout timeout("0.2");
          ReadDeadline deadline("/data/quick.h5");
          std::this_thread::sleep_for(milliseconds(20));
        }
        {
          ReadTimeout timeout("0");
          ReadDeadline deadline("/data/unlimited.h5");
          std::this_thread::sleep_for(milliseconds(400));
        }
        std::this_thread::sleep_for(milliseconds(400));  // past the first deadline
        std::exit(7);
      },
      ::testing::ExitedWithCode(7), "");
}

}  // namespace
}  // namespace winnow::data
