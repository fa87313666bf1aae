// Gate kinds: how the gated layers of a [gate] section run at each step. A static skip list,
// LayerDrop (every gated layer dropped with the same probability) and Progressive Layer Dropping
// (PLD: keep probabilities that fall with depth and with training time), one registry line each.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/registry.h"

namespace winnow::compression {

// [gate]: which layers are gated and how.
struct GateConfig {
  std::string kind = "none";  // a gate_kind_registry() name: none | skip | layerdrop | pld
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

// What one gate kind decides for a gated layer; LayerGateSchedule applies it to the gated layers
// and handles evaluation modes and update scaling, which are the same for every kind.
class GateKind {
 public:
  virtual ~GateKind() = default;
  // Gated layers never run (a skip list), instead of running with a probability.
  virtual bool skips() const { return false; }
  // Probability that gated `layer` (of `depth` blocks) runs at training step `step`.
  virtual double keep_probability(int64_t layer, int64_t depth, int64_t step) const = 0;
  // The same in the long run (evaluation with gate.eval=same).
  virtual double final_keep_probability(int64_t layer, int64_t depth) const = 0;
  // The kind's own parameters for the run header, e.g. ", drop 0.1" (empty for none).
  virtual std::string describe() const { return ""; }
};

// Kinds by gate.kind. "none" makes no GateKind (null: no layer is gated); the others validate
// their own options (errors name gate.*).
using GateKindRegistry = data::Registry<std::shared_ptr<const GateKind>, const GateConfig&>;
const GateKindRegistry& gate_kind_registry();

// PLD's global keep value θ(t) = (1 − θ̄)·e^(−γt) + θ̄.
double pld_theta(const GateConfig& config, int64_t step);

}  // namespace winnow::compression
