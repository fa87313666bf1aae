// The counting CPU allocator: exact bytes of known allocations, scopes and threads, c10's raw
// interface, and the peak activation memory a training step reports.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <c10/core/Allocator.h>

#include <thread>

#include "compression/planner.h"
#include "dist/communicator.h"
#include "tests/train/tiny_models.h"
#include "train/allocation_counter.h"
#include "train/gpt.h"
#include "train/trainer.h"

using namespace winnow;
using namespace winnow::train;

TEST(AllocationCounter, EmptyOfNFloatsRaisesThePeakByExactlyTheirBytes) {
  auto& counter = AllocationCounter::instance();
  PeakAllocation peak;
  const int64_t before = counter.current_bytes();
  {
    const auto floats = torch::empty({1000}, torch::kFloat32);
    EXPECT_EQ(counter.current_bytes() - before, 4000);
    const auto doubles = torch::empty({10, 10}, torch::kFloat64);
    EXPECT_EQ(counter.current_bytes() - before, 4800);
  }
  EXPECT_EQ(counter.current_bytes(), before);  // freeing returns to where it was
  EXPECT_EQ(peak.bytes(), 4800);
  {
    const auto again = torch::empty({100}, torch::kFloat32);  // below the peak: unchanged
  }
  EXPECT_EQ(peak.bytes(), 4800);
}

TEST(AllocationCounter, CountsOnlyInsideAScopeOnItsThread) {
  auto& counter = AllocationCounter::instance();
  const int64_t before = counter.current_bytes();
  const auto outside = torch::empty({256}, torch::kFloat32);
  EXPECT_EQ(counter.current_bytes(), before);
  CountAllocations counting;
  torch::Tensor elsewhere;
  std::thread([&] { elsewhere = torch::empty({256}, torch::kFloat32); }).join();
  EXPECT_EQ(counter.current_bytes(), before);
  auto here = torch::empty({256}, torch::kFloat32);
  EXPECT_EQ(counter.current_bytes(), before + 1024);
  // A counted buffer freed on another thread is subtracted there.
  std::thread([moved = std::move(here)]() mutable { moved.reset(); }).join();
  EXPECT_EQ(counter.current_bytes(), before);
}

TEST(AllocationCounter, RawAllocateAndDeallocateRoundTrip) {
  // oneDNN takes scratch memory through c10's raw interface.
  auto& counter = AllocationCounter::instance();
  CountAllocations counting;
  const int64_t before = counter.current_bytes();
  c10::Allocator* allocator = c10::GetAllocator(c10::DeviceType::CPU);
  void* raw = allocator->raw_allocate(333);
  ASSERT_NE(raw, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(raw) % 64, 0u);
  EXPECT_EQ(counter.current_bytes(), before + 333);
  allocator->raw_deallocate(raw);
  EXPECT_EQ(counter.current_bytes(), before);
}

namespace {

// The peak activation bytes of one training step of a 2-block GPT on `length` tokens per sample.
int64_t gpt_step_peak(int64_t length) {
  torch::manual_seed(0);
  auto model = tiny::small_gpt(32, 64, 32, 2);
  Trainer trainer(model, nullptr, nullptr, dist::make_communicator("local"),
                  tiny::quick_options(1, 8, 1, 1), OptimizerOptions{});
  data::Batch batch;
  batch.inputs = torch::randint(0, 32, {8, length}, torch::kInt64);
  batch.targets = torch::randint(0, 32, {8, length}, torch::kInt64);
  batch.sample_ids = torch::arange(8, torch::kInt64);
  return trainer.train_step(batch, 0).peak_activation_bytes;
}

}  // namespace

TEST(AllocationCounter, TrainingStepReportsMoreActivationMemoryWithMoreTokens) {
  const int64_t short_step = gpt_step_peak(8), long_step = gpt_step_peak(64);
  EXPECT_GT(short_step, 0);
  // Activations grow with the tokens (linearly, attention quadratically); the parameter
  // gradients in the peak do not, so 8x the tokens gives well over 2x the bytes.
  EXPECT_GT(long_step, 2 * short_step) << "8 tokens: " << short_step << ", 64: " << long_step;
}

TEST(AllocationCounter, TokenReductionLowersTheMeasuredPeak) {
  auto peak_with = [](double keep) {
    torch::manual_seed(0);
    auto model = tiny::small_vit(4, 32);
    auto data = tiny::images(64);
    Trainer trainer(model, data, nullptr, dist::make_communicator("local"),
                    tiny::quick_options(1, 32, 1, 1), OptimizerOptions{});
    if (keep < 1.0) trainer.set_planner(tiny::random_prune_at_layer_one(4, keep));
    std::vector<int64_t> ids(32);
    for (int64_t i = 0; i < 32; ++i) ids[static_cast<size_t>(i)] = i;
    return trainer.train_step(data->fetch(ids), 0).peak_activation_bytes;
  };
  const int64_t dense = peak_with(1.0), pruned = peak_with(0.25);
  EXPECT_GT(pruned, 0);
  EXPECT_LT(pruned, dense) << "dense " << dense << " pruned to a quarter " << pruned;
}
