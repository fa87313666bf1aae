// Multi-head self-attention with the hooks token reduction needs: an additive key bias
// (log size of merged tokens), soft/padding key masks, causal masks from original positions,
// and optional outputs (full probabilities, the CLS row, head-averaged keys).
#pragma once

#include <torch/torch.h>

namespace winnow::train {

struct AttentionOptions {
  AttentionOptions(int64_t dim, int64_t heads) : dim_(dim), heads_(heads) {}
  TORCH_ARG(int64_t, dim);
  TORCH_ARG(int64_t, heads);
  // Causal: query i attends to key j only when pos[j] <= pos[i] (original positions).
  TORCH_ARG(bool, causal) = false;
};

// What the caller needs back besides the output. Each is computed only when asked.
struct AttentionRequest {
  bool probabilities = false;  // [B, H, N, N]
  bool cls_row = false;        // [B, N]: attention of query 0 to every key, mean over heads
  bool received = false;       // [B, N]: mean attention each key receives (over heads, and over
                               // the live queries, keep > 0, when a key mask is given)
  bool mean_keys = false;      // [B, N, D]: keys averaged over heads (ToMe's similarity metric)
  // Wall time of the core (bias and masks, scores, softmax, weighted sum), for measurements.
  bool core_seconds = false;
};

struct AttentionInputs {
  torch::Tensor key_bias;   // [B, N] float, added to every query's logits for key j (e.g. log size)
  torch::Tensor key_keep;   // [B, N] float in [0, 1] or bool: key j masked out where 0/false
  torch::Tensor positions;  // [B, N] int64 original positions; undefined = 0..N-1
  // DynamicViT's policy softmax instead of key_keep (raoyongming/DynamicViT 1322e62,
  // models/dyvit.py Attention.softmax_with_policy), with P_ij = policy_j + (1 − policy_j)·[i = j]
  // (every token still attends to itself) and s the logits with every bias above:
  //   a_ij = (exp(s_ij − max_j s_ij)·P_ij + ε/N) / (Σ_j exp(s_ij − max_j s_ij)·P_ij + ε)
  // computed in at least float32. Masked keys keep a weight ≈ ε/N/Σ, and the gradient reaches
  // the policy of masked keys too. Uses the unfused path.
  torch::Tensor key_policy;  // [B, N] float in [0, 1]
  double policy_eps = 1e-6;
};

struct AttentionOutput {
  torch::Tensor out;            // [B, N, C]
  torch::Tensor probabilities;  // [B, H, N, N] when requested
  torch::Tensor cls_row;        // [B, N] when requested
  torch::Tensor received;       // [B, N] when requested
  torch::Tensor mean_keys;      // [B, N, D] when requested
  double core_seconds = 0.0;    // when requested
};

class MultiHeadAttentionImpl : public torch::nn::Module {
 public:
  explicit MultiHeadAttentionImpl(const AttentionOptions& options);
  void reset();

  // x: [B, N, C]
  AttentionOutput forward(const torch::Tensor& x, const AttentionInputs& inputs = {},
                          const AttentionRequest& request = {});

  AttentionOptions options;
  torch::nn::Linear qkv{nullptr};   // C -> 3C, parameter names attn.qkv.{weight,bias}
  torch::nn::Linear proj{nullptr};  // C -> C, parameter names attn.proj.{weight,bias}
};
TORCH_MODULE(MultiHeadAttention);

// DynamicViT's softmax_with_policy over the last axis (see AttentionInputs::key_policy).
// logits: [B, H, N, N]; policy: [B, N]. Returns [B, H, N, N] in logits' dtype.
torch::Tensor softmax_with_policy(const torch::Tensor& logits, const torch::Tensor& policy,
                                  double eps = 1e-6);

// Additive attention mask [B, 1, N, N] (0 or -inf) from original positions, for causal models.
torch::Tensor causal_bias_from_positions(const torch::Tensor& positions,  // [B, N] int64
                                         torch::ScalarType dtype);

// The CLS query's attention row, softmax(q₀·Kᵀ/√d + bias₀) averaged over heads, in O(N·d): what
// `cls_attention` needs without the N×N probabilities (so it works beside fused attention).
// q, k: [B, H, N, D]; bias: undefined or broadcastable to [B, H, N, N] (additive, -inf masks).
// Returns [B, N].
torch::Tensor cls_attention_row(const torch::Tensor& q, const torch::Tensor& k,
                                const torch::Tensor& bias);

}  // namespace winnow::train
