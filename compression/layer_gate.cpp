// Layer gates: the per-step gate of every layer, from the configured gate kind.
#include "compression/layer_gate.h"

#include <torch/torch.h>

#include <sstream>

#include "data/keyed_random.h"

namespace winnow::compression {
namespace {

// Separates gate decisions from every other keyed stream that hashes (seed, ...) tuples.
constexpr uint64_t kLayerGateDomain = 0x6C61796572676174ULL;  // "layergat"

}  // namespace

bool LayerGate::runs(uint64_t seed, int64_t step, int64_t layer) const {
  switch (mode) {
    case Mode::kRun:
      return true;
    case Mode::kSkip:
      return false;
    case Mode::kStochastic:
      break;
  }
  if (keep_probability >= 1.0) return true;
  const double u = data::unit_interval(data::hash_keys(
      {kLayerGateDomain, seed, static_cast<uint64_t>(step), static_cast<uint64_t>(layer)}));
  return u < keep_probability;
}

double LayerGate::update_scale() const {
  return mode == Mode::kStochastic && scale_update && keep_probability > 0.0
             ? 1.0 / keep_probability
             : 1.0;
}

std::string LayerGate::describe() const {
  switch (mode) {
    case Mode::kRun:
      return "run";
    case Mode::kSkip:
      return "skip";
    case Mode::kStochastic: {
      std::ostringstream out;
      out << "p=" << keep_probability << (scale_update ? " (1/p)" : "");
      return out.str();
    }
  }
  return "?";
}

LayerGateSchedule::LayerGateSchedule(const GateConfig& c, int64_t depth)
    : config_(c), depth_(depth) {
  const auto* kind = gate_kind_registry().find(c.kind);
  TORCH_CHECK(kind != nullptr, gate_kind_registry().unknown_name_message(c.kind));
  TORCH_CHECK(c.eval == "auto" || c.eval == "all" || c.eval == "same",
              "gate.eval: expected auto, all or same, got '", c.eval, "'");
  TORCH_CHECK(c.drop >= 0.0 && c.drop < 1.0, "gate.drop: expected a probability in [0, 1), got ",
              c.drop);
  TORCH_CHECK(c.theta_bar > 0.0 && c.theta_bar <= 1.0, "gate.theta_bar: expected (0, 1], got ",
              c.theta_bar);
  TORCH_CHECK(c.gamma >= 0.0, "gate.gamma: expected >= 0, got ", c.gamma);
  gated_.assign(static_cast<size_t>(depth), false);
  kind_ = kind->create(c);
  if (!kind_) {
    TORCH_CHECK(c.layers.empty(), "gate.layers: given, but gate.kind is none");
    return;
  }
  for (int64_t layer : c.layers) {
    TORCH_CHECK(layer >= 0 && layer < depth, "gate.layers: layer ", layer, " outside [0, ", depth,
                ")");
    gated_[static_cast<size_t>(layer)] = true;
  }
  if (c.layers.empty()) gated_.assign(static_cast<size_t>(depth), true);
}

bool LayerGateSchedule::gated(int64_t layer) const {
  return layer >= 0 && layer < depth_ && gated_[static_cast<size_t>(layer)];
}

double LayerGateSchedule::keep_probability(int64_t layer, int64_t step) const {
  if (!gated(layer)) return 1.0;
  return kind_->keep_probability(layer, depth_, step);
}

LayerGate LayerGateSchedule::at(int64_t layer, int64_t step, bool training) const {
  LayerGate gate;
  if (!gated(layer)) return gate;
  const std::string& eval = config_.eval;
  if (kind_->skips()) {
    if (training || eval != "all") gate.mode = LayerGate::Mode::kSkip;
    return gate;
  }
  if (!training && eval != "same") return gate;  // auto and all: stochastic gates run all
  gate.mode = LayerGate::Mode::kStochastic;
  // In evaluation with eval=same: the long-run probability (θ(∞) = θ̄ for PLD).
  gate.keep_probability =
      training ? keep_probability(layer, step) : kind_->final_keep_probability(layer, depth_);
  gate.scale_update = config_.scale;
  return gate;
}

std::string LayerGateSchedule::describe() const {
  if (!enabled()) return "every layer runs";
  std::ostringstream out;
  out << config_.kind << " on layers";
  for (int64_t l = 0; l < depth_; ++l)
    if (gated(l)) out << " " << l;
  out << kind_->describe();
  if (!kind_->skips()) out << (config_.scale ? ", updates scaled 1/p" : ", unscaled");
  out << ", eval " << config_.eval;
  return out.str();
}

}  // namespace winnow::compression
