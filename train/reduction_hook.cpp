// Token reduction at the sites of a block.
#include "train/reduction_hook.h"

#include <cmath>

#include "compression/route.h"

namespace winnow::train {

using compression::Site;

ReductionHook::ReductionHook(const compression::ReductionSchedule& schedule, double keep,
                             compression::ScoreContext context)
    : schedule_(schedule), keep_(keep), context_(std::move(context)) {}

int64_t ReductionHook::keep_count(const compression::TokenState& state) const {
  return compression::keep_count_for_rate(keep_, state.reducible());
}

AttentionRequest ReductionHook::attention_request() const {
  AttentionRequest request;
  if (schedule_.site() != Site::kPostAttention) return request;
  const auto needs = schedule_.method().needs();
  request.cls_row = needs.cls_row;
  request.received = needs.received;
  request.mean_keys = needs.mean_keys;
  return request;
}

void ReductionHook::reduce(compression::TokenState& state) {
  const int64_t keep = keep_count(state);
  if (keep >= state.reducible()) return;
  state = schedule_.method().apply(state, context_, keep);
}

void ReductionHook::pre_block(compression::TokenState& state) {
  if (schedule_.site() == Site::kPreBlock) reduce(state);
}

void ReductionHook::post_attention(compression::TokenState& state,
                                   const AttentionOutput& attention) {
  if (schedule_.site() != Site::kPostAttention) return;
  context_.cls_row = attention.cls_row;
  context_.received = attention.received;
  context_.keys = attention.mean_keys;
  reduce(state);
  context_.cls_row = context_.received = context_.keys = torch::Tensor();
}

void ReductionHook::around_block(compression::TokenState& state,
                                 const std::function<void(compression::TokenState&)>& block) {
  const int64_t keep = keep_count(state);
  if (schedule_.site() != Site::kAroundBlock || keep >= state.reducible()) {
    block(state);
    return;
  }
  auto scores = schedule_.method().criterion().score(state, context_);  // [B, N]
  auto routed = compression::route_gather(state, scores, keep);
  block(routed.state);
  state = compression::route_scatter(state, routed.state, routed.indices);
}

StepHooks::StepHooks(const compression::ReductionSchedule& schedule, int64_t depth, int64_t step,
                     uint64_t seed, const torch::Tensor& sample_ids, bool training) {
  hooks_.resize(static_cast<size_t>(depth));
  if (!schedule.enabled() || (!training && !schedule.reduce_in_eval())) return;
  for (int64_t layer = 0; layer < depth; ++layer) {
    const double keep = training ? schedule.keep_at(layer, step) : schedule.target_keep(layer);
    if (keep >= 1.0) continue;
    compression::ScoreContext context;
    context.layer = layer;
    context.step = step;
    context.seed = seed;
    context.sample_ids = sample_ids;
    hooks_[static_cast<size_t>(layer)] =
        std::make_unique<ReductionHook>(schedule, keep, std::move(context));
    any_ = true;
  }
}

}  // namespace winnow::train
