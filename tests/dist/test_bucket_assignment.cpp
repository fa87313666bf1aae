// Tests for assign_buckets: reverse order, byte caps, oversized tensors alone, dtype grouping.
#include <gtest/gtest.h>

#include "dist/bucket_assignment.h"

namespace winnow::dist {
namespace {

using Indices = std::vector<std::vector<int64_t>>;

Indices indices_of(const std::vector<Bucket>& buckets) {
  Indices indices;
  for (const Bucket& bucket : buckets) indices.push_back(bucket.parameter_indices);
  return indices;
}

std::vector<BucketItem> float_items(const std::vector<int64_t>& numels) {
  std::vector<BucketItem> items;
  for (size_t i = 0; i < numels.size(); ++i) {
    items.push_back({static_cast<int64_t>(i), torch::kFloat, numels[i]});
  }
  return items;
}

TEST(BucketAssignment, EveryTensorAloneWhenEachFillsABucket) {
  // Mirrors DDP's ComputeBucketAssignmentTest "single limit, single dtype", reversed.
  const auto buckets = assign_buckets(float_items({1, 1, 1, 1}), /*bucket_bytes=*/4);
  EXPECT_EQ(indices_of(buckets), (Indices{{3}, {2}, {1}, {0}}));
}

TEST(BucketAssignment, ReverseOrderWithCapAndOffsets) {
  // 40, 80, 120, 160 bytes; cap 240: [3] alone, then 2, 1, 0 fill exactly 240 bytes.
  const auto buckets = assign_buckets(float_items({10, 20, 30, 40}), /*bucket_bytes=*/240);
  ASSERT_EQ(indices_of(buckets), (Indices{{3}, {2, 1, 0}}));
  EXPECT_EQ(buckets[1].offsets, (std::vector<int64_t>{0, 30, 50}));
  EXPECT_EQ(buckets[1].numels, (std::vector<int64_t>{30, 20, 10}));
  EXPECT_EQ(buckets[1].numel, 60);
  EXPECT_EQ(buckets[1].bytes(), 240);
  EXPECT_EQ(buckets[0].dtype, torch::kFloat);
}

TEST(BucketAssignment, OversizedTensorGetsItsOwnBucketAndClosesTheOpenOne) {
  // cap 100 bytes: tensor 1 (400 bytes) is alone; tensor 0 does not join tensors 3 and 2.
  const auto buckets = assign_buckets(float_items({5, 100, 5, 5}), /*bucket_bytes=*/100);
  EXPECT_EQ(indices_of(buckets), (Indices{{3, 2}, {1}, {0}}));
  for (const Bucket& bucket : buckets) {
    EXPECT_TRUE(bucket.bytes() <= 100 || bucket.parameter_indices.size() == 1);
  }
}

TEST(BucketAssignment, GroupsByDtype) {
  const std::vector<BucketItem> items{{0, torch::kFloat, 10},
                                      {1, torch::kDouble, 10},
                                      {2, torch::kFloat, 10},
                                      {3, torch::kDouble, 10},
                                      {4, torch::kBFloat16, 3}};
  const auto buckets = assign_buckets(items, /*bucket_bytes=*/1000);
  ASSERT_EQ(indices_of(buckets), (Indices{{4}, {3, 1}, {2, 0}}));
  EXPECT_EQ(buckets[0].dtype, torch::kBFloat16);
  EXPECT_EQ(buckets[1].dtype, torch::kDouble);
  EXPECT_EQ(buckets[2].dtype, torch::kFloat);
  EXPECT_EQ(buckets[1].bytes(), 160);
}

TEST(BucketAssignment, DtypesKeepSeparateOpenBucketsUnderACap) {
  // cap 48 bytes: floats 0 and 2 (20 bytes each) share; doubles 1 and 3 (40 bytes each) do not.
  const std::vector<BucketItem> items{
      {0, torch::kFloat, 5}, {1, torch::kDouble, 5}, {2, torch::kFloat, 5}, {3, torch::kDouble, 5}};
  EXPECT_EQ(indices_of(assign_buckets(items, 48)), (Indices{{3}, {2, 0}, {1}}));
}

TEST(BucketAssignment, DeterministicAndCoversEveryItemOnce) {
  const auto items = float_items({7, 0, 13, 1000, 2, 2, 64, 0, 5});
  const auto first = assign_buckets(items, 64);
  const auto second = assign_buckets(items, 64);
  ASSERT_EQ(indices_of(first), indices_of(second));
  std::vector<int> seen(items.size(), 0);
  for (size_t b = 0; b < first.size(); ++b) {
    EXPECT_EQ(first[b].offsets, second[b].offsets);
    int64_t expected_offset = 0;
    for (size_t j = 0; j < first[b].parameter_indices.size(); ++j) {
      seen[first[b].parameter_indices[j]] += 1;
      EXPECT_EQ(first[b].offsets[j], expected_offset);
      expected_offset += first[b].numels[j];
    }
    EXPECT_EQ(first[b].numel, expected_offset);
  }
  EXPECT_EQ(seen, std::vector<int>(items.size(), 1));
}

TEST(BucketAssignment, RejectsBadArguments) {
  EXPECT_THROW(assign_buckets(float_items({1}), 0), c10::Error);
  EXPECT_THROW(assign_buckets(float_items({-1}), 64), c10::Error);
  EXPECT_TRUE(assign_buckets({}, 64).empty());
}

}  // namespace
}  // namespace winnow::dist
