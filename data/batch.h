// Batch: one rank's slice of a global batch, as the trainer consumes it.
#pragma once

#include <torch/torch.h>

namespace winnow::data {

// Every tensor is on the CPU when it leaves the loader; the trainer moves it to its device.
struct Batch {
  // Images: float32 [B, C, H, W], normalised with the dataset's mean/std.
  // Text:   int64   [B, T] token ids (the first T tokens of each window).
  torch::Tensor inputs;
  // Images: int64 [B] class labels.  Text: int64 [B, T] next-token ids (inputs shifted by one).
  torch::Tensor targets;
  // int64 [B]: index of each sample in the dataset (the key for keyed randomness; stable across
  // world sizes and epochs, so a sample gets the same random choices on any number of ranks).
  torch::Tensor sample_ids;
  // Global position of the first sample of the *global* batch this slice belongs to
  // (samples consumed before it, over all epochs and ranks).
  int64_t global_position = 0;
  // Number of samples in the whole global batch (sum over ranks), for global loss normalisation.
  int64_t global_batch_size = 0;
  int64_t epoch = 0;

  int64_t size() const { return sample_ids.defined() ? sample_ids.size(0) : 0; }
};

}  // namespace winnow::data
