// Tests Loader and EvaluationLoader: rank slices, resume, metadata, prefetching, errors.
#include "data/loader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <numeric>
#include <set>
#include <thread>

#include "data/synthetic_dataset.h"

namespace winnow::data {
namespace {

using ::testing::HasSubstr;

std::shared_ptr<const Dataset> images(int64_t size) {
  SyntheticImageOptions options;
  options.size = size;
  options.height = 4;
  options.width = 4;
  options.seed = 3;
  return std::make_shared<SyntheticImageDataset>(options);
}

// Counts fetch calls and fails on call number `fail_at` (0-based; -1 = never).
class CountingDataset : public Dataset {
 public:
  explicit CountingDataset(int64_t fail_at = -1) : fail_at_(fail_at) {}
  int64_t size() const override { return 100; }
  Batch fetch(const std::vector<int64_t>& ids) const override {
    const int64_t call = calls_++;
    TORCH_CHECK(call != fail_at_, "counting dataset: simulated read failure at call ", call);
    Batch batch;
    batch.sample_ids = torch::tensor(ids, torch::kInt64).view({-1});
    batch.inputs = batch.sample_ids.clone();
    batch.targets = batch.sample_ids.clone();
    return batch;
  }
  std::string describe() const override { return "counting dataset"; }
  SampleShape sample_shape() const override { return SampleShape::of_tokens(100); }
  int64_t calls() const { return calls_; }

 private:
  int64_t fail_at_;
  mutable std::atomic<int64_t> calls_{0};
};

LoaderOptions options_for(int64_t rank, int64_t world, int64_t start = 0) {
  LoaderOptions options;
  options.global_batch_size = 7;
  options.rank = rank;
  options.world_size = world;
  options.seed = 123;
  options.start_position = start;
  return options;
}

TEST(Loader, RankSlicesConcatenateToTheSingleRankBatch) {
  const auto dataset = images(30);  // 4 batches of 7 per epoch: 12 steps cross 2 epochs
  Loader single(dataset, options_for(0, 1));
  EXPECT_EQ(single.batches_per_epoch(), 4);
  for (int64_t world : {2, 3}) {
    Loader reference(dataset, options_for(0, 1));
    std::vector<std::unique_ptr<Loader>> ranks;
    for (int64_t r = 0; r < world; ++r) {
      ranks.push_back(std::make_unique<Loader>(dataset, options_for(r, world)));
    }
    for (int64_t step = 0; step < 12; ++step) {
      const Batch full = reference.next();
      EXPECT_EQ(full.global_position, step * 7);
      EXPECT_EQ(full.epoch, step / 4);
      EXPECT_EQ(full.global_batch_size, 7);
      std::vector<torch::Tensor> inputs, targets, ids;
      for (auto& loader : ranks) {
        const Batch part = loader->next();
        EXPECT_EQ(part.global_position, full.global_position);
        EXPECT_EQ(part.global_batch_size, 7);
        EXPECT_EQ(part.epoch, full.epoch);
        inputs.push_back(part.inputs);
        targets.push_back(part.targets);
        ids.push_back(part.sample_ids);
      }
      EXPECT_TRUE(torch::equal(torch::cat(inputs), full.inputs)) << "R=" << world;
      EXPECT_TRUE(torch::equal(torch::cat(targets), full.targets));
      EXPECT_TRUE(torch::equal(torch::cat(ids), full.sample_ids));
    }
    EXPECT_EQ(ranks[0]->position(), 12 * 7);
  }
}

TEST(Loader, ResumeContinuesLikeAnUninterruptedLoader) {
  const auto dataset = images(30);
  Loader uninterrupted(dataset, options_for(1, 2));
  std::vector<Batch> expected;
  for (int i = 0; i < 10; ++i) expected.push_back(uninterrupted.next());

  Loader first(dataset, options_for(1, 2));
  for (int i = 0; i < 6; ++i) first.next();
  const int64_t saved = first.position();
  EXPECT_EQ(saved, 42);
  EXPECT_EQ(first.epoch(), 1);

  Loader resumed(dataset, options_for(1, 2, saved));
  EXPECT_EQ(resumed.position(), saved);
  for (int i = 6; i < 10; ++i) {
    const Batch batch = resumed.next();
    EXPECT_TRUE(torch::equal(batch.sample_ids, expected[i].sample_ids)) << i;
    EXPECT_TRUE(torch::equal(batch.inputs, expected[i].inputs)) << i;
    EXPECT_EQ(batch.global_position, expected[i].global_position);
    EXPECT_EQ(batch.epoch, expected[i].epoch);
  }
}

TEST(Loader, RejectsBadOptions) {
  const auto dataset = images(30);
  try {
    Loader loader(dataset, options_for(0, 1, /*start=*/10));
    FAIL() << "expected an error";
  } catch (const c10::Error& e) {
    EXPECT_THAT(e.what_without_backtrace(),
                HasSubstr("start_position must be a non-negative multiple of the global batch "
                          "size 7, got 10"));
  }
  EXPECT_THROW(Loader(dataset, options_for(2, 2)), c10::Error);
  EXPECT_THROW(Loader(nullptr, options_for(0, 1)), c10::Error);
  LoaderOptions too_big = options_for(0, 1);
  too_big.global_batch_size = 31;
  EXPECT_THROW(Loader(dataset, too_big), c10::Error);
}

TEST(Loader, WorkerExceptionsReachNext) {
  for (int64_t depth : {0, 1, 3}) {
    auto dataset = std::make_shared<CountingDataset>(/*fail_at=*/2);
    LoaderOptions options = options_for(0, 1);
    options.prefetch_depth = depth;
    Loader loader(dataset, options);
    EXPECT_NO_THROW(loader.next());
    EXPECT_NO_THROW(loader.next());
    for (int repeat = 0; repeat < 2; ++repeat) {
      try {
        loader.next();
        FAIL() << "expected the worker's exception, depth " << depth;
      } catch (const c10::Error& e) {
        EXPECT_THAT(e.what_without_backtrace(), HasSubstr("simulated read failure at call 2"));
      }
    }
    EXPECT_EQ(loader.position(), 14);
  }
}

// Waits (up to 10 s, for a loaded machine) until the dataset has seen `calls` fetches.
void wait_for_calls(const CountingDataset& dataset, int64_t calls) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (dataset.calls() < calls && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

TEST(Loader, PrefetchQueueIsBounded) {
  auto dataset = std::make_shared<CountingDataset>();
  LoaderOptions options = options_for(0, 1);
  options.prefetch_depth = 2;
  {
    Loader loader(dataset, options);
    wait_for_calls(*dataset, 2);
    std::this_thread::sleep_for(std::chrono::milliseconds(30));  // time to overrun, if it would
    EXPECT_EQ(dataset->calls(), 2);
    loader.next();
    wait_for_calls(*dataset, 3);
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    EXPECT_EQ(dataset->calls(), 3);
  }  // destroying a loader whose worker waits on a full queue must not hang
  EXPECT_EQ(dataset->calls(), 3);
}

TEST(EvaluationLoader, VisitsEverySampleOnceAcrossRanks) {
  const auto dataset = images(23);
  for (int64_t world : {1, 2, 5}) {
    std::vector<int64_t> seen;
    for (int64_t rank = 0; rank < world; ++rank) {
      EvaluationOptions options;
      options.global_batch_size = 4;
      options.rank = rank;
      options.world_size = world;
      EvaluationLoader loader(dataset, options);
      EXPECT_EQ(loader.num_batches(), 6);
      int64_t batches = 0;
      while (auto batch = loader.next()) {
        EXPECT_EQ(batch->global_position, batches * 4);
        EXPECT_EQ(batch->global_batch_size, batches == 5 ? 3 : 4);
        EXPECT_EQ(batch->inputs.size(0), batch->size());
        const auto ids = batch->sample_ids;
        for (int64_t i = 0; i < ids.size(0); ++i) seen.push_back(ids[i].item<int64_t>());
        ++batches;
      }
      EXPECT_EQ(batches, 6) << "every rank steps the same number of times";
      EXPECT_FALSE(loader.next().has_value());
    }
    std::sort(seen.begin(), seen.end());
    std::vector<int64_t> all(23);
    std::iota(all.begin(), all.end(), 0);
    EXPECT_EQ(seen, all) << "R=" << world;
  }
}

TEST(EvaluationLoader, HandlesEmptySlices) {
  // 3 samples, batch 8, 5 ranks: ranks 0, 2 and 4 get nothing but still get one (empty) batch.
  EvaluationOptions options;
  options.global_batch_size = 8;
  options.world_size = 5;
  int64_t total = 0;
  for (int64_t rank = 0; rank < 5; ++rank) {
    options.rank = rank;
    EvaluationLoader loader(images(3), options);
    const auto batch = loader.next();
    ASSERT_TRUE(batch.has_value());
    EXPECT_EQ(batch->global_batch_size, 3);
    EXPECT_EQ(batch->inputs.sizes(), (std::vector<int64_t>{batch->size(), 1, 4, 4}));
    total += batch->size();
    EXPECT_FALSE(loader.next().has_value());
  }
  EXPECT_EQ(total, 3);
}

}  // namespace
}  // namespace winnow::data
