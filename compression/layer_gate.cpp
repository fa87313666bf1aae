// Layer gates: static skip lists, LayerDrop and Progressive Layer Dropping.
#include "compression/layer_gate.h"

#include <torch/torch.h>

#include <cmath>
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

const std::vector<std::string>& gate_kinds() {
  static const std::vector<std::string> kinds = {"none", "skip", "layerdrop", "pld"};
  return kinds;
}

LayerGateSchedule::LayerGateSchedule(const GateConfig& c, int64_t depth)
    : kind_(c.kind),
      depth_(depth),
      drop_(c.drop),
      theta_bar_(c.theta_bar),
      gamma_(c.gamma),
      scale_(c.scale),
      eval_(c.eval) {
  bool known = false;
  std::string names;
  for (const auto& k : gate_kinds()) {
    known = known || k == c.kind;
    names += (names.empty() ? "" : ", ") + k;
  }
  TORCH_CHECK(known, "gate.kind: expected one of ", names, "; got '", c.kind, "'");
  TORCH_CHECK(c.eval == "auto" || c.eval == "all" || c.eval == "same",
              "gate.eval: expected auto, all or same, got '", c.eval, "'");
  TORCH_CHECK(c.drop >= 0.0 && c.drop < 1.0, "gate.drop: expected a probability in [0, 1), got ",
              c.drop);
  TORCH_CHECK(c.theta_bar > 0.0 && c.theta_bar <= 1.0, "gate.theta_bar: expected (0, 1], got ",
              c.theta_bar);
  TORCH_CHECK(c.gamma >= 0.0, "gate.gamma: expected >= 0, got ", c.gamma);
  gated_.assign(static_cast<size_t>(depth), false);
  if (kind_ == "none") {
    TORCH_CHECK(c.layers.empty(), "gate.layers: given, but gate.kind is none");
    return;
  }
  TORCH_CHECK(kind_ != "skip" || !c.layers.empty(),
              "gate.layers: gate.kind=skip needs the layers to skip, e.g. --gate.layers=2,4");
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

double LayerGateSchedule::pld_theta(int64_t step) const {
  return (1.0 - theta_bar_) * std::exp(-gamma_ * static_cast<double>(step)) + theta_bar_;
}

double LayerGateSchedule::keep_probability(int64_t layer, int64_t step) const {
  if (!gated(layer)) return 1.0;
  if (kind_ == "skip") return 0.0;
  if (kind_ == "layerdrop") return 1.0 - drop_;
  // PLD (Zhang & He 2020): p_l = 1 − (l/L)(1 − θ(t)), l = 1..L counting blocks from the input.
  const double l = static_cast<double>(layer + 1), depth = static_cast<double>(depth_);
  return 1.0 - (l / depth) * (1.0 - pld_theta(step));
}

LayerGate LayerGateSchedule::at(int64_t layer, int64_t step, bool training) const {
  LayerGate gate;
  if (!gated(layer)) return gate;
  if (kind_ == "skip") {
    if (training || eval_ != "all") gate.mode = LayerGate::Mode::kSkip;
    return gate;
  }
  if (!training && eval_ != "same") return gate;  // auto and all: stochastic gates run all
  gate.mode = LayerGate::Mode::kStochastic;
  // In evaluation with eval=same: the long-run probability (θ(∞) = θ̄ for PLD).
  gate.keep_probability =
      training
          ? keep_probability(layer, step)
          : (kind_ == "pld" ? 1.0 - (static_cast<double>(layer + 1) / static_cast<double>(depth_)) *
                                        (1.0 - theta_bar_)
                            : 1.0 - drop_);
  gate.scale_update = scale_;
  return gate;
}

std::string LayerGateSchedule::describe() const {
  if (!enabled()) return "every layer runs";
  std::ostringstream out;
  out << kind_ << " on layers";
  for (int64_t l = 0; l < depth_; ++l)
    if (gated(l)) out << " " << l;
  if (kind_ == "layerdrop") out << ", drop " << drop_;
  if (kind_ == "pld") out << ", theta_bar " << theta_bar_ << ", gamma " << gamma_;
  if (kind_ != "skip") out << (scale_ ? ", updates scaled 1/p" : ", unscaled");
  out << ", eval " << eval_;
  return out.str();
}

}  // namespace winnow::compression
