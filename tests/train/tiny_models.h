// Small synthetic image sets, ViTs and trainer options shared by the single-process trainer and
// checkpoint tests: 8x8 single-channel images of 4 classes, a 2-block ViT of width 32 on 2x2
// patches.
#pragma once

#include <algorithm>
#include <memory>

#include "compression/planner.h"
#include "data/synthetic_dataset.h"
#include "train/gpt.h"
#include "train/trainer.h"
#include "train/vit.h"

namespace winnow::train::tiny {

inline std::shared_ptr<data::SyntheticImageDataset> images(int64_t n, uint64_t seed = 0) {
  data::SyntheticImageOptions o;
  o.size = n;
  o.height = o.width = 8;
  o.num_classes = 4;
  o.seed = seed;
  o.noise = 0.5;
  return std::make_shared<data::SyntheticImageDataset>(o);
}

inline std::shared_ptr<VisionTransformerImpl> small_vit(int64_t depth = 2, int64_t dim = 32) {
  VitOptions o;
  o.image_height = o.image_width = 8;
  o.patch = 2;
  o.dim = dim;
  o.depth = depth;
  o.heads = 2;
  o.num_classes = 4;
  return std::make_shared<VisionTransformerImpl>(o);
}

// A GPT of `depth` blocks of width `dim`, 2 heads, on `vocab` token ids and `context` positions.
inline std::shared_ptr<GptImpl> small_gpt(int64_t vocab, int64_t context, int64_t dim = 16,
                                          int64_t depth = 2) {
  GptOptions o;
  o.vocab_size = vocab;
  o.context = context;
  o.dim = dim;
  o.depth = depth;
  o.heads = 2;
  return std::make_shared<GptImpl>(o);
}

// Trainer options for a short quiet run: `steps` steps of `global_batch` samples, warmup of at
// most `warmup` steps, a metrics line every `log_every` steps, no progress output.
inline TrainerOptions quick_options(int64_t steps, int64_t global_batch, int64_t warmup,
                                    int64_t log_every) {
  TrainerOptions t;
  t.steps = steps;
  t.global_batch = global_batch;
  t.warmup_steps = std::min<int64_t>(warmup, steps);
  t.log_every = log_every;
  t.progress = false;
  return t;
}

// The planners' view of small_vit(depth, 32): 16 patches on a 4x4 grid + CLS, MLP 4x the width.
inline compression::ModelShape small_vit_shape(int64_t depth) {
  compression::ModelShape shape{depth, 32, 4, 4};
  shape.mlp_hidden = 128;
  shape.tokens = 17;
  shape.protected_tokens = 1;
  return shape;
}

// Prunes layer 1 of small_vit(depth, 32) (16 patches on a 4x4 grid + CLS) to `keep` of the
// patches, at random.
inline std::shared_ptr<compression::StaticPlanner> random_prune_at_layer_one(int64_t depth,
                                                                             double keep) {
  compression::StaticPlannerConfig config;
  compression::StageConfig stage;
  stage.name = "prune";
  stage.reduction.criterion = "random";
  stage.reduction.strategy = "prune";
  stage.reduction.layers = {1};
  stage.reduction.keep = {keep};
  config.stages.push_back(stage);
  return std::make_shared<compression::StaticPlanner>(config,
                                                      compression::ModelShape{depth, 32, 4, 4});
}

}  // namespace winnow::train::tiny
