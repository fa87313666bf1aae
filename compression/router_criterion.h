// router: Mixture-of-Depths' learned router (Raposo et al., 2024) — per routed block a scalar
// r_i = wᵀx_i (a linear map with no bias, on the raw residual stream, as in the paper), whose
// top-C tokens run the block (strategy weighted_route scales their update by w(r)); and the
// block's causal routing predictor (route_predictor.h), trained on stop-gradient inputs against
// the top-C membership, which routes tokens one at a time in evaluation (eval = causal).
// Optionally supervised by gradients (co_compression.md §7.6 point 5): a BCE pulls σ(r) toward
// the top-C membership by the EMA of the Taylor skip saliency τ = |⟨∂L/∂y, y − x⟩| that earlier
// backward passes measured at the routed block, keyed by token id (text) or position (images).
#pragma once

#include <map>
#include <memory>

#include "compression/criterion.h"
#include "compression/route_predictor.h"
#include "compression/token_saliency.h"

namespace winnow::compression {

// One routed block's parameters: compress.<stage>.<layer>.router.weight ([1, C]) and
// compress.<stage>.<layer>.predictor.{fc1,fc2}.{weight,bias}.
class RouterLayerImpl : public torch::nn::Module {
 public:
  explicit RouterLayerImpl(int64_t width);
  torch::nn::Linear router{nullptr};
  RoutePredictor predictor{nullptr};
};
TORCH_MODULE(RouterLayer);

// The saliency supervision of a router: loss weight (0 = none, no table), the table's options
// (keys resolved by the planner) and its source block (-1: each routed block its own).
struct RouterSaliencyTarget {
  double loss = 0.0;
  SaliencyTableOptions table;
  int64_t source_layer = -1;
};

class RouterCriterion : public Criterion {
 public:
  // predictor_loss: weight of the auxiliary loss "router_predictor" (0 = the predictor is not
  // trained; eval = causal then routes by an untrained predictor).
  explicit RouterCriterion(double predictor_loss = 1.0, RouterSaliencyTarget saliency = {})
      : predictor_loss_(predictor_loss), saliency_(saliency) {}
  std::string name() const override { return "router"; }
  // r = wᵀx for every token, protected ones included (strategies ignore those): [B, N].
  torch::Tensor score(const TokenState& state, const ScoreContext& context) const override;
  // The predictor's log-odds on stop-gradient tokens: [B, N], each from its own token only.
  torch::Tensor routing_log_odds(const TokenState& state,
                                 const ScoreContext& context) const override;
  bool predicts_routing() const override { return true; }
  // `reduced` is the block's input with keep = the top-C membership (route strategies). Adds
  // "router_predictor" = Σ over samples of the mean BCE of the predictor over the reducible
  // tokens (training), and the metric "router_predictor_accuracy" (training and evaluation).
  // With saliency supervision also "router_saliency" = Σ over samples of the mean BCE of σ(r)
  // (r on stop-gradient tokens: it trains w only) against the top-C by table value (training),
  // and the metric "router_saliency_agreement" = the fraction of the routed tokens that are in
  // the saliency top-C.
  void add_losses(const TokenState& reduced, const ScoreContext& context) const override;
  // Also makes the saliency table (one row per routed layer, or the source layer) when
  // supervised.
  void create_parameters(torch::nn::Module& stage, const std::vector<int64_t>& layers,
                         int64_t width) override;
  std::shared_ptr<TokenSaliencyTable> saliency_table() const override { return table_; }
  bool learned() const override { return true; }
  // The router's wᵀx and the predictor's two layers C → max(4, C/8) → 1 on every scored token
  // (the predictor runs in training for its loss and in evaluation to route or for its metric).
  double score_flops(double tokens, int64_t width) const override;

  // The parameters of `layer` (throws when the criterion has none there).
  RouterLayer layer(int64_t layer) const;

 private:
  void add_saliency_loss(const TokenState& reduced, const ScoreContext& context,
                         const torch::Tensor& membership) const;

  double predictor_loss_;
  RouterSaliencyTarget saliency_;
  std::map<int64_t, RouterLayer> layers_;      // by layer
  std::shared_ptr<TokenSaliencyTable> table_;  // null unless saliency_.loss > 0
};

}  // namespace winnow::compression
