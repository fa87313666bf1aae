// Layer gates: which blocks run at a step (layer pruning inside the plan), from a [gate] section
// whose kind (compression/gate_kinds.h) decides the keep probability of each gated layer.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "compression/gate_kinds.h"

namespace winnow::compression {

// What a plan says about one block at one step.
struct LayerGate {
  enum class Mode { kRun, kSkip, kStochastic };
  Mode mode = Mode::kRun;
  double keep_probability = 1.0;  // kStochastic: probability that the block runs
  // kStochastic: scale the block's residual updates by 1/keep_probability when it runs (PLD), so
  // the expected output equals the always-run block's.
  bool scale_update = false;

  // Whether the block runs at (seed, step, layer): a pure function of those keys, so every rank
  // and every resumed run takes the same decision without shared generator state.
  bool runs(uint64_t seed, int64_t step, int64_t layer) const;
  // The factor on the block's residual updates when it runs (1 unless scale_update).
  double update_scale() const;
  std::string describe() const;
};

// The gate of every layer at every step, from a GateConfig. Validation errors name gate.*.
class LayerGateSchedule {
 public:
  LayerGateSchedule() = default;
  LayerGateSchedule(const GateConfig& config, int64_t depth);

  bool enabled() const { return kind_ != nullptr; }
  // The gate of `layer` at training step `step`, or in evaluation.
  LayerGate at(int64_t layer, int64_t step, bool training) const;
  // PLD's global keep value θ(t) (see compression::pld_theta).
  double pld_theta(int64_t step) const { return compression::pld_theta(config_, step); }
  // Probability that `layer` runs at `step` (1 for ungated layers, 0 for skipped ones).
  double keep_probability(int64_t layer, int64_t step) const;
  std::string describe() const;

 private:
  bool gated(int64_t layer) const;

  GateConfig config_;
  std::shared_ptr<const GateKind> kind_;  // null: gate.kind=none
  int64_t depth_ = 0;
  std::vector<bool> gated_;  // [depth]
};

}  // namespace winnow::compression
