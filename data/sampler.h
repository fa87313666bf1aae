// GlobalSampler: the global sample order of every epoch, and each rank's slice of a global batch.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

namespace winnow::data {

// Where a global sample position falls: `offset` samples into epoch `epoch`.
struct SamplerPosition {
  int64_t epoch = 0;
  int64_t offset = 0;
};

// The order in which training visits samples, independent of the number of ranks.
//
// Epoch e visits the samples in the order epoch_order(e): with shuffle, a permutation of
// [0, N) that is a pure function of (seed, e) — Fisher–Yates driven by a splitmix64 stream
// seeded with hash(seed, e), implemented here so it never changes with LibTorch; without
// shuffle, 0, 1, ..., N-1. Epoch e is cut into global batches of GB consecutive entries; with
// drop_last the incomplete tail is skipped, so an epoch is floor(N/GB)*GB samples; without it the
// last batch of an epoch is short.
//
// Global batch b (counted from the start of training, over epochs) is handed out as R
// contiguous slices: rank r gets entries [floor(r*GB'/R), floor((r+1)*GB'/R)) of it (GB' = that
// batch's size), so the slices partition the global batch for any R, also when R does not
// divide GB, and concatenating the slices in rank order gives the 1-rank batch.
//
// Thread safety: all methods are const and safe to call concurrently (one epoch order is cached).
class GlobalSampler {
 public:
  GlobalSampler(int64_t dataset_size, int64_t global_batch_size, uint64_t seed, bool shuffle,
                bool drop_last = true);

  int64_t dataset_size() const { return dataset_size_; }
  int64_t global_batch_size() const { return global_batch_size_; }
  uint64_t seed() const { return seed_; }
  bool shuffle() const { return shuffle_; }
  bool drop_last() const { return drop_last_; }

  // Global batches per epoch: floor(N/GB) with drop_last, ceil(N/GB) without.
  int64_t batches_per_epoch() const { return batches_per_epoch_; }
  // Samples per epoch: floor(N/GB)*GB with drop_last, N without.
  int64_t samples_per_epoch() const { return samples_per_epoch_; }

  // The permutation of [0, N) for epoch e (e >= 0).
  std::vector<int64_t> epoch_order(int64_t epoch) const;

  // Global sample position p (samples consumed since the start of training) → (epoch, offset):
  // epoch = p / samples_per_epoch, offset = p % samples_per_epoch.
  SamplerPosition locate(int64_t global_position) const;
  // The inverse: e * samples_per_epoch + offset.
  int64_t global_position(int64_t epoch, int64_t offset) const;

  // Epoch of global batch b, and the global position of its first sample.
  int64_t epoch_of_batch(int64_t global_batch_index) const;
  int64_t position_of_batch(int64_t global_batch_index) const;
  // Number of samples in global batch b (GB, except the short last batch of an epoch without
  // drop_last).
  int64_t batch_size_of(int64_t global_batch_index) const;

  // All sample ids of global batch b, in order.
  std::vector<int64_t> global_batch(int64_t global_batch_index) const;
  // The sample ids rank `rank` of `world_size` reads from global batch b (possibly empty when
  // world_size > batch size).
  std::vector<int64_t> slice(int64_t global_batch_index, int64_t rank, int64_t world_size) const;

  // [begin, end) of rank r's slice of a batch of `batch_size`: [floor(r*B/R), floor((r+1)*B/R)).
  static std::pair<int64_t, int64_t> slice_bounds(int64_t batch_size, int64_t rank,
                                                  int64_t world_size);

 private:
  std::shared_ptr<const std::vector<int64_t>> cached_order(int64_t epoch) const;

  int64_t dataset_size_;
  int64_t global_batch_size_;
  uint64_t seed_;
  bool shuffle_;
  bool drop_last_;
  int64_t batches_per_epoch_;
  int64_t samples_per_epoch_;

  mutable std::mutex cache_mutex_;
  mutable int64_t cached_epoch_ = -1;
  mutable std::shared_ptr<const std::vector<int64_t>> cached_order_;
};

}  // namespace winnow::data
