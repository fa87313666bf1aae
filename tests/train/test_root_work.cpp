// run_on_root and run_on_every_rank: a failure becomes the same dist::AgreedError on every rank,
// with the reason and no C++ backtrace; success throws nothing. (2-rank behaviour:
// disk_full_e2e.sh for run_on_root, damaged_data_e2e.sh for run_on_every_rank.)
#include "train/root_work.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "dist/agreed_error.h"
#include "dist/local_communicator.h"

namespace winnow::train {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(RunOnRoot, SuccessThrowsNothing) {
  dist::LocalCommunicator comm;
  bool ran = false;
  run_on_root(
      comm, [&] { ran = true; }, [](const std::string& reason) { return reason; });
  EXPECT_TRUE(ran);
}

TEST(RunOnRoot, AFailureIsAnAgreedErrorWithTheReasonAndNoBacktrace) {
  dist::LocalCommunicator comm;
  try {
    run_on_root(
        comm, [] { TORCH_CHECK(false, "cannot write 'x.h5': No space left on device"); },
        [](const std::string& reason) { return "saving x failed: " + reason + " (intact)"; });
    ADD_FAILURE() << "no error";
  } catch (const dist::AgreedError& e) {
    const std::string message = e.what();
    EXPECT_EQ(message, "saving x failed: cannot write 'x.h5': No space left on device (intact)");
    EXPECT_THAT(message, Not(HasSubstr("frame #")));
  }
}

TEST(RunOnEveryRank, SuccessThrowsNothing) {
  dist::LocalCommunicator comm;
  bool ran = false;
  run_on_every_rank(
      comm, [&] { ran = true; }, [](const std::string& reason) { return reason; });
  EXPECT_TRUE(ran);
}

TEST(RunOnEveryRank, AFailureIsAnAgreedErrorWithTheReasonAndNoBacktrace) {
  dist::LocalCommunicator comm;
  try {
    run_on_every_rank(
        comm, [] { TORCH_CHECK(false, "cannot read tokens [0, 8) of 16"); },
        [](const std::string& reason) { return "cannot load the data: " + reason; });
    ADD_FAILURE() << "no error";
  } catch (const dist::AgreedError& e) {
    const std::string message = e.what();
    EXPECT_EQ(message, "cannot load the data: cannot read tokens [0, 8) of 16");
    EXPECT_THAT(message, Not(HasSubstr("frame #")));
  }
}

}  // namespace
}  // namespace winnow::train
