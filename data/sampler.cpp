// Implements GlobalSampler: keyed Fisher–Yates epoch orders and rank slices of global batches.
#include "data/sampler.h"

#include <numeric>

#include <torch/torch.h>

#include "data/keyed_random.h"

namespace winnow::data {
namespace {

// Separates the epoch-order stream from every other use of the same seed.
constexpr uint64_t kEpochOrderDomain = 0x65706f63686f7264ULL;  // "epochord"

}  // namespace

GlobalSampler::GlobalSampler(int64_t dataset_size, int64_t global_batch_size, uint64_t seed,
                             bool shuffle, bool drop_last)
    : dataset_size_(dataset_size),
      global_batch_size_(global_batch_size),
      seed_(seed),
      shuffle_(shuffle),
      drop_last_(drop_last) {
  TORCH_CHECK(dataset_size_ >= 1, "sampler: expected a dataset of at least 1 sample, got ",
              dataset_size_);
  TORCH_CHECK(global_batch_size_ >= 1, "sampler: expected global batch size >= 1, got ",
              global_batch_size_);
  if (drop_last_) {
    TORCH_CHECK(global_batch_size_ <= dataset_size_, "sampler: global batch size ",
                global_batch_size_, " is larger than the dataset (", dataset_size_,
                " samples); with drop_last an epoch would hold no batch");
    batches_per_epoch_ = dataset_size_ / global_batch_size_;
    samples_per_epoch_ = batches_per_epoch_ * global_batch_size_;
  } else {
    batches_per_epoch_ = (dataset_size_ + global_batch_size_ - 1) / global_batch_size_;
    samples_per_epoch_ = dataset_size_;
  }
}

std::vector<int64_t> GlobalSampler::epoch_order(int64_t epoch) const {
  TORCH_CHECK(epoch >= 0, "sampler: expected epoch >= 0, got ", epoch);
  std::vector<int64_t> order(static_cast<size_t>(dataset_size_));
  std::iota(order.begin(), order.end(), 0);
  if (!shuffle_) return order;
  SplitMix64 stream(hash_keys({seed_, kEpochOrderDomain, static_cast<uint64_t>(epoch)}));
  for (int64_t i = dataset_size_ - 1; i > 0; --i) {
    const auto j = static_cast<int64_t>(stream.below(static_cast<uint64_t>(i) + 1));
    std::swap(order[i], order[j]);
  }
  return order;
}

std::shared_ptr<const std::vector<int64_t>> GlobalSampler::cached_order(int64_t epoch) const {
  {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (cached_epoch_ == epoch) return cached_order_;
  }
  auto order = std::make_shared<const std::vector<int64_t>>(epoch_order(epoch));
  std::lock_guard<std::mutex> lock(cache_mutex_);
  cached_epoch_ = epoch;
  cached_order_ = order;
  return order;
}

SamplerPosition GlobalSampler::locate(int64_t global_position) const {
  TORCH_CHECK(global_position >= 0, "sampler: expected global position >= 0, got ",
              global_position);
  return {global_position / samples_per_epoch_, global_position % samples_per_epoch_};
}

int64_t GlobalSampler::global_position(int64_t epoch, int64_t offset) const {
  TORCH_CHECK(epoch >= 0 && offset >= 0 && offset < samples_per_epoch_,
              "sampler: expected epoch >= 0 and offset in [0, ", samples_per_epoch_, "), got (",
              epoch, ", ", offset, ")");
  return epoch * samples_per_epoch_ + offset;
}

int64_t GlobalSampler::epoch_of_batch(int64_t global_batch_index) const {
  TORCH_CHECK(global_batch_index >= 0, "sampler: expected global batch index >= 0, got ",
              global_batch_index);
  return global_batch_index / batches_per_epoch_;
}

int64_t GlobalSampler::position_of_batch(int64_t global_batch_index) const {
  const int64_t epoch = epoch_of_batch(global_batch_index);
  const int64_t in_epoch = global_batch_index % batches_per_epoch_;
  return epoch * samples_per_epoch_ + in_epoch * global_batch_size_;
}

int64_t GlobalSampler::batch_size_of(int64_t global_batch_index) const {
  const int64_t offset = position_of_batch(global_batch_index) % samples_per_epoch_;
  return std::min(global_batch_size_, samples_per_epoch_ - offset);
}

std::vector<int64_t> GlobalSampler::global_batch(int64_t global_batch_index) const {
  return slice(global_batch_index, 0, 1);
}

std::vector<int64_t> GlobalSampler::slice(int64_t global_batch_index, int64_t rank,
                                          int64_t world_size) const {
  const int64_t epoch = epoch_of_batch(global_batch_index);
  const int64_t offset = (global_batch_index % batches_per_epoch_) * global_batch_size_;
  const int64_t batch_size = std::min(global_batch_size_, samples_per_epoch_ - offset);
  const auto [begin, end] = slice_bounds(batch_size, rank, world_size);
  const auto order = cached_order(epoch);
  return std::vector<int64_t>(order->begin() + offset + begin, order->begin() + offset + end);
}

std::pair<int64_t, int64_t> GlobalSampler::slice_bounds(int64_t batch_size, int64_t rank,
                                                        int64_t world_size) {
  TORCH_CHECK(world_size >= 1, "sampler: expected world size >= 1, got ", world_size);
  TORCH_CHECK(rank >= 0 && rank < world_size, "sampler: expected rank in [0, ", world_size,
              "), got ", rank);
  TORCH_CHECK(batch_size >= 0, "sampler: expected batch size >= 0, got ", batch_size);
  return {rank * batch_size / world_size, (rank + 1) * batch_size / world_size};
}

}  // namespace winnow::data
