// Bucket assignment: which gradients travel together in one flat all_reduce buffer.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace winnow::dist {

// One tensor to place: its index in the caller's list, its dtype and element count.
struct BucketItem {
  int64_t index = 0;
  torch::ScalarType dtype = torch::kFloat;
  int64_t numel = 0;
};

// A group of same-dtype tensors packed back to back into one flat buffer of `numel` elements.
// Entry j is tensor parameter_indices[j], at element offset offsets[j], numels[j] elements long.
struct Bucket {
  torch::ScalarType dtype = torch::kFloat;
  std::vector<int64_t> parameter_indices;
  std::vector<int64_t> offsets;
  std::vector<int64_t> numels;
  int64_t numel = 0;

  int64_t bytes() const { return numel * static_cast<int64_t>(c10::elementSize(dtype)); }
};

// Assigns `items` (given in registration order) to buckets of at most `bucket_bytes` each.
// Items are visited in REVERSE order because backward produces gradients roughly last layer
// first (PyTorch DDP passes reversed(bucket_indices) "to approximate the order in which gradients
// are produced"). Each dtype has one open bucket; an item that does not fit closes it and opens a
// new one, and an item of at least `bucket_bytes` gets a bucket of its own (and closes the open
// one, so every bucket is a contiguous run of the reversed order within its dtype). Buckets are
// returned in the order they were opened, the order in which they are reduced.
//
// A pure function of (dtypes, numels, bucket_bytes): every rank computes the same buckets from the
// same parameter list, which keeps the all_reduce sequence identical across ranks.
std::vector<Bucket> assign_buckets(const std::vector<BucketItem>& items, int64_t bucket_bytes);

}  // namespace winnow::dist
