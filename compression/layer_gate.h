// Layer gates: which blocks run at a step (layer pruning inside the plan). A static skip list,
// LayerDrop (every gated layer dropped with the same probability) and Progressive Layer Dropping
// (PLD: keep probabilities that fall with depth and with training time).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

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

// [gate]: which layers are gated and how.
struct GateConfig {
  std::string kind = "none";  // none | skip | layerdrop | pld (gate_kinds())
  // skip: the skipped layers; layerdrop/pld: the gated layers (empty = every layer).
  std::vector<int64_t> layers;
  double drop = 0.1;       // layerdrop: probability that a gated layer is dropped at a step
  double theta_bar = 0.5;  // pld: θ̄, the keep probability of the last layer in the long run
  double gamma = 0.001;    // pld: γ, how fast θ(t) falls from 1 to θ̄ (per step)
  bool scale = true;       // layerdrop/pld: scale a kept layer's update by 1/p (PLD's paper)
  // auto: skip lists also skip in evaluation, stochastic gates run every layer; all: every layer
  // runs in evaluation; same: the training gates (stochastic ones at their final probability).
  std::string eval = "auto";
};

const std::vector<std::string>& gate_kinds();

// The gate of every layer at every step, from a GateConfig. Validation errors name gate.*.
class LayerGateSchedule {
 public:
  LayerGateSchedule() = default;
  LayerGateSchedule(const GateConfig& config, int64_t depth);

  bool enabled() const { return kind_ != "none"; }
  // The gate of `layer` at training step `step`, or in evaluation.
  LayerGate at(int64_t layer, int64_t step, bool training) const;
  // PLD's global keep value θ(t) = (1 − θ̄)·e^(−γt) + θ̄.
  double pld_theta(int64_t step) const;
  // Probability that `layer` runs at `step` (1 for ungated layers, 0 for skipped ones).
  double keep_probability(int64_t layer, int64_t step) const;
  std::string describe() const;

 private:
  bool gated(int64_t layer) const;

  std::string kind_ = "none";
  int64_t depth_ = 0;
  std::vector<bool> gated_;  // [depth]
  double drop_ = 0.0, theta_bar_ = 0.5, gamma_ = 0.0;
  bool scale_ = true;
  std::string eval_ = "auto";
};

}  // namespace winnow::compression
