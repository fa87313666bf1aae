// Greedy reverse-order bucket assignment, grouped by dtype and capped in bytes.
#include "dist/bucket_assignment.h"

#include <map>

namespace winnow::dist {

std::vector<Bucket> assign_buckets(const std::vector<BucketItem>& items, int64_t bucket_bytes) {
  TORCH_CHECK(bucket_bytes > 0, "assign_buckets: expected bucket_bytes > 0, got ", bucket_bytes);
  std::vector<Bucket> buckets;
  std::map<torch::ScalarType, size_t> open_bucket;  // dtype -> index into `buckets`

  const auto append = [](Bucket& bucket, const BucketItem& item) {
    bucket.parameter_indices.push_back(item.index);
    bucket.offsets.push_back(bucket.numel);
    bucket.numels.push_back(item.numel);
    bucket.numel += item.numel;
  };

  for (auto item = items.rbegin(); item != items.rend(); ++item) {
    TORCH_CHECK(item->numel >= 0, "assign_buckets: expected numel >= 0 for tensor ", item->index,
                ", got ", item->numel);
    const int64_t item_bytes = item->numel * static_cast<int64_t>(c10::elementSize(item->dtype));
    if (item_bytes >= bucket_bytes) {
      open_bucket.erase(item->dtype);
      buckets.push_back(Bucket{item->dtype, {}, {}, {}, 0});
      append(buckets.back(), *item);
      continue;
    }
    auto open = open_bucket.find(item->dtype);
    if (open == open_bucket.end() || buckets[open->second].bytes() + item_bytes > bucket_bytes) {
      buckets.push_back(Bucket{item->dtype, {}, {}, {}, 0});
      open = open_bucket.insert_or_assign(item->dtype, buckets.size() - 1).first;
    }
    append(buckets[open->second], *item);
  }
  return buckets;
}

}  // namespace winnow::dist
