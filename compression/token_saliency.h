// Per-token Taylor saliency from backward, and TokenSaliencyTable: its exponential moving average
// keyed by original position (images) or by token id (text), kept across steps so that a criterion
// can read it *before* the backward of the step it reduces in (Token Dropping's loss EMA by
// vocabulary id, Hou et al. 2022, with the Taylor skip saliency in place of the loss).
//
// For a block with input x_i and output y_i (token i), from the backward of a training step:
//   τ_i = |⟨∂L/∂y_i, y_i − x_i⟩|
// the first-order change of the loss if token i skipped the block (co_compression.md §6, §7.6).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <vector>

namespace winnow::compression {

// τ of every token: [B, N] float64 on x's device, no autograd. grad = ∂L/∂y.
torch::Tensor token_taylor_saliency(const torch::Tensor& x,      // [B, N, C] block input
                                    const torch::Tensor& y,      // [B, N, C] block output
                                    const torch::Tensor& grad);  // [B, N, C] ∂L/∂y

// Top-k membership by saliency, a target a router loss can use (BCE against it, co_compression.md
// §7.6 point 5): 1 for the `keep_count` reducible tokens with the highest saliency (ties to the
// lower index), 0 for the other reducible tokens and for protected ones. [B, N] float of
// saliency's dtype.
torch::Tensor saliency_top_k_membership(const torch::Tensor& saliency,  // [B, N]
                                        int64_t protected_count, int64_t keep_count);

// What a table's keys are.
enum class SaliencyKey {
  kPosition,  // the token's original position (ViT: 0 = CLS, 1.. = patches in row-major order)
  kToken,     // the token id at the original position (GPT: the input token)
};
// "position" | "token" → SaliencyKey; other names throw naming `option`.
SaliencyKey saliency_key_from_name(const std::string& name, const std::string& option);
std::string saliency_key_name(SaliencyKey key);

struct SaliencyTableOptions {
  int64_t keys = 0;  // table size: positions (model tokens) or vocabulary size
  SaliencyKey key = SaliencyKey::kPosition;
  // EMA decay β: v_k ← β·v_k + (1 − β)·τ̄_k in each step that observes key k, where τ̄_k is the
  // mean τ over the key's tokens in the global batch. The first observation sets v_k = τ̄_k.
  double decay = 0.99;
  // What keys never observed score (and keys beyond the table). Token Dropping starts its table
  // at 10, above any loss, so that unseen tokens are kept; +∞ does the same at any scale.
  double init = std::numeric_limits<double>::infinity();
};

// One table per saliency criterion. Rows are the source layers whose τ it averages (each
// reducing layer's own block, or one configured layer for all), columns the keys. Per step:
//   1. forward: each source block calls observe(layer, x, y, keep, protected_count, keys), which
//      registers a backward hook on y;
//   2. backward: the hook adds Σ τ and the token count per key into step_sums();
//   3. the trainer sums step_sums() over ranks and calls update(reduced, gradient_scale).
// Only sums cross ranks and the update is a pure function of them, so every rank holds the same
// table (N ranks ≡ 1 rank up to float64 summation order). Tokens a layer dropped before its block
// (and protected ones, and masked ones, keep ≤ 0.5) get no τ that step: their keys keep their
// value (neither decayed nor refreshed), so a key that one layer always drops is refreshed only
// by another source layer (e.g. `saliency_layer` before the first reduction).
class TokenSaliencyTable {
 public:
  TokenSaliencyTable(SaliencyTableOptions options, std::vector<int64_t> layers);

  const SaliencyTableOptions& options() const { return options_; }
  const std::vector<int64_t>& layers() const { return layers_; }
  bool has_layer(int64_t layer) const;

  // The key of every token: positions (kPosition) or token_ids gathered at the positions
  // (kToken; token_ids [B, T] required). Slots with a negative position (EViT's fused token) get
  // key −1, which is never observed and scores `init`. [B, N] int64.
  torch::Tensor keys_of(const torch::Tensor& positions,         // [B, N] int64
                        const torch::Tensor& token_ids) const;  // [B, T] int64 or undefined

  // Registers the hook of step 1 on y (nothing when y does not require grad: evaluation). Only
  // tokens i ≥ protected_count with keep > 0.5 (all when keep is undefined) count.
  void observe(int64_t layer,
               const torch::Tensor& x,      // [B, N, C] block input
               const torch::Tensor& y,      // [B, N, C] block output
               const torch::Tensor& keep,   // [B, N] or undefined
               int64_t protected_count,     //
               const torch::Tensor& keys);  // [B, N] int64 (keys_of)

  // This step's sums: float64 [layers, 2, keys] on the CPU, [r][0] = Σ τ, [r][1] = tokens.
  const torch::Tensor& step_sums() const { return step_sums_; }
  // Folds `reduced` (step_sums() summed over all ranks) into the table and starts the next step.
  // `gradient_scale` is what the backward's loss was divided by (the trainer's global count of
  // loss items), so that τ is the change of the summed loss, independent of the batch size. Keys
  // whose mean is not finite are left unchanged and counted in non_finite().
  void update(const torch::Tensor& reduced, double gradient_scale);
  void discard_step();

  // The table of `layer`'s row, `init` where never observed: [keys] float64, CPU.
  torch::Tensor values(int64_t layer) const;
  // Table values of the given keys (keys outside [0, keys) score `init`): [B, N] float64 on keys'
  // device.
  torch::Tensor lookup(int64_t layer, const torch::Tensor& keys) const;
  // Steps in which each key of the row was observed: [keys] int64.
  torch::Tensor observations(int64_t layer) const;
  int64_t updates() const { return updates_; }
  int64_t non_finite() const { return non_finite_; }

  // Everything that carries over steps, as name → CPU tensor: "ema" [layers, keys] float64,
  // "observations" [layers, keys] int64, "updates" and "non_finite" int64 scalars.
  // load_state(state()) restores the table bit for bit; shapes are checked.
  std::map<std::string, torch::Tensor> state() const;
  void load_state(const std::map<std::string, torch::Tensor>& state);

 private:
  int64_t row_of(int64_t layer) const;
  void start_step();

  SaliencyTableOptions options_;
  std::vector<int64_t> layers_;  // source layers, one row each
  torch::Tensor ema_;            // [layers, keys] float64, CPU (0 where never observed)
  torch::Tensor observations_;   // [layers, keys] int64
  torch::Tensor step_sums_;      // [layers, 2, keys] float64, CPU
  int64_t updates_ = 0;
  int64_t non_finite_ = 0;
};

}  // namespace winnow::compression
