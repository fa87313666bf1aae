// Inference throughput of a trained model under its evaluation plan, measured in the same process
// and in alternating rounds with the same model run dense, and per layer what its attention
// costs: analytic FLOPs, measured wall time, tokens kept, and which original positions survive.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "compression/planner.h"
#include "data/dataset.h"
#include "dist/communicator.h"
#include "train/model.h"

namespace winnow::train {

struct InferenceSpeedOptions {
  int64_t batch = 64;  // global samples per timed forward pass (split over ranks like evaluation)
  int64_t rounds = 5;  // timed rounds after one warm-up round; 0 = no measurement
  uint64_t seed = 0;
  int64_t step = 0;  // the training step whose evaluation plan runs (keyed choices)
  // The evaluation plan comes from this planner (plan(step, training = false)); null = dense.
  const compression::Planner* planner = nullptr;
  // The dense reference; null = the measured model itself run without its plan. A run whose
  // planner removed blocks passes a model of the configured depth, so the speedup is the one
  // against the model the user configured (only its speed matters: the weights can be fresh).
  TransformerModel* dense_model = nullptr;

  void validate() const;
};

// Samples per second of each timed round, and their median and range.
struct ThroughputRounds {
  std::vector<double> samples_per_second;  // one per timed round
  double median = 0.0, min = 0.0, max = 0.0;
};
// From the seconds of each round's pass over `samples` samples.
ThroughputRounds throughput_of(const std::vector<double>& seconds, double samples);
// The median of `values` (the mean of the middle two for an even count); 0 for none.
double median_of(std::vector<double> values);

// Per layer (index = layer), per sample, over the timed rounds.
struct LayerProfile {
  std::vector<double> tokens;                  // tokens entering the block's attention
  std::vector<double> attention_flops;         // analytic forward FLOPs of the attention module
  std::vector<double> attention_core_flops;    // of its scores and weighted sum (∝ tokens²)
  std::vector<double> attention_seconds;       // measured wall time of the attention module
  std::vector<double> attention_core_seconds;  // of its core (masks, scores, softmax, sum)
};

struct InferenceSpeed {
  int64_t batch = 0;             // global samples per pass
  int64_t rounds = 0;            // timed rounds; 0 = not measured
  ThroughputRounds plan, dense;  // samples/s of the whole job (all ranks)
  // Median over the timed rounds of plan / dense samples/s, each round's pair measured back to
  // back, so slow drift of a shared machine cancels.
  double speedup = 0.0;
  LayerProfile plan_layers, dense_layers;
  // [layers × positions] row-major, from one untimed pass of the plan: the fraction of samples in
  // which original position p entered layer l's attention (1 everywhere when dense).
  std::vector<double> kept_position_fraction;
  int64_t dense_depth = 0;                   // blocks of the dense reference
  int64_t positions = 0;                     // the model's dense token count
  std::pair<int64_t, int64_t> patch_grid{};  // image models: positions 1.. on this grid

  bool measured() const { return rounds > 0; }
};

// Runs each of `passes` once per round for `rounds` timed rounds after one warm-up round whose
// times are discarded. Timed round r runs the passes in order when r is even and in reverse order
// when odd (A B, B A, A B, ...), so neither is always first. A pass gets whether it is timed and
// returns its seconds. Returns seconds[pass][timed round].
std::vector<std::vector<double>> time_alternating(
    const std::vector<std::function<double(bool timed)>>& passes, int64_t rounds);

// Collective. Times forward passes (no gradient, eval mode) of the first `batch` samples of
// `dataset` under the evaluation plan and dense (options.dense_model, or the model without its
// plan), alternating (time_alternating). Each rank runs
// its contiguous slice of the batch; every pass starts on all ranks together (a barrier before
// it) and counts the slowest rank's time (a max after it), so samples/s is the job's. Per-layer
// attention times are the blocks' own (BlockMeasurement), summed over ranks per sample. Leaves
// the model in eval mode. Returns an unmeasured result when options.rounds is 0.
InferenceSpeed measure_inference_speed(TransformerModel& model, const data::Dataset& dataset,
                                       dist::Communicator& comm,
                                       const InferenceSpeedOptions& options);

// The line `winnow eval` prints, e.g. "inference: 1234 img/s (median of 5 rounds of 64 samples,
// range 1200-1250) vs dense 800 img/s (range 790-810): 1.54x (FLOPs 1.67x)" ("vs dense with 8
// blocks" when the reference is deeper than the measured model), in the model's
// throughput unit (images or tokens per second); `flops_ratio` is the dense over the planned
// forward FLOPs (the part in parentheses is left out when it is NaN: no evaluation).
std::string inference_speed_line(const InferenceSpeed& speed, const TaskUnits& units,
                                 double flops_ratio);

}  // namespace winnow::train
