// Loader and EvaluationLoader: this rank's slices of the global batches, prefetched in the
// background.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>

#include "data/batch.h"
#include "data/dataset.h"
#include "data/prefetcher.h"
#include "data/sampler.h"

namespace winnow::data {

struct LoaderOptions {
  int64_t global_batch_size = 0;  // samples per optimiser step, summed over ranks
  int64_t rank = 0;
  int64_t world_size = 1;
  uint64_t seed = 0;
  bool shuffle = true;
  // Global sample position to resume from (Loader::position() saved in a checkpoint); must be
  // a multiple of global_batch_size.
  int64_t start_position = 0;
  int64_t prefetch_depth = 2;  // batches prepared ahead on the worker thread; 0 = no thread
};

// An endless stream of training batches: next() returns this rank's slice of global batch b,
// b = start_position / GB, then b + 1, ... over epochs (GlobalSampler with drop_last). Each
// Batch carries global_position (first sample of its global batch), global_batch_size and
// epoch. The stream is a pure function of (dataset size, GB, seed, shuffle) and the position, so
// R loaders together yield exactly the batches of one loader, and a resumed loader continues
// exactly where an uninterrupted one would be. An exception in the worker (e.g. a failing
// fetch) is rethrown by next().
class Loader {
 public:
  Loader(std::shared_ptr<const Dataset> dataset, LoaderOptions options);

  Batch next();

  // Global samples consumed by the batches handed out so far (start_position + k * GB after k
  // calls to next()); save it to resume.
  int64_t position() const { return position_; }
  // Epoch of the next batch next() will return.
  int64_t epoch() const { return sampler_.locate(position_).epoch; }
  int64_t batches_per_epoch() const { return sampler_.batches_per_epoch(); }
  const GlobalSampler& sampler() const { return sampler_; }
  const LoaderOptions& options() const { return options_; }

 private:
  std::shared_ptr<const Dataset> dataset_;
  LoaderOptions options_;
  GlobalSampler sampler_;
  int64_t first_batch_;
  int64_t position_;
  std::unique_ptr<Prefetcher> prefetcher_;  // last: its worker uses the members above
};

struct EvaluationOptions {
  int64_t global_batch_size = 0;  // samples per evaluation step, summed over ranks
  int64_t rank = 0;
  int64_t world_size = 1;
  int64_t prefetch_depth = 2;
};

// One pass over the whole dataset in id order, for evaluation: global batch b holds ids
// [b*GB, min(N, (b+1)*GB)), sliced by rank like training batches. Nothing is dropped: the last
// global batch may be short, and a rank's slice may be empty (when R > that batch's size), but
// every rank gets the same num_batches() batches so collectives stay in lockstep.
// Batch::global_batch_size is the size of that global batch (for global averages),
// global_position its first id, epoch 0.
class EvaluationLoader {
 public:
  EvaluationLoader(std::shared_ptr<const Dataset> dataset, EvaluationOptions options);

  // The next batch, or empty after num_batches() batches.
  std::optional<Batch> next();
  // ceil(N / GB), the same on every rank.
  int64_t num_batches() const { return sampler_.batches_per_epoch(); }

 private:
  std::shared_ptr<const Dataset> dataset_;
  EvaluationOptions options_;
  GlobalSampler sampler_;
  std::unique_ptr<Prefetcher> prefetcher_;
};

}  // namespace winnow::data
