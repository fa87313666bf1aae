// Executing a step's plan at the sites of the blocks.
#include "train/plan_hooks.h"

#include <algorithm>

#include "compression/route.h"
#include "compression/token_saliency.h"
#include "compression/weighted_route.h"

namespace winnow::train {
namespace {

using compression::Site;
using compression::TokenState;

// For each slot of `after` (positions [B, M]), its slot in `before` (positions [B, N]): [B, M]
// int64. Reductions keep each surviving slot's original position (a merged slot keeps its
// destination's, a pooled one its window's first), so this maps a reduced state back to the
// state it came from.
torch::Tensor slots_of_positions(const torch::Tensor& before, const torch::Tensor& after) {
  const int64_t span = std::max(before.max().item<int64_t>(), after.max().item<int64_t>()) + 1;
  auto table = torch::full({before.size(0), span}, -1, before.options());
  table.scatter_(1, before,
                 torch::arange(before.size(1), before.options()).expand_as(before).contiguous());
  auto slots = table.gather(1, after);
  TORCH_INTERNAL_ASSERT(slots.min().item<int64_t>() >= 0,
                        "plan: a reduced token's position is not among the block's inputs");
  return slots;
}

// `extra` ([B, N] or [B, N, D], aligned with `before`) re-aligned with `after`.
torch::Tensor align(const torch::Tensor& extra, const torch::Tensor& slots) {
  if (!extra.defined()) return extra;
  if (extra.dim() == 2) return extra.gather(1, slots);
  return extra.gather(1, slots.unsqueeze(-1).expand({-1, -1, extra.size(2)}));
}

}  // namespace

LayerHook::LayerHook(const compression::LayerPlan& plan, compression::ScoreContext context,
                     bool runs, compression::TokenEvolutionMonitor* monitor,
                     std::vector<double> planned_keep)
    : plan_(plan),
      context_(std::move(context)),
      runs_(runs),
      scale_(plan.gate.update_scale()),
      monitor_(monitor),
      planned_keep_(std::move(planned_keep)) {}

void LayerHook::apply(const compression::PlannedReduction& reduction, TokenState& state) {
  const int64_t keep = reduction.keep_of(state.reducible());
  if (keep >= state.reducible()) return;
  const auto index = static_cast<size_t>(&reduction - plan_.reductions.data());
  context_.planned_keep = index < planned_keep_.size() ? planned_keep_[index] : 1.0;
  count_scoring(reduction.method->criterion(), state);
  state = reduction.method->apply(state, context_, keep);
}

void LayerHook::count_scoring(const compression::Criterion& criterion, const TokenState& state) {
  scoring_flops_ += criterion.score_flops(static_cast<double>(state.x.size(0) * state.reducible()),
                                          state.x.size(2));
}

void LayerHook::around_block(TokenState& state, const std::function<void(TokenState&)>& block) {
  const compression::PlannedReduction* route = nullptr;
  for (const auto& reduction : plan_.reductions) {
    if (reduction.site == Site::kPreBlock) apply(reduction, state);
    if (reduction.site == Site::kAroundBlock) route = &reduction;
  }
  if (!route) {
    block(state);
    return;
  }
  const auto& method = *route->method;
  const auto& criterion = method.criterion();
  const auto& strategy = context_.training ? method.strategy() : method.eval_strategy();
  const bool weighted = strategy.traits().scales_update;
  // Mixture-of-Depths routes exactly ⌊c·S⌋ tokens; random-LTD's route keeps EViT's count.
  const int64_t keep = weighted && route->keep_count < 0 && route->remove_count < 0 &&
                               route->keep < 1.0 && state.reducible() > 0
                           ? compression::router_capacity(route->keep, state.reducible())
                           : route->keep_of(state.reducible());
  if (keep >= state.reducible()) {
    block(state);
    return;
  }
  count_scoring(criterion, state);
  const auto scores = criterion.score(state, context_);  // [B, N]
  compression::RoutedTokens routed;
  torch::Tensor active;  // [B, M] bool, causal routing only
  const bool causal = !context_.training && method.causal_eval();
  if (causal) {
    auto causal_routed =
        compression::causal_route_gather(state, criterion.routing_log_odds(state, context_));
    routed = std::move(causal_routed.routed);
    active = causal_routed.active;
    if (context_.metrics && state.reducible() > 0)
      compression::add_aux_metric(*context_.metrics, "causal_routed_fraction",
                                  active.slice(1, state.protected_count).sum().item<double>(),
                                  static_cast<double>(state.batch() * state.reducible()));
  } else {
    routed = compression::route_gather(state, scores, keep);
  }
  // The criterion's losses and metrics read the top-k membership of the block's input.
  if (context_.aux_losses || context_.metrics) {
    TokenState membership = state;
    const auto top = causal ? compression::route_gather(state, scores, keep).indices
                            : routed.indices;  // [B, P + K]
    membership.keep =
        torch::zeros({state.batch(), state.tokens()}, state.x.options()).scatter_(1, top, 1.0);
    criterion.add_losses(membership, context_);
  }
  if (routed.indices.size(1) == 0) return;            // no token of the batch runs the block
  const torch::Tensor routed_input = routed.state.x;  // [B, M, C]
  block(routed.state);
  if (weighted) {
    const auto weights = compression::routed_update_weights(
        scores, routed.indices, state.protected_count, strategy.options());
    state = compression::weighted_route_scatter(state, routed_input, routed.state, routed.indices,
                                                weights, active);
  } else {
    TORCH_CHECK(!causal, "plan: causal routing scatters through weighted_route_scatter");
    state = compression::route_scatter(state, routed.state, routed.indices);
  }
}

AttentionRequest LayerHook::attention_request() const {
  AttentionRequest request;
  for (const auto& reduction : plan_.reductions) {
    if (reduction.site != Site::kPostAttention) continue;
    const auto needs = reduction.method->needs();
    request.cls_row = request.cls_row || needs.cls_row;
    request.received = request.received || needs.received;
    request.mean_keys = request.mean_keys || needs.mean_keys;
  }
  return request;
}

void LayerHook::post_attention(TokenState& state, const AttentionOutput& attention) {
  context_.cls_row = attention.cls_row;
  context_.received = attention.received;
  context_.keys = attention.mean_keys;
  for (const auto& reduction : plan_.reductions) {
    if (reduction.site != Site::kPostAttention) continue;
    const auto before = state.positions();
    apply(reduction, state);
    // A second reduction at this site reads the attention extras of the tokens that remain.
    if (state.tokens() != before.size(1)) {
      const auto slots = slots_of_positions(before, state.positions());
      context_.cls_row = align(context_.cls_row, slots);
      context_.received = align(context_.received, slots);
      context_.keys = align(context_.keys, slots);
    }
  }
  context_.cls_row = context_.received = context_.keys = torch::Tensor();
}

void LayerHook::after_block(const TokenState& input, const TokenState& output) {
  // Inside-block reductions leave fewer output tokens: compare each with its own input token.
  torch::Tensor x = input.x;  // [B, N, C]
  if (output.tokens() != input.tokens())
    x = align(input.x, slots_of_positions(input.positions(), output.positions()));
  if (monitor_) monitor_->observe(context_.layer, x, output.x, output.keep, output.protected_count);
  for (const auto& table : plan_.saliency)
    table->observe(context_.layer, x, output.x, output.keep, output.protected_count,
                   table->keys_of(output.positions(), context_.token_ids));
}

torch::Tensor token_ids_of(const torch::Tensor& inputs) {
  return inputs.defined() && !inputs.is_floating_point() ? inputs : torch::Tensor();
}

PlanHooks::PlanHooks(const compression::Plan& plan, uint64_t seed, const torch::Tensor& sample_ids,
                     compression::TokenEvolutionMonitor* monitor, const torch::Tensor& token_ids) {
  const auto depth = static_cast<int64_t>(plan.layers.size());
  hooks_.resize(static_cast<size_t>(depth));
  layers_run_.assign(static_cast<size_t>(depth), true);
  const bool observe = plan.statistics && monitor != nullptr;
  if (observe)
    TORCH_CHECK(monitor->depth() == depth, "plan: the token-evolution monitor has ",
                monitor->depth(), " layers, the plan ", depth);
  // Live fraction of the reducible tokens the plan means to leave, for ratio losses. policy
  // decides per live token, so its fractions multiply (DynamicViT's ρ, ρ², ρ³); a top-k mask
  // keeps keep·R of all R tokens; the other strategies shorten the sequence that later fractions
  // refer to.
  double live = 1.0;
  for (int64_t layer = 0; layer < depth; ++layer) {
    const auto& layer_plan = plan.layers[static_cast<size_t>(layer)];
    const bool runs = layer_plan.gate.runs(seed, plan.step, layer);
    layers_run_[static_cast<size_t>(layer)] = runs;
    std::vector<double> planned_keep;
    for (const auto& reduction : layer_plan.reductions) {
      const double keep =
          reduction.keep_count < 0 && reduction.remove_count < 0 ? reduction.keep : 1.0;
      const auto traits = reduction.method->strategy().traits();
      const double after = traits.needs_log_odds ? live * keep : std::min(live, keep);
      planned_keep.push_back(traits.keeps_length ? after : keep);
      if (runs && traits.keeps_length) live = after;
    }
    const bool trivial =
        runs && layer_plan.reductions.empty() && layer_plan.gate.update_scale() == 1.0;
    if (trivial && !observe && layer_plan.saliency.empty()) continue;
    compression::ScoreContext context;
    context.layer = layer;
    context.step = plan.step;
    context.seed = seed;
    context.sample_ids = sample_ids;
    context.token_ids = token_ids;
    context.aux_losses = plan.training ? &aux_losses_ : nullptr;
    context.metrics = &metrics_;
    context.training = plan.training;
    hooks_[static_cast<size_t>(layer)] = std::make_unique<LayerHook>(
        layer_plan, std::move(context), runs, observe ? monitor : nullptr, std::move(planned_keep));
    any_ = true;
  }
}

}  // namespace winnow::train
