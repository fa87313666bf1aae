// Tests GlobalSampler: permutations, determinism, epochs, positions and rank slices.
#include "data/sampler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <set>

namespace winnow::data {
namespace {

std::vector<int64_t> iota(int64_t n) {
  std::vector<int64_t> out(static_cast<size_t>(n));
  std::iota(out.begin(), out.end(), 0);
  return out;
}

TEST(GlobalSampler, EpochOrderIsAPermutation) {
  for (int64_t n : {1, 2, 7, 100, 1001}) {
    GlobalSampler sampler(n, 1, /*seed=*/5, /*shuffle=*/true);
    for (int64_t epoch : {0, 1, 17}) {
      std::vector<int64_t> order = sampler.epoch_order(epoch);
      std::sort(order.begin(), order.end());
      EXPECT_EQ(order, iota(n)) << "n=" << n << " epoch=" << epoch;
    }
  }
}

TEST(GlobalSampler, OrderIsAPureFunctionOfSeedAndEpoch) {
  const GlobalSampler a(1000, 10, 42, true);
  const GlobalSampler b(1000, 32, 42, true);  // the batch size does not change the order
  const GlobalSampler c(1000, 10, 43, true);
  EXPECT_EQ(a.epoch_order(3), b.epoch_order(3));
  EXPECT_NE(a.epoch_order(3), c.epoch_order(3));
  EXPECT_NE(a.epoch_order(0), a.epoch_order(1));
  EXPECT_NE(a.epoch_order(0), iota(1000));
  // Pinned values, cross-checked with the Python reference in docs/data-format.md: the order
  // must never change across compilers or LibTorch versions.
  const std::vector<int64_t> first = GlobalSampler(10, 1, 0, true).epoch_order(0);
  const std::vector<int64_t> again = GlobalSampler(10, 1, 0, true).epoch_order(0);
  EXPECT_EQ(first, again);
  EXPECT_THAT(first, ::testing::ElementsAre(3, 6, 4, 2, 5, 8, 0, 1, 9, 7));
  EXPECT_THAT(GlobalSampler(12, 4, 42, true).epoch_order(3),
              ::testing::ElementsAre(4, 0, 9, 6, 10, 2, 8, 1, 3, 7, 11, 5));
  EXPECT_EQ(GlobalSampler(50, 5, 9, /*shuffle=*/false).epoch_order(4), iota(50));
}

TEST(GlobalSampler, PositionsMapToEpochAndOffset) {
  const GlobalSampler sampler(103, 10, 1, true);  // drop_last: 10 batches, 100 samples/epoch
  EXPECT_EQ(sampler.batches_per_epoch(), 10);
  EXPECT_EQ(sampler.samples_per_epoch(), 100);
  EXPECT_EQ(sampler.locate(0).epoch, 0);
  EXPECT_EQ(sampler.locate(99).offset, 99);
  EXPECT_EQ(sampler.locate(100).epoch, 1);
  EXPECT_EQ(sampler.locate(100).offset, 0);
  EXPECT_EQ(sampler.locate(250).epoch, 2);
  EXPECT_EQ(sampler.locate(250).offset, 50);
  EXPECT_EQ(sampler.global_position(2, 50), 250);
  EXPECT_EQ(sampler.position_of_batch(23), 230);
  EXPECT_EQ(sampler.epoch_of_batch(23), 2);
  // Global batch b covers entries [offset, offset + GB) of its epoch's order.
  const auto order = sampler.epoch_order(2);
  EXPECT_EQ(sampler.global_batch(23), std::vector<int64_t>(order.begin() + 30, order.begin() + 40));

  const GlobalSampler keep(103, 10, 1, true, /*drop_last=*/false);
  EXPECT_EQ(keep.batches_per_epoch(), 11);
  EXPECT_EQ(keep.samples_per_epoch(), 103);
  EXPECT_EQ(keep.batch_size_of(10), 3);
  EXPECT_EQ(keep.global_batch(10).size(), 3u);
  EXPECT_EQ(keep.position_of_batch(11), 103);
  EXPECT_EQ(keep.locate(206).epoch, 2);
}

TEST(GlobalSampler, EachEpochVisitsEverySampleOnce) {
  const GlobalSampler sampler(64, 8, 3, true);
  for (int64_t epoch = 0; epoch < 3; ++epoch) {
    std::set<int64_t> seen;
    for (int64_t b = 0; b < 8; ++b) {
      for (int64_t id : sampler.global_batch(epoch * 8 + b)) EXPECT_TRUE(seen.insert(id).second);
    }
    EXPECT_EQ(seen.size(), 64u);
  }
}

TEST(GlobalSampler, SlicesPartitionTheGlobalBatch) {
  for (int64_t global_batch : {1, 2, 6, 7, 10}) {
    const GlobalSampler sampler(50, global_batch, 11, true);
    for (int64_t world : {1, 2, 3, 4, 12}) {
      for (int64_t b : {0, 1, 13}) {
        std::vector<int64_t> joined;
        int64_t smallest = global_batch, largest = 0;
        for (int64_t rank = 0; rank < world; ++rank) {
          const auto slice = sampler.slice(b, rank, world);
          joined.insert(joined.end(), slice.begin(), slice.end());
          smallest = std::min<int64_t>(smallest, static_cast<int64_t>(slice.size()));
          largest = std::max<int64_t>(largest, static_cast<int64_t>(slice.size()));
        }
        EXPECT_EQ(joined, sampler.global_batch(b)) << "GB=" << global_batch << " R=" << world;
        EXPECT_LE(largest - smallest, 1) << "slices are balanced";
      }
    }
  }
  // GB = 7, R = 3: [floor(r*7/3), floor((r+1)*7/3)) = [0,2), [2,4), [4,7).
  EXPECT_EQ(GlobalSampler::slice_bounds(7, 0, 3), (std::pair<int64_t, int64_t>{0, 2}));
  EXPECT_EQ(GlobalSampler::slice_bounds(7, 1, 3), (std::pair<int64_t, int64_t>{2, 4}));
  EXPECT_EQ(GlobalSampler::slice_bounds(7, 2, 3), (std::pair<int64_t, int64_t>{4, 7}));
}

TEST(GlobalSampler, RejectsBadArguments) {
  EXPECT_THROW(GlobalSampler(0, 1, 0, true), c10::Error);
  EXPECT_THROW(GlobalSampler(10, 0, 0, true), c10::Error);
  try {
    GlobalSampler(10, 11, 0, true);
    FAIL() << "expected an error";
  } catch (const c10::Error& e) {
    EXPECT_THAT(e.what_without_backtrace(),
                ::testing::HasSubstr("global batch size 11 is larger than the dataset (10"));
  }
  const GlobalSampler sampler(10, 2, 0, true);
  EXPECT_THROW(sampler.slice(0, 3, 3), c10::Error);
  EXPECT_THROW(sampler.slice(0, 0, 0), c10::Error);
  EXPECT_THROW(sampler.locate(-1), c10::Error);
}

}  // namespace
}  // namespace winnow::data
