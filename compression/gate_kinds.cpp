// Gate kinds: skip lists, LayerDrop and Progressive Layer Dropping, and their registry.
#include "compression/gate_kinds.h"

#include <torch/torch.h>

#include <cmath>
#include <sstream>

namespace winnow::compression {
namespace {

// A static skip list: the gated layers are removed.
class SkipGate final : public GateKind {
 public:
  explicit SkipGate(const GateConfig& c) {
    TORCH_CHECK(!c.layers.empty(),
                "gate.layers: gate.kind=skip needs the layers to skip, e.g. --gate.layers=2,4");
  }
  bool skips() const override { return true; }
  double keep_probability(int64_t, int64_t, int64_t) const override { return 0.0; }
  double final_keep_probability(int64_t, int64_t) const override { return 0.0; }
};

// LayerDrop (Fan et al. 2019): every gated layer is dropped with the same probability.
class LayerDropGate final : public GateKind {
 public:
  explicit LayerDropGate(const GateConfig& c) : drop_(c.drop) {}
  double keep_probability(int64_t, int64_t, int64_t) const override { return 1.0 - drop_; }
  double final_keep_probability(int64_t, int64_t) const override { return 1.0 - drop_; }
  std::string describe() const override {
    std::ostringstream out;
    out << ", drop " << drop_;
    return out.str();
  }

 private:
  double drop_;
};

// PLD (Zhang & He 2020): p_l = 1 − (l/L)(1 − θ(t)), l = 1..L counting blocks from the input.
class ProgressiveLayerDropGate final : public GateKind {
 public:
  explicit ProgressiveLayerDropGate(const GateConfig& c) : config_(c) {}
  double keep_probability(int64_t layer, int64_t depth, int64_t step) const override {
    return keep_at_theta(layer, depth, pld_theta(config_, step));
  }
  // θ(∞) = θ̄.
  double final_keep_probability(int64_t layer, int64_t depth) const override {
    return keep_at_theta(layer, depth, config_.theta_bar);
  }
  std::string describe() const override {
    std::ostringstream out;
    out << ", theta_bar " << config_.theta_bar << ", gamma " << config_.gamma;
    return out.str();
  }

 private:
  static double keep_at_theta(int64_t layer, int64_t depth, double theta) {
    return 1.0 - (static_cast<double>(layer + 1) / static_cast<double>(depth)) * (1.0 - theta);
  }
  GateConfig config_;
};

}  // namespace

double pld_theta(const GateConfig& config, int64_t step) {
  return (1.0 - config.theta_bar) * std::exp(-config.gamma * static_cast<double>(step)) +
         config.theta_bar;
}

const GateKindRegistry& gate_kind_registry() {
  using Kind = std::shared_ptr<const GateKind>;
  static const GateKindRegistry registry(
      "gate.kind: expected one of {names}; got '{name}'",
      {
          {"none", "every layer runs", [](const GateConfig&) { return Kind(); }},
          {"skip", "the listed layers never run",
           [](const GateConfig& c) { return Kind(std::make_shared<SkipGate>(c)); }},
          {"layerdrop", "each gated layer is dropped with probability gate.drop",
           [](const GateConfig& c) { return Kind(std::make_shared<LayerDropGate>(c)); }},
          {"pld", "Progressive Layer Dropping: keep probability falls with depth and time",
           [](const GateConfig& c) { return Kind(std::make_shared<ProgressiveLayerDropGate>(c)); }},
      });
  return registry;
}

}  // namespace winnow::compression
