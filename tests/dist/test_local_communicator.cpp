// Tests for LocalCommunicator: world-size-1 semantics and the argument checks it shares with mpi.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "dist/collective_checks.h"
#include "dist/local_communicator.h"

namespace winnow::dist {
namespace {

TEST(LocalCommunicator, ReportsWorldOfOne) {
  LocalCommunicator communicator;
  EXPECT_EQ(communicator.rank(), 0);
  EXPECT_EQ(communicator.world_size(), 1);
  EXPECT_EQ(communicator.local_rank(), 0);
  EXPECT_EQ(communicator.local_size(), 1);
  EXPECT_TRUE(communicator.is_root());
  EXPECT_EQ(communicator.backend_name(), "local");
}

TEST(LocalCommunicator, AllReduceIsIdentityForEveryOp) {
  LocalCommunicator communicator;
  const torch::Tensor original = torch::arange(12, torch::kFloat).reshape({3, 4});
  for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kAvg, ReduceOp::kMax, ReduceOp::kMin}) {
    torch::Tensor tensor = original.clone();
    communicator.all_reduce(tensor, op);
    EXPECT_TRUE(torch::equal(tensor, original)) << reduce_op_name(op);
  }
  torch::Tensor integers = torch::arange(5, torch::kLong);
  communicator.all_reduce(integers, ReduceOp::kSum);
  EXPECT_TRUE(torch::equal(integers, torch::arange(5, torch::kLong)));
  torch::Tensor empty = torch::empty({0}, torch::kDouble);
  communicator.all_reduce(empty, ReduceOp::kAvg);
  EXPECT_EQ(empty.numel(), 0);
}

TEST(LocalCommunicator, RejectsWhatMpiRejects) {
  LocalCommunicator communicator;
  torch::Tensor integers = torch::ones({3}, torch::kInt);
  EXPECT_THROW(communicator.all_reduce(integers, ReduceOp::kAvg), c10::Error);
  torch::Tensor flags = torch::ones({3}, torch::kBool);
  EXPECT_THROW(communicator.all_reduce(flags, ReduceOp::kSum), c10::Error);
  EXPECT_NO_THROW(communicator.all_reduce(flags, ReduceOp::kMax));
  torch::Tensor complex = torch::ones({3}, torch::kComplexFloat);
  EXPECT_THROW(communicator.all_reduce(complex, ReduceOp::kSum), c10::Error);
  torch::Tensor undefined;
  EXPECT_THROW(communicator.all_reduce(undefined, ReduceOp::kSum), c10::Error);
  torch::Tensor tensor = torch::ones({2});
  EXPECT_THROW(communicator.broadcast(tensor, 1), c10::Error);
}

TEST(LocalCommunicator, IntegerAverageMessageSaysWhatWasExpected) {
  LocalCommunicator communicator;
  torch::Tensor integers = torch::ones({3}, torch::kLong);
  try {
    communicator.all_reduce(integers, ReduceOp::kAvg);
    FAIL() << "expected an error";
  } catch (const c10::Error& error) {
    EXPECT_NE(std::string(error.what()).find("expected a floating dtype"), std::string::npos)
        << error.what();
  }
}

TEST(LocalCommunicator, BroadcastLeavesTensorAndAllGatherStacksACopy) {
  LocalCommunicator communicator;
  torch::Tensor tensor = torch::randn({2, 3});
  const torch::Tensor before = tensor.clone();
  communicator.broadcast(tensor, 0);
  EXPECT_TRUE(torch::equal(tensor, before));

  const torch::Tensor gathered = communicator.all_gather(tensor);  // [1, 2, 3]
  EXPECT_EQ(gathered.sizes(), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_TRUE(torch::equal(gathered[0], tensor));
  gathered.fill_(7);  // a copy: the input is not aliased
  EXPECT_TRUE(torch::equal(tensor, before));
  communicator.barrier();
}

}  // namespace
}  // namespace winnow::dist
