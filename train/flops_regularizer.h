// The FLOPs regulariser of learned thresholds (LTMP): an auxiliary loss that pulls each sample's
// block FLOPs, counted on its live tokens, toward a target fraction of the dense model's.
#pragma once

#include "compression/criterion.h"
#include "train/model.h"

namespace winnow::train {

struct FlopsRegularizerOptions {
  // compress.target_flops: the target fraction of the dense block FLOPs, in (0, 1]; 0 = off.
  double target = 0.0;
  // compress.flops_loss: the loss weight λ (LTMP's reg_scale 10).
  double weight = 10.0;

  bool enabled() const { return target > 0.0; }
  void validate() const;
};

// LTMP (Bonnaerens & Dambre, TMLR 2023; Mxbonn/ltmp 1a9c055, tools/train.py train_one_epoch):
//   r_b = live_block_flops_b / dense_block_flops            (ModelOutput::live_block_flops)
//   aux loss "flops" = Σ_b (r_b − target)²,  weight λ        (the trainer divides by the global
//                                                              sample count)
// r_b counts each block at its live token counts (attention quadratic in them, MLP linear) with
// compression/flops.h, so with straight-through keep masks its gradient reaches the thresholds
// through σ'. LTMP takes (r̄ − target)² of the batch's mean mask instead; a per-sample sum is a sum
// over samples like every winnow loss, so it is the same on any number of ranks and
// micro-batches (docs/methods.md, where we differ).
class FlopsRegularizer {
 public:
  FlopsRegularizer(FlopsRegularizerOptions options, double dense_block_flops);

  // The FLOPs ratio r_b of each sample: [B] float64 (on the autograd graph of the keep masks).
  torch::Tensor ratios(const ModelOutput& output) const;
  // Adds the loss "flops" to `losses` (training) and the metric "flops_ratio" (Σ r_b over B
  // samples) to `metrics`; either may be null.
  void add(const ModelOutput& output, compression::AuxLosses* losses,
           compression::AuxMetrics* metrics) const;

  const FlopsRegularizerOptions& options() const { return options_; }

 private:
  FlopsRegularizerOptions options_;
  double dense_block_flops_;
};

}  // namespace winnow::train
