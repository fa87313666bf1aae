// Pre-LN transformer block: x + attn(norm1(x)), then x + mlp(norm2(x)), on a TokenState so that
// token-reduction strategies can act at the block's sites.
#pragma once

#include <torch/torch.h>

#include <functional>

#include "compression/token_state.h"
#include "train/attention.h"

namespace winnow::train {

struct BlockOptions {
  BlockOptions(int64_t dim, int64_t heads) : dim_(dim), heads_(heads) {}
  int64_t mlp_hidden() const {
    return static_cast<int64_t>(static_cast<double>(dim_) * mlp_ratio_);
  }
  TORCH_ARG(int64_t, dim);
  TORCH_ARG(int64_t, heads);
  TORCH_ARG(double, mlp_ratio) = 4.0;
  TORCH_ARG(bool, causal) = false;
  // LayerNorm epsilon of norm1/norm2 (torchvision's ViT uses 1e-6).
  TORCH_ARG(double, norm_eps) = 1e-5;
};

// Two-layer GELU MLP: fc1 (C -> M), GELU, fc2 (M -> C).
class MlpImpl : public torch::nn::Module {
 public:
  MlpImpl(int64_t dim, int64_t hidden);
  torch::Tensor forward(const torch::Tensor& x);  // [B, N, C] -> [B, N, C]
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(Mlp);

// How a plan acts on one block. The block calls its hook and knows nothing else of the method:
// the model executes a plan; it does not decide.
class BlockHook {
 public:
  virtual ~BlockHook() = default;
  // Whether the block runs at all (layer gates: false = the block is skipped, tokens unchanged).
  virtual bool runs() const { return true; }
  // Factor on the block's residual updates, x + s·attn(…) and x + s·mlp(…) (PLD's 1/p).
  virtual double update_scale() const { return 1.0; }
  // Around the whole block: reduces before it (site pre_block), and runs `block` on the state it
  // chooses, putting the result back into `state` (site around_block: route). The default runs
  // the block on every token.
  virtual void around_block(compression::TokenState& state,
                            const std::function<void(compression::TokenState&)>& block) {
    block(state);
  }
  // Which attention extras the hook needs at post_attention (so only those are computed).
  virtual AttentionRequest attention_request() const { return {}; }
  // Between the attention residual and the MLP (site post_attention; ToMe, EViT).
  virtual void post_attention(compression::TokenState& /*state*/, const AttentionOutput& /*attn*/) {
  }
  // Whether after_block wants the block's input (token-evolution statistics).
  virtual bool observes() const { return false; }
  // After the block's body with its input (after pre-block reductions) and output states.
  virtual void after_block(const compression::TokenState& /*input*/,
                           const compression::TokenState& /*output*/) {}
  // Forward FLOPs the hook's own components spent in this block so far (learned scorers), which
  // the model adds to the step's count after the block.
  virtual double extra_forward_flops() const { return 0.0; }
};

// Tokens a block processed, summed over the batch: its attention's queries (= keys) and its MLP's
// rows. They differ when a method acts between the two (merge, prune at post_attention).
struct BlockTokens {
  int64_t attention = 0;
  int64_t mlp = 0;
  // Live tokens (Σ keep) of each sample at the attention and at the MLP: [B], on the autograd
  // graph of keep (straight-through masks). Undefined when the state had no keep (every token
  // live). Masked tokens are computed but cost nothing once removed: what a sample costs at
  // inference (learned thresholds' FLOPs regulariser, FLOPs ratios).
  torch::Tensor attention_live;
  torch::Tensor mlp_live;
};

// What a block measures when asked, accumulated over the forward passes it is given to
// (inference measurements, train/inference_speed.h). Ordinary passes give none and pay nothing.
struct BlockMeasurement {
  // Wall time of the attention module (qkv, scores, softmax, weighted sum, proj), and of its core
  // (bias and masks, scores, softmax, weighted sum: the part that grows with tokens × keys).
  double attention_seconds = 0.0;
  double attention_core_seconds = 0.0;
  // [positions] float64, sized by the caller: how often each original position entered the
  // block's attention (a token masked out, keep = 0, does not count). Undefined: not counted.
  torch::Tensor position_counts;
};

class BlockImpl : public torch::nn::Module {
 public:
  explicit BlockImpl(const BlockOptions& options);

  // Runs the block on `state` in place, calling the hook (if any) at its sites. Attention sees
  // log(size) as key bias (proportional attention), keep as key mask, pos for causal masks. A
  // gated-off block returns zero tokens and leaves the state unchanged. With a measurement, the
  // block adds its attention's times and the positions it attended over to it.
  BlockTokens forward(compression::TokenState& state, BlockHook* hook = nullptr,
                      BlockMeasurement* measurement = nullptr);

  BlockOptions options;
  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr};
  MultiHeadAttention attn{nullptr};
  Mlp mlp{nullptr};
};
TORCH_MODULE(Block);

}  // namespace winnow::train
