// Multi-rank tests for MpiCommunicator: reductions, broadcast, all_gather, errors, local ranks.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "dist/collective_checks.h"
#include "dist/communicator.h"
#include "dist/launch_environment.h"
#include "tests/dist/mpi_test_env.h"

namespace winnow::dist {
namespace {

using testing::world;

// Rank r holds (r + 1) + (i mod period) at index i; `period` keeps every result exact in `dtype`.
torch::Tensor rank_values(int rank, int64_t numel, int64_t period, torch::ScalarType dtype) {
  return (torch::arange(numel, torch::kLong).remainder(period) + (rank + 1)).to(dtype);  // [numel]
}

torch::Tensor expected_reduction(int world_size, int64_t numel, int64_t period, ReduceOp op,
                                 torch::ScalarType dtype) {
  const torch::Tensor base =
      torch::arange(numel, torch::kLong).remainder(period).to(torch::kDouble);
  const double ranks = world_size;
  switch (op) {
    case ReduceOp::kSum:
      return (base * ranks + ranks * (ranks + 1) / 2).to(dtype);
    case ReduceOp::kAvg:
      return (base + (ranks + 1) / 2).to(dtype);
    case ReduceOp::kMax:
      return (base + ranks).to(dtype);
    case ReduceOp::kMin:
      return (base + 1).to(dtype);
  }
  return {};
}

// Differs between ranks in every dtype, bool included.
torch::Tensor broadcast_values(int rank, int64_t numel, torch::ScalarType dtype) {
  return (torch::arange(numel, torch::kLong) * 7 + 3 * rank).remainder(5).to(dtype);  // [numel]
}

void check_all_reduce(torch::ScalarType dtype, int64_t numel, int64_t period, ReduceOp op) {
  Communicator& communicator = world();
  torch::Tensor tensor = rank_values(communicator.rank(), numel, period, dtype);  // [numel]
  communicator.all_reduce(tensor, op);
  const torch::Tensor expected =
      expected_reduction(communicator.world_size(), numel, period, op, dtype);
  ASSERT_EQ(tensor.scalar_type(), dtype);
  ASSERT_EQ(tensor.numel(), numel);
  EXPECT_TRUE(torch::equal(tensor, expected))
      << "dtype " << dtype << ", numel " << numel << ", op " << reduce_op_name(op);
}

TEST(MpiCommunicator, ReportsRanksAndLocalRanks) {
  Communicator& communicator = world();
  EXPECT_EQ(communicator.backend_name(), "mpi");
  EXPECT_GE(communicator.rank(), 0);
  EXPECT_LT(communicator.rank(), communicator.world_size());
  // All test ranks run on this one machine.
  EXPECT_EQ(communicator.local_rank(), communicator.rank());
  EXPECT_EQ(communicator.local_size(), communicator.world_size());
  const torch::Tensor ranks = communicator.all_gather(torch::tensor({communicator.rank()}));
  EXPECT_TRUE(torch::equal(ranks.flatten(), torch::arange(communicator.world_size(), torch::kInt)));
}

TEST(MpiCommunicator, AllReduceFloatingDtypesEveryOpAndSize) {
  for (torch::ScalarType dtype : {torch::kFloat, torch::kDouble}) {
    for (int64_t numel : {0, 1, 7919}) {
      for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kAvg, ReduceOp::kMax, ReduceOp::kMin}) {
        check_all_reduce(dtype, numel, /*period=*/1000, op);
      }
    }
  }
}

TEST(MpiCommunicator, AllReduceIntegerDtypes) {
  for (torch::ScalarType dtype : {torch::kInt, torch::kLong, torch::kByte, torch::kChar}) {
    for (int64_t numel : {0, 1, 7919}) {
      for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kMax, ReduceOp::kMin}) {
        check_all_reduce(dtype, numel, /*period=*/30, op);
      }
    }
  }
}

TEST(MpiCommunicator, AllReduceHalfPrecisionGoesThroughFloat32) {
  for (torch::ScalarType dtype : {torch::kBFloat16, torch::kHalf}) {
    for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kAvg, ReduceOp::kMax, ReduceOp::kMin}) {
      check_all_reduce(dtype, 7919, /*period=*/50, op);
    }
  }
}

TEST(MpiCommunicator, AllReduceLargerThanABucket) {
  // 7,000,003 floats = 28 MB, more than the default 25 MiB bucket.
  check_all_reduce(torch::kFloat, 7000003, /*period=*/1000, ReduceOp::kSum);
}

TEST(MpiCommunicator, AllReduceNonContiguousWritesBack) {
  Communicator& communicator = world();
  torch::Tensor storage =
      rank_values(communicator.rank(), 40 * 30, 1000, torch::kFloat).reshape({40, 30});  // [40, 30]
  torch::Tensor transposed = storage.t();  // [30, 40], non-contiguous view
  ASSERT_FALSE(transposed.is_contiguous());
  communicator.all_reduce(transposed, ReduceOp::kMax);
  const torch::Tensor expected =
      expected_reduction(communicator.world_size(), 40 * 30, 1000, ReduceOp::kMax, torch::kFloat)
          .reshape({40, 30});
  EXPECT_TRUE(torch::equal(storage, expected));
}

TEST(MpiCommunicator, AllReduceBoolIsLogicalOrAndAnd) {
  Communicator& communicator = world();
  const int world_size = communicator.world_size();
  torch::Tensor any = torch::zeros({world_size + 1}, torch::kBool);  // [world + 1]
  any[communicator.rank()] = true;
  torch::Tensor all = any.clone();  // [world + 1]
  communicator.all_reduce(any, ReduceOp::kMax);
  communicator.all_reduce(all, ReduceOp::kMin);
  for (int i = 0; i < world_size; ++i) EXPECT_TRUE(any[i].item<bool>()) << i;
  EXPECT_FALSE(any[world_size].item<bool>());
  EXPECT_EQ(all[0].item<bool>(), world_size == 1);
}

TEST(MpiCommunicator, BroadcastFromRootZeroAndLastRank) {
  Communicator& communicator = world();
  const int last = communicator.world_size() - 1;
  for (int root : {0, last}) {
    for (torch::ScalarType dtype : {torch::kFloat, torch::kLong, torch::kBFloat16, torch::kBool}) {
      for (int64_t numel : {0, 1, 7919}) {
        torch::Tensor tensor = broadcast_values(communicator.rank(), numel, dtype);  // [numel]
        communicator.broadcast(tensor, root);
        EXPECT_TRUE(torch::equal(tensor, broadcast_values(root, numel, dtype)))
            << "root " << root << ", dtype " << dtype << ", numel " << numel;
      }
    }
    torch::Tensor matrix = torch::full({6, 4}, communicator.rank(), torch::kDouble);  // [6, 4]
    torch::Tensor column = matrix.select(1, 2);  // [6], stride 4
    communicator.broadcast(column, root);
    EXPECT_TRUE(torch::equal(column, torch::full({6}, root, torch::kDouble)));
    EXPECT_EQ(matrix[0][0].item<double>(), communicator.rank());  // only the view was written
  }
}

TEST(MpiCommunicator, AllGatherStacksInRankOrder) {
  Communicator& communicator = world();
  const int world_size = communicator.world_size();
  const torch::Tensor mine =  // [2, 3]
      torch::arange(6, torch::kFloat).reshape({2, 3}) + 10 * communicator.rank();
  const torch::Tensor gathered = communicator.all_gather(mine);  // [world, 2, 3]
  ASSERT_EQ(gathered.sizes(), (std::vector<int64_t>{world_size, 2, 3}));
  for (int r = 0; r < world_size; ++r) {
    EXPECT_TRUE(
        torch::equal(gathered[r], torch::arange(6, torch::kFloat).reshape({2, 3}) + 10 * r));
  }
  const torch::Tensor empty = communicator.all_gather(torch::empty({0, 3}, torch::kLong));
  EXPECT_EQ(empty.sizes(), (std::vector<int64_t>{world_size, 0, 3}));
  const torch::Tensor strided = communicator.all_gather(mine.t());  // [world, 3, 2]
  EXPECT_TRUE(torch::equal(strided[communicator.rank()], mine.t()));
}

TEST(MpiCommunicator, RejectsBadArgumentsOnEveryRankWithoutCommunicating) {
  Communicator& communicator = world();
  torch::Tensor meta = torch::empty({4}, torch::TensorOptions().device(torch::kMeta));
  try {
    communicator.all_reduce(meta, ReduceOp::kSum);
    ADD_FAILURE() << "expected an error for a non-CPU tensor";
  } catch (const c10::Error& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("expected a CPU tensor"), std::string::npos) << message;
    EXPECT_NE(message.find("nccl"), std::string::npos) << message;
  }
  torch::Tensor integers = torch::ones({3}, torch::kInt);
  EXPECT_THROW(communicator.all_reduce(integers, ReduceOp::kAvg), c10::Error);
  torch::Tensor tensor = torch::ones({3});
  EXPECT_THROW(communicator.broadcast(tensor, communicator.world_size()), c10::Error);
  EXPECT_THROW(communicator.broadcast(tensor, -1), c10::Error);
  communicator.barrier();  // still in lockstep
}

TEST(MakeCommunicatorUnderMpirun, AutoPicksMpi) {
  EXPECT_TRUE(started_by_mpi_launcher());
  const auto communicator = make_communicator("auto");
  EXPECT_EQ(communicator->backend_name(), "mpi");
  EXPECT_EQ(communicator->world_size(), world().world_size());
  EXPECT_EQ(communicator->rank(), world().rank());
  communicator->barrier();
}

}  // namespace
}  // namespace winnow::dist
