// Implements Loader and EvaluationLoader on top of GlobalSampler and Prefetcher.
#include "data/loader.h"

#include <torch/torch.h>

namespace winnow::data {
namespace {

std::shared_ptr<const Dataset> checked(std::shared_ptr<const Dataset> dataset) {
  TORCH_CHECK(dataset != nullptr, "loader: expected a dataset, got nullptr");
  TORCH_CHECK(dataset->size() >= 1, "loader: dataset ", dataset->describe(),
              " is empty; expected at least one sample");
  return dataset;
}

void check_rank(int64_t rank, int64_t world_size) {
  TORCH_CHECK(world_size >= 1, "loader: expected world_size >= 1, got ", world_size);
  TORCH_CHECK(rank >= 0 && rank < world_size, "loader: expected rank in [0, ", world_size,
              "), got ", rank);
}

}  // namespace

Loader::Loader(std::shared_ptr<const Dataset> dataset, LoaderOptions options)
    : dataset_(checked(std::move(dataset))),
      options_(options),
      sampler_(dataset_->size(), options.global_batch_size, options.seed, options.shuffle,
               /*drop_last=*/true),
      first_batch_(0),
      position_(options.start_position) {
  check_rank(options_.rank, options_.world_size);
  TORCH_CHECK(
      options_.start_position >= 0 && options_.start_position % options_.global_batch_size == 0,
      "loader: start_position must be a non-negative multiple of the global batch size ",
      options_.global_batch_size, ", got ", options_.start_position,
      " (was the checkpoint written with a different global batch size?)");
  TORCH_CHECK(options_.prefetch_depth >= 0, "loader: expected prefetch_depth >= 0, got ",
              options_.prefetch_depth);
  first_batch_ = options_.start_position / options_.global_batch_size;
  auto produce = [this](int64_t index) {
    const int64_t global_batch = first_batch_ + index;
    Batch batch = dataset_->fetch(sampler_.slice(global_batch, options_.rank, options_.world_size));
    batch.global_position = sampler_.position_of_batch(global_batch);
    batch.global_batch_size = options_.global_batch_size;
    batch.epoch = sampler_.epoch_of_batch(global_batch);
    return batch;
  };
  prefetcher_ = std::make_unique<Prefetcher>(produce, /*count=*/-1, options_.prefetch_depth);
}

Batch Loader::next() {
  std::optional<Batch> batch = prefetcher_->next();
  TORCH_INTERNAL_ASSERT(batch.has_value(), "the training stream is endless");
  position_ += options_.global_batch_size;
  return std::move(*batch);
}

EvaluationLoader::EvaluationLoader(std::shared_ptr<const Dataset> dataset,
                                   EvaluationOptions options)
    : dataset_(checked(std::move(dataset))),
      options_(options),
      sampler_(dataset_->size(), options.global_batch_size, /*seed=*/0, /*shuffle=*/false,
               /*drop_last=*/false) {
  check_rank(options_.rank, options_.world_size);
  TORCH_CHECK(options_.prefetch_depth >= 0, "evaluation loader: expected prefetch_depth >= 0, got ",
              options_.prefetch_depth);
  auto produce = [this](int64_t index) {
    Batch batch = dataset_->fetch(sampler_.slice(index, options_.rank, options_.world_size));
    batch.global_position = sampler_.position_of_batch(index);
    batch.global_batch_size = sampler_.batch_size_of(index);
    batch.epoch = 0;
    return batch;
  };
  prefetcher_ = std::make_unique<Prefetcher>(produce, num_batches(), options_.prefetch_depth);
}

std::optional<Batch> EvaluationLoader::next() {
  return prefetcher_->next();
}

}  // namespace winnow::data
