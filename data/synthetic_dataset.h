// Synthetic datasets that need no files: learnable images and learnable token streams, for
// tests, smoke runs and benchmarks.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>

#include "data/dataset.h"
#include "data/token_dataset.h"

namespace winnow::data {

struct SyntheticImageOptions {
  int64_t size = 1024;  // number of samples N
  int64_t channels = 1;
  int64_t height = 28;
  int64_t width = 28;
  int64_t num_classes = 10;
  uint64_t seed = 0;
  double noise = 1.0;  // std-like scale of the per-pixel noise; the class signal is +-1 per pixel
  // Independent draws from the same distribution (same class prototypes): train uses split 0, a
  // held-out evaluation set split 1. Sample i of split s is keyed on i + s * 2^40.
  uint64_t split = 0;
};

// Sample i has label hash(seed, i) mod num_classes and pixels prototype[label] + noise, where the
// prototype is a +-1 pattern per (class, channel, row, column) keyed on the seed and the noise is
// uniform with standard deviation `noise`, keyed on (seed, i, pixel). Everything is a pure
// function of (seed, sample id), so batches are identical on any number of ranks and threads.
// Inputs are already roughly zero-mean unit-variance: float32 [B, C, H, W]; targets int64 [B].
class SyntheticImageDataset : public Dataset {
 public:
  explicit SyntheticImageDataset(SyntheticImageOptions options);

  int64_t size() const override { return options_.size; }
  Batch fetch(const std::vector<int64_t>& sample_ids) const override;
  std::string describe() const override;
  SampleShape sample_shape() const override {
    return SampleShape::of_images({options_.channels, options_.height, options_.width},
                                  options_.num_classes);
  }

  int64_t num_classes() const { return options_.num_classes; }
  std::array<int64_t, 3> image_shape() const {
    return {options_.channels, options_.height, options_.width};
  }
  // The label of one sample (without building its pixels).
  int64_t label_of(int64_t sample_id) const;

 private:
  uint64_t sample_key(int64_t sample_id) const;

 public:
 private:
  SyntheticImageOptions options_;
  torch::Tensor prototypes_;  // [num_classes, C, H, W] float32, entries +-1
};

struct SyntheticTokenOptions {
  int64_t num_windows = 256;  // dataset size: windows of context_length (+1) tokens
  int64_t vocab_size = 64;
  int64_t context_length = 32;
  uint64_t seed = 0;
  double noise = 0.1;  // probability that a token is uniform instead of following the chain
  // Independent streams from the same chain: train uses split 0, a held-out evaluation set 1.
  uint64_t split = 0;
};

// A token stream from a simple Markov chain keyed on the seed: token t+1 = successor[token t],
// where successor is a random permutation of the vocabulary, except that with probability
// `noise` a token is drawn uniformly instead. A model that learns the bigram table reaches a loss
// near the chain's entropy, far below log(vocab_size). The stream holds
// num_windows * context_length + 1 tokens, served as TokenDataset windows.
std::shared_ptr<TokenDataset> make_synthetic_token_dataset(const SyntheticTokenOptions& options);

// The raw stream of make_synthetic_token_dataset: [num_windows * context_length + 1] int32.
torch::Tensor synthetic_token_stream(const SyntheticTokenOptions& options);

}  // namespace winnow::data
