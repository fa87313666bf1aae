// Multi-rank tests for MpiCommunicator: reductions, broadcast, all_gather, errors, local ranks.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "dist/collective_checks.h"
#include "dist/communicator.h"
#include "dist/launch_environment.h"
#include "dist/mpi_communicator.h"
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

// The mpi communicator without a watchdog (collective_timeout_seconds = 0: MPI_Waitall), created
// on every rank at the same point of the test sequence.
Communicator& without_watchdog() {
  static MpiCommunicator communicator(CommunicatorOptions{0.0, torch::kCPU});
  return communicator;
}

void check_all_reduce(torch::ScalarType dtype, int64_t numel, int64_t period, ReduceOp op,
                      Communicator& communicator = world()) {
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

TEST(MpiCommunicator, WatchdogIsOnByDefaultAndOffAtZero) {
  EXPECT_EQ(dynamic_cast<MpiCommunicator&>(world()).collective_timeout_seconds(), 600.0);
  auto& plain = dynamic_cast<MpiCommunicator&>(without_watchdog());
  EXPECT_EQ(plain.collective_timeout_seconds(), 0.0);
  EXPECT_EQ(plain.watchdog(), nullptr);
}

TEST(MpiCommunicator, WithoutWatchdogEveryCollectiveStillWorks) {
  Communicator& plain = without_watchdog();
  for (int64_t numel : {0, 1, 7919, 7000003}) {
    check_all_reduce(torch::kFloat, numel, /*period=*/1000, ReduceOp::kSum, plain);
  }
  check_all_reduce(torch::kBFloat16, 7919, /*period=*/50, ReduceOp::kAvg, plain);
  torch::Tensor tensor = broadcast_values(plain.rank(), 7919, torch::kLong);  // [7919]
  plain.broadcast(tensor, plain.world_size() - 1);
  EXPECT_TRUE(torch::equal(tensor, broadcast_values(plain.world_size() - 1, 7919, torch::kLong)));
  const torch::Tensor gathered = plain.all_gather(torch::tensor({plain.rank()}));  // [world, 1]
  EXPECT_TRUE(torch::equal(gathered.flatten(), torch::arange(plain.world_size(), torch::kLong)));
  torch::Tensor async = rank_values(plain.rank(), 7919, 1000, torch::kFloat);  // [7919]
  plain.all_reduce_async(async, ReduceOp::kMax)->wait();
  EXPECT_TRUE(torch::equal(
      async, expected_reduction(plain.world_size(), 7919, 1000, ReduceOp::kMax, torch::kFloat)));
  plain.barrier();
}

TEST(MpiCommunicator, AsyncAllReduceEverySizeWaitedOutOfOrder) {
  Communicator& communicator = world();
  const int world_size = communicator.world_size();
  std::vector<int64_t> sizes{0, 1, 7919, 7000003};
  std::vector<torch::Tensor> tensors;
  std::vector<std::unique_ptr<Work>> works;
  for (int64_t numel : sizes) {
    tensors.push_back(rank_values(communicator.rank(), numel, 1000, torch::kFloat));  // [numel]
    works.push_back(communicator.all_reduce_async(tensors.back(), ReduceOp::kSum));
  }
  // A bfloat16 one, widened to float32 inside and rounded back on completion.
  torch::Tensor half = rank_values(communicator.rank(), 7919, 50, torch::kBFloat16);  // [7919]
  auto half_work = communicator.all_reduce_async(half, ReduceOp::kAvg);
  while (!works[2]->test()) {
  }
  EXPECT_TRUE(works[2]->test());  // stays complete
  for (size_t i = works.size(); i-- > 0;) works[i]->wait();
  half_work->wait();
  half_work->wait();  // a second wait is a no-op
  for (size_t i = 0; i < sizes.size(); ++i) {
    EXPECT_TRUE(torch::equal(
        tensors[i], expected_reduction(world_size, sizes[i], 1000, ReduceOp::kSum, torch::kFloat)))
        << "numel " << sizes[i];
  }
  EXPECT_TRUE(torch::equal(
      half, expected_reduction(world_size, 7919, 50, ReduceOp::kAvg, torch::kBFloat16)));
}

TEST(MpiCommunicator, AsyncAllReduceNonContiguousWritesBackOnWait) {
  Communicator& communicator = world();
  torch::Tensor storage =  // [40, 30]
      rank_values(communicator.rank(), 40 * 30, 1000, torch::kDouble).reshape({40, 30});
  torch::Tensor transposed = storage.t();  // [30, 40], non-contiguous view
  auto work = communicator.all_reduce_async(transposed, ReduceOp::kMin);
  work->wait();
  EXPECT_TRUE(torch::equal(storage, expected_reduction(communicator.world_size(), 40 * 30, 1000,
                                                       ReduceOp::kMin, torch::kDouble)
                                        .reshape({40, 30})));
}

TEST(MpiCommunicator, BroadcastAndAllGatherLargerThanABucket) {
  Communicator& communicator = world();
  const int last = communicator.world_size() - 1;
  constexpr int64_t kLarge = 7000003;  // 28 MB of float32, more than a 25 MiB bucket
  torch::Tensor tensor = broadcast_values(communicator.rank(), kLarge, torch::kFloat);  // [kLarge]
  communicator.broadcast(tensor, last);
  EXPECT_TRUE(torch::equal(tensor, broadcast_values(last, kLarge, torch::kFloat)));

  for (int64_t numel : {int64_t{0}, int64_t{1}, int64_t{7919}, kLarge}) {
    const torch::Tensor mine = broadcast_values(communicator.rank(), numel, torch::kFloat);
    const torch::Tensor gathered = communicator.all_gather(mine);  // [world, numel]
    ASSERT_EQ(gathered.sizes(), (std::vector<int64_t>{communicator.world_size(), numel}));
    for (int r = 0; r <= last; ++r) {
      EXPECT_TRUE(torch::equal(gathered[r], broadcast_values(r, numel, torch::kFloat)))
          << "numel " << numel << ", rank " << r;
    }
  }
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
