// Pre-LN transformer block with token-reduction sites.
#include "train/block.h"

namespace winnow::train {

MlpImpl::MlpImpl(int64_t dim, int64_t hidden) {
  TORCH_CHECK(hidden > 0, "mlp: expected a hidden width > 0, got ", hidden);
  fc1 = register_module("fc1", torch::nn::Linear(dim, hidden));
  fc2 = register_module("fc2", torch::nn::Linear(hidden, dim));
}

torch::Tensor MlpImpl::forward(const torch::Tensor& x) {
  return fc2->forward(torch::gelu(fc1->forward(x)));
}

BlockImpl::BlockImpl(const BlockOptions& options_) : options(options_) {
  norm1 =
      register_module("norm1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({options.dim()})));
  attn = register_module(
      "attn", MultiHeadAttention(
                  AttentionOptions(options.dim(), options.heads()).causal(options.causal())));
  norm2 =
      register_module("norm2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({options.dim()})));
  mlp = register_module("mlp", Mlp(options.dim(), options.mlp_hidden()));
}

AttentionOutput BlockImpl::forward(compression::TokenState& state, BlockHook* hook) {
  if (hook) hook->pre_block(state);

  AttentionInputs inputs;
  if (state.size.defined()) inputs.key_bias = torch::log(state.size.squeeze(-1));  // [B, N]
  inputs.key_keep = state.keep;
  inputs.positions = state.pos;
  const AttentionRequest request = hook ? hook->attention_request() : AttentionRequest{};

  AttentionOutput attention = attn->forward(norm1->forward(state.x), inputs, request);
  state.x = state.x + attention.out;
  if (hook) hook->post_attention(state, attention);
  state.x = state.x + mlp->forward(norm2->forward(state.x));
  return attention;
}

}  // namespace winnow::train
