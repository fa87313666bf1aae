// Evaluation of a model on a whole dataset, sliced over ranks: top-1 accuracy and mean loss.
#pragma once

#include <limits>
#include <map>
#include <memory>
#include <string>

#include "compression/planner.h"
#include "data/dataset.h"
#include "dist/communicator.h"
#include "train/model.h"

namespace winnow::train {

struct EvalResult {
  int64_t samples = 0;
  double loss = 0.0;      // mean per sample (images) or per target token (text)
  double accuracy = 0.0;  // top-1 (images); next-token accuracy (text)
  double perplexity = 0.0;
  double seconds = 0.0;
  // Analytic forward FLOPs per sample of the evaluation plan (learned scorers included), and the
  // same model's without reduction.
  double forward_flops_per_sample = 0.0;
  double dense_forward_flops_per_sample = 0.0;
  // Statistics the plan's components reported (e.g. router_predictor_accuracy), global
  // sum / count.
  std::map<std::string, double> metrics;

  // Dense over planned forward FLOPs per sample (the FLOPs speedup); NaN without an evaluation.
  double flops_speedup() const {
    return forward_flops_per_sample > 0 ? dense_forward_flops_per_sample / forward_flops_per_sample
                                        : std::numeric_limits<double>::quiet_NaN();
  }
};

struct EvalOptions {
  int64_t batch = 512;      // global samples per evaluation batch
  int64_t max_samples = 0;  // 0 = the whole dataset (the first max_samples otherwise)
  uint64_t seed = 0;
  // The evaluation plan comes from this planner (plan(step, training = false)); null = dense.
  const compression::Planner* planner = nullptr;
  int64_t step = 0;  // the training step evaluated at (keyed choices; planners' eval plans)
  // Also report metrics["flops_ratio"]: each sample's block FLOPs on its live tokens over the
  // dense model's (ModelOutput::live_block_flops; learned thresholds keep a count per sample).
  bool flops_ratio = false;
};

// Samples are taken in dataset order, each evaluation batch split into contiguous rank slices,
// so the result is the same on any number of ranks. Leaves the model in eval mode.
EvalResult evaluate_model(TransformerModel& model, const data::Dataset& dataset,
                          dist::Communicator& comm, const EvalOptions& options);

}  // namespace winnow::train
