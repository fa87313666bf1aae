// The nccl backend at world size 1 on CUDA tensors (needs a GPU and a CUDA LibTorch): reductions,
// broadcast, all_gather, async all_reduce, and that CPU tensors are refused.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "dist/nccl_communicator.h"

namespace winnow::dist {
namespace {

std::shared_ptr<NcclCommunicator> communicator() {
  static auto shared = std::make_shared<NcclCommunicator>();
  return shared;
}

#define SKIP_WITHOUT_GPU()                                                       \
  do {                                                                           \
    std::string why;                                                             \
    if (cuda_device_count(&why) == 0) GTEST_SKIP() << "no CUDA device: " << why; \
  } while (false)

torch::Device device() {
  return torch::Device(torch::kCUDA, communicator()->device_index());
}

TEST(NcclCommunicator, BootstrapsAtWorldSizeOne) {
  SKIP_WITHOUT_GPU();
  EXPECT_EQ(communicator()->backend_name(), "nccl");
  EXPECT_EQ(communicator()->world_size(), 1);
  EXPECT_EQ(communicator()->rank(), 0);
  EXPECT_EQ(communicator()->device_index(), communicator()->local_rank() % cuda_device_count());
  communicator()->barrier();
}

TEST(NcclCommunicator, AllReduceEveryDtypeOpAndSize) {
  SKIP_WITHOUT_GPU();
  for (auto dtype : {torch::kFloat, torch::kDouble, torch::kBFloat16, torch::kHalf, torch::kInt,
                     torch::kLong, torch::kShort, torch::kByte}) {
    for (int64_t numel : {0, 1, 7919, 7000003}) {
      for (auto op : {ReduceOp::kSum, ReduceOp::kAvg, ReduceOp::kMax, ReduceOp::kMin}) {
        if (op == ReduceOp::kAvg && !c10::isFloatingType(dtype)) continue;
        const torch::Tensor original =  // [numel], exact in every dtype
            torch::arange(numel, torch::kLong).remainder(50).to(dtype).to(device());
        torch::Tensor tensor = original.clone();
        communicator()->all_reduce(tensor, op);
        EXPECT_TRUE(torch::equal(tensor.cpu(), original.cpu()))
            << dtype << " numel " << numel << " op " << static_cast<int>(op);
      }
    }
  }
}

TEST(NcclCommunicator, AllReduceBoolAndNonContiguous) {
  SKIP_WITHOUT_GPU();
  torch::Tensor flags = torch::tensor({true, false, true}, torch::kBool).to(device());  // [3]
  communicator()->all_reduce(flags, ReduceOp::kMax);
  EXPECT_TRUE(torch::equal(flags.cpu(), torch::tensor({true, false, true}, torch::kBool)));
  torch::Tensor matrix = torch::arange(12, torch::kFloat).reshape({3, 4}).to(device());  // [3, 4]
  torch::Tensor transposed = matrix.t();  // [4, 3], non-contiguous
  communicator()->all_reduce(transposed, ReduceOp::kSum);
  EXPECT_TRUE(torch::equal(matrix.cpu(), torch::arange(12, torch::kFloat).reshape({3, 4})));
}

TEST(NcclCommunicator, AsyncAllReduceCompletesOnWait) {
  SKIP_WITHOUT_GPU();
  torch::Tensor tensor = torch::full({1 << 20}, 3.0f, torch::TensorOptions(device()));  // [1 Mi]
  auto work = communicator()->all_reduce_async(tensor, ReduceOp::kAvg);
  work->wait();
  EXPECT_TRUE(work->test());
  EXPECT_EQ(tensor.sum().item<double>(), 3.0 * (1 << 20));
}

TEST(NcclCommunicator, BroadcastAndAllGather) {
  SKIP_WITHOUT_GPU();
  for (int64_t numel : {0, 1, 7919}) {
    const torch::Tensor values = torch::arange(numel, torch::kLong).to(device());  // [numel]
    torch::Tensor broadcast = values.clone();
    communicator()->broadcast(broadcast, 0);
    EXPECT_TRUE(torch::equal(broadcast.cpu(), values.cpu()));
    const torch::Tensor gathered = communicator()->all_gather(values);  // [1, numel]
    ASSERT_EQ(gathered.sizes(), (std::vector<int64_t>{1, numel}));
    EXPECT_TRUE(torch::equal(gathered[0].cpu(), values.cpu()));
  }
}

TEST(NcclCommunicator, RefusesCpuTensors) {
  SKIP_WITHOUT_GPU();
  torch::Tensor cpu = torch::ones({3});
  try {
    communicator()->all_reduce(cpu);
    FAIL() << "expected an error";
  } catch (const c10::Error& error) {
    EXPECT_NE(std::string(error.what()).find("expected a tensor on cuda:"), std::string::npos)
        << error.what();
  }
}

}  // namespace
}  // namespace winnow::dist
