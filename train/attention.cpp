// Multi-head self-attention with key bias, key masks, position-based causal masks and extras.
#include "train/attention.h"

#include "train/batched_matmul.h"

#include <chrono>
#include <cmath>
#include <limits>

namespace winnow::train {

MultiHeadAttentionImpl::MultiHeadAttentionImpl(const AttentionOptions& options_)
    : options(options_) {
  reset();
}

void MultiHeadAttentionImpl::reset() {
  TORCH_CHECK(options.dim() > 0 && options.heads() > 0,
              "attention: expected dim > 0 and heads > 0, got dim=", options.dim(),
              " heads=", options.heads());
  TORCH_CHECK(options.dim() % options.heads() == 0, "attention: width ", options.dim(),
              " must be divisible by the number of heads ", options.heads());
  qkv = register_module("qkv", torch::nn::Linear(options.dim(), 3 * options.dim()));
  proj = register_module("proj", torch::nn::Linear(options.dim(), options.dim()));
}

torch::Tensor causal_bias_from_positions(const torch::Tensor& positions, torch::ScalarType dtype) {
  // allowed[b, i, j] = pos[b, j] <= pos[b, i]
  auto allowed = positions.unsqueeze(1).le(positions.unsqueeze(2));  // [B, N, N]
  auto bias =
      torch::zeros(allowed.sizes(), torch::TensorOptions().dtype(dtype).device(positions.device()));
  bias.masked_fill_(allowed.logical_not(), -std::numeric_limits<float>::infinity());
  return bias.unsqueeze(1);  // [B, 1, N, N]
}

torch::Tensor softmax_with_policy(const torch::Tensor& logits, const torch::Tensor& policy,
                                  double eps) {
  const int64_t batch = logits.size(0), tokens = logits.size(-1);
  TORCH_CHECK(policy.sizes() == torch::IntArrayRef({batch, tokens}),
              "attention: key_policy must be [B, N] = [", batch, ", ", tokens, "], got ",
              policy.sizes());
  const auto compute = at::promote_types(logits.scalar_type(), torch::kFloat32);
  const auto p = policy.to(compute).view({batch, 1, 1, tokens});
  const auto eye = torch::eye(tokens, logits.options().dtype(compute)).view({1, 1, tokens, tokens});
  const auto attend = p + (1.0 - p) * eye;  // [B, 1, N, N]
  const auto shifted = logits - std::get<0>(logits.max(-1, /*keepdim=*/true));
  const auto weights = shifted.to(compute).exp() * attend;
  const auto probabilities =
      (weights + eps / static_cast<double>(tokens)) / (weights.sum(-1, /*keepdim=*/true) + eps);
  return probabilities.to(logits.scalar_type());
}

torch::Tensor cls_attention_row(const torch::Tensor& q, const torch::Tensor& k,
                                const torch::Tensor& bias) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  auto logits = torch::matmul(q.narrow(2, 0, 1) * scale, k.transpose(-2, -1));  // [B, H, 1, N]
  if (bias.defined()) logits = logits + bias.narrow(-2, 0, 1);
  return torch::softmax(logits, -1).squeeze(2).mean(1);  // [B, N]
}

AttentionOutput MultiHeadAttentionImpl::forward(const torch::Tensor& x,
                                                const AttentionInputs& inputs,
                                                const AttentionRequest& request) {
  TORCH_CHECK(x.dim() == 3 && x.size(2) == options.dim(), "attention: expected input [B, N, ",
              options.dim(), "], got ", x.sizes());
  const int64_t batch = x.size(0), tokens = x.size(1), heads = options.heads();
  const int64_t head_dim = options.dim() / heads;

  // [B, N, 3C] -> [3, B, H, N, D]
  auto packed = qkv->forward(x).view({batch, tokens, 3, heads, head_dim}).permute({2, 0, 3, 1, 4});
  auto q = packed[0], k = packed[1], v = packed[2];  // each [B, H, N, D]
  const auto core_start = request.core_seconds ? std::chrono::steady_clock::now()
                                               : std::chrono::steady_clock::time_point{};

  // Additive bias over keys, broadcast to [B, 1|N, N, N] as needed.
  torch::Tensor bias;
  auto add_bias = [&](const torch::Tensor& b) { bias = bias.defined() ? bias + b : b; };
  if (inputs.key_bias.defined()) {
    TORCH_CHECK(inputs.key_bias.sizes() == torch::IntArrayRef({batch, tokens}),
                "attention: key_bias must be [B, N] = [", batch, ", ", tokens, "], got ",
                inputs.key_bias.sizes());
    add_bias(inputs.key_bias.to(q.scalar_type()).view({batch, 1, 1, tokens}));
  }
  if (inputs.key_keep.defined()) {
    TORCH_CHECK(inputs.key_keep.sizes() == torch::IntArrayRef({batch, tokens}),
                "attention: key_keep must be [B, N] = [", batch, ", ", tokens, "], got ",
                inputs.key_keep.sizes());
    // log(keep): 0 for kept keys, -inf for dropped ones, a finite penalty for soft keep values.
    // Gradients flow into soft masks (DynamicViT-style training of learned scorers). A dropped
    // key's log is taken of 1 and replaced by -inf, so that its gradient is 0 instead of
    // 0 · ∞ = NaN (a straight-through mask is exactly 0 there).
    const auto keep = inputs.key_keep.to(q.scalar_type());
    const auto live = keep > 0;
    const auto log_keep =
        torch::where(live, torch::log(torch::where(live, keep, torch::ones_like(keep))),
                     torch::full_like(keep, -std::numeric_limits<double>::infinity()));
    add_bias(log_keep.view({batch, 1, 1, tokens}));
  }
  if (options.causal()) {
    torch::Tensor positions =
        inputs.positions.defined()
            ? inputs.positions
            : torch::arange(tokens, x.options().dtype(torch::kInt64)).expand({batch, tokens});
    add_bias(causal_bias_from_positions(positions, q.scalar_type()));
  }

  AttentionOutput result;
  torch::Tensor context;  // [B, H, N, D]
#if TORCH_VERSION_MAJOR >= 2
  const bool need_probabilities =
      request.probabilities || request.received || inputs.key_policy.defined();
  if (!need_probabilities) {
    // Fused kernel (flash/memory-efficient on GPU) when nobody needs the probabilities.
    // The additive bias broadcasts over heads like a float attn_mask; none = plain attention.
    const c10::optional<at::Tensor> mask =
        bias.defined() ? c10::optional<at::Tensor>(bias) : c10::nullopt;
    context = at::scaled_dot_product_attention(q, k, v, mask);
  }
#endif
  if (!context.defined()) {
    const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
    auto logits = batched_matmul(q * scale, k.transpose(-2, -1));  // [B, H, N, N]
    if (bias.defined()) logits = logits + bias;
    auto probabilities = inputs.key_policy.defined()
                             ? softmax_with_policy(logits, inputs.key_policy, inputs.policy_eps)
                             : torch::softmax(logits, -1);
    context = batched_matmul(probabilities, v);
    if (request.probabilities) result.probabilities = probabilities;
    if (request.cls_row) result.cls_row = probabilities.select(2, 0).mean(1);  // [B, N]
    if (request.received) {
      const auto& mask = inputs.key_keep.defined() ? inputs.key_keep : inputs.key_policy;
      if (mask.defined()) {
        // Only live queries count: a masked token (or a padding slot of threshold_prune) pays no
        // attention, so the received attention is that of the live tokens alone, as if the masked
        // ones had been removed (with a policy, its forward 0/1 values decide).
        const auto live_queries = mask.detach().gt(0).to(probabilities.scalar_type());  // [B, N]
        result.received = (probabilities.mean(1) * live_queries.unsqueeze(-1)).sum(1) /
                          live_queries.sum(1, /*keepdim=*/true).clamp_min(1.0);  // [B, N]
      } else {
        result.received = probabilities.mean(/*dim=*/{1, 2});  // [B, N]
      }
    }
  } else if (request.cls_row) {
    result.cls_row = cls_attention_row(q, k, bias);  // beside the fused kernel, O(N·d)
  }
  if (request.core_seconds)
    result.core_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - core_start).count();
  if (request.mean_keys) result.mean_keys = k.mean(1);  // [B, N, D]

  // [B, H, N, D] -> [B, N, C]
  result.out = proj->forward(context.transpose(1, 2).reshape({batch, tokens, options.dim()}));
  return result;
}

}  // namespace winnow::train
