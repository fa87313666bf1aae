// Pre-LN transformer block with token-reduction sites.
#include "train/block.h"

#include <chrono>

namespace winnow::train {
namespace {

// Adds, per original position, the samples in which it is a live token of `state`.
void count_positions(const compression::TokenState& state, torch::Tensor& counts) {
  const auto positions = state.positions().reshape({-1});  // [B·N]
  auto live = torch::ones({positions.numel()}, counts.options());
  if (state.keep.defined()) live = state.keep.reshape({-1}).gt(0).to(counts.scalar_type());
  counts.index_add_(0, positions.to(counts.device()), live);
}

}  // namespace

MlpImpl::MlpImpl(int64_t dim, int64_t hidden) {
  TORCH_CHECK(hidden > 0, "mlp: expected a hidden width > 0, got ", hidden);
  fc1 = register_module("fc1", torch::nn::Linear(dim, hidden));
  fc2 = register_module("fc2", torch::nn::Linear(hidden, dim));
}

torch::Tensor MlpImpl::forward(const torch::Tensor& x) {
  return fc2->forward(torch::gelu(fc1->forward(x)));
}

BlockImpl::BlockImpl(const BlockOptions& options_) : options(options_) {
  norm1 = register_module(
      "norm1",
      torch::nn::LayerNorm(torch::nn::LayerNormOptions({options.dim()}).eps(options.norm_eps())));
  attn = register_module(
      "attn", MultiHeadAttention(
                  AttentionOptions(options.dim(), options.heads()).causal(options.causal())));
  norm2 = register_module(
      "norm2",
      torch::nn::LayerNorm(torch::nn::LayerNormOptions({options.dim()}).eps(options.norm_eps())));
  mlp = register_module("mlp", Mlp(options.dim(), options.mlp_hidden()));
}

BlockTokens BlockImpl::forward(compression::TokenState& state, BlockHook* hook,
                               BlockMeasurement* measurement) {
  BlockTokens tokens;
  if (hook && !hook->runs()) return tokens;
  const double scale = hook ? hook->update_scale() : 1.0;
  auto scaled = [scale](const torch::Tensor& update) {
    return scale == 1.0 ? update : update * scale;
  };
  auto body = [&](compression::TokenState& s) {
    compression::TokenState input;
    if (hook && hook->observes()) input = s;
    AttentionInputs inputs;
    if (s.size.defined()) inputs.key_bias = torch::log(s.size.squeeze(-1));  // [B, N]
    if (s.policy_attention)
      inputs.key_policy = s.keep;
    else
      inputs.key_keep = s.keep;
    inputs.positions = s.pos;
    AttentionRequest request = hook ? hook->attention_request() : AttentionRequest{};
    tokens.attention = s.batch() * s.tokens();
    if (s.keep.defined()) tokens.attention_live = s.keep.sum(1);
    AttentionOutput attention;
    if (measurement) {
      if (measurement->position_counts.defined()) count_positions(s, measurement->position_counts);
      request.core_seconds = true;
      const auto normed = norm1->forward(s.x);
      const auto start = std::chrono::steady_clock::now();
      attention = attn->forward(normed, inputs, request);
      measurement->attention_seconds +=
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      measurement->attention_core_seconds += attention.core_seconds;
    } else {
      attention = attn->forward(norm1->forward(s.x), inputs, request);
    }
    s.x = s.x + scaled(attention.out);
    if (hook) hook->post_attention(s, attention);
    tokens.mlp = s.batch() * s.tokens();
    if (s.keep.defined()) tokens.mlp_live = s.keep.sum(1);
    s.x = s.x + scaled(mlp->forward(norm2->forward(s.x)));
    if (hook && hook->observes()) hook->after_block(input, s);
  };
  if (hook) {
    hook->around_block(state, body);
  } else {
    body(state);
  }
  return tokens;
}

}  // namespace winnow::train
