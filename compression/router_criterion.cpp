// The Mixture-of-Depths router and its causal predictor as a learned criterion.
#include "compression/router_criterion.h"

#include <cmath>
#include <string>

#include "compression/flops.h"

namespace winnow::compression {

RouterLayerImpl::RouterLayerImpl(int64_t width) {
  TORCH_CHECK(width > 0, "router criterion: expected a model width > 0, got ", width);
  router =
      register_module("router", torch::nn::Linear(torch::nn::LinearOptions(width, 1).bias(false)));
  predictor = register_module("predictor", RoutePredictor(width));
  // Small router logits at the start: σ(r) ≈ ½ and α·tanh(r) + β ≈ β for every token, so an
  // untrained router neither orders tokens strongly nor switches blocks off.
  torch::NoGradGuard no_grad;
  router->weight.normal_(0.0, 0.02);
}

void RouterCriterion::create_parameters(torch::nn::Module& stage,
                                        const std::vector<int64_t>& layers, int64_t width) {
  for (int64_t layer : layers) {
    TORCH_CHECK(!layers_.count(layer), "router criterion: layer ", layer, " given twice");
    layers_.emplace(layer, stage.register_module(std::to_string(layer), RouterLayer(width)));
  }
  if (saliency_.loss > 0) {
    TORCH_CHECK(!table_, "router criterion: its saliency table was already made");
    table_ = std::make_shared<TokenSaliencyTable>(
        saliency_.table,
        saliency_.source_layer >= 0 ? std::vector<int64_t>{saliency_.source_layer} : layers);
  }
}

RouterLayer RouterCriterion::layer(int64_t layer) const {
  const auto it = layers_.find(layer);
  if (it != layers_.end()) return it->second;
  std::string names;
  for (const auto& entry : layers_)
    names += (names.empty() ? "" : ",") + std::to_string(entry.first);
  TORCH_CHECK(false, "router criterion: no parameters for layer ", layer, " (it has layers ",
              names.empty() ? std::string("none") : names,
              "); parameters are created for the stage's configured layers");
  return nullptr;
}

double RouterCriterion::score_flops(double tokens, int64_t width) const {
  const int64_t hidden = RoutePredictorImpl::hidden_width(width);
  return linear_forward_flops(tokens, width, 1) + linear_forward_flops(tokens, width, hidden) +
         linear_forward_flops(tokens, hidden, 1);
}

torch::Tensor RouterCriterion::score(const TokenState& state, const ScoreContext& context) const {
  return layer(context.layer)->router->forward(state.x).squeeze(-1);  // [B, N]
}

torch::Tensor RouterCriterion::routing_log_odds(const TokenState& state,
                                                const ScoreContext& context) const {
  // Stop-gradient: the predictor learns from the block inputs but never shapes them.
  return layer(context.layer)->predictor->forward(state.x.detach());  // [B, N]
}

void RouterCriterion::add_losses(const TokenState& reduced, const ScoreContext& context) const {
  if (reduced.reducible() == 0) return;
  TORCH_CHECK(reduced.keep.defined() && reduced.keep.sizes() == reduced.x.sizes().slice(0, 2),
              "router criterion: expected the block's input with keep = the top-k membership [B, "
              "N], got ",
              reduced.keep.defined() ? reduced.keep.sizes() : torch::IntArrayRef{});
  const int64_t protect = reduced.protected_count;
  const auto logits = routing_log_odds(reduced, context).slice(1, protect);  // [B, R]
  const auto membership = reduced.keep.detach().slice(1, protect);           // [B, R]
  if (context.aux_losses && predictor_loss_ > 0)
    add_aux_loss(*context.aux_losses, "router_predictor", route_predictor_loss(logits, membership),
                 predictor_loss_);
  if (context.metrics)
    add_aux_metric(*context.metrics, "router_predictor_accuracy",
                   route_predictor_correct(logits, membership),
                   static_cast<double>(membership.numel()));
  if (table_) add_saliency_loss(reduced, context, membership);
}

void RouterCriterion::add_saliency_loss(const TokenState& reduced, const ScoreContext& context,
                                        const torch::Tensor& membership) const {  // [B, R]
  const int64_t protect = reduced.protected_count;
  const int64_t capacity = static_cast<int64_t>(std::llround(membership[0].sum().item<double>()));
  const int64_t row = saliency_.source_layer >= 0 ? saliency_.source_layer : context.layer;
  const auto keys = table_->keys_of(reduced.positions(), context.token_ids);  // [B, N]
  // The top-C by table value; unseen keys (init +∞) first, ties to the lower index.
  const auto target = saliency_top_k_membership(table_->lookup(row, keys), protect, capacity)
                          .slice(1, protect)
                          .to(reduced.x.device());  // [B, R]
  if (context.aux_losses) {
    const auto logits =
        layer(context.layer)->router->forward(reduced.x.detach()).squeeze(-1).slice(1, protect);
    // The same Σ-over-samples mean BCE as the predictor's (route_predictor_loss).
    add_aux_loss(*context.aux_losses, "router_saliency", route_predictor_loss(logits, target),
                 saliency_.loss);
  }
  if (context.metrics)
    add_aux_metric(
        *context.metrics, "router_saliency_agreement",
        (membership > 0.5).logical_and(target.to(membership.device()) > 0.5).sum().item<double>(),
        static_cast<double>(capacity * membership.size(0)));
}

}  // namespace winnow::compression
