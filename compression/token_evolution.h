// Token-evolution statistics of one transformer block: how much the block changes its tokens,
// as additive (sum, count) accumulators that can be summed over micro-batches and ranks.
//
// For a block with input x_i and output y_i = x_i + f(x_i) (token i), over the kept,
// non-protected tokens only:
//   δ_i = 1 − cos(x_i, y_i)                 per-token change (A-ViT/DToP-style halting signal)
//   BI  = 1 − mean_i cos(x_i, y_i)          Block Influence (ShortGPT, Men et al. 2024)
//   r   = mean_i ‖y_i − x_i‖ / ‖x_i‖        relative update norm
//   U   = (‖Σ_i ŷ_i‖² − N) / (N (N − 1))     token uniformity of the block's output y per sample:
//                                           the exact mean pairwise cosine in O(N·C)
//                                           (over-smoothing, Shi et al., ICLR 2022)
//   τ_i = |⟨∂L/∂y_i, y_i − x_i⟩|            Taylor skip saliency, from backward
//   M(k) = share of Σδ carried by the top ⌈kN⌉ tokens by δ (evolution mass kept at capacity k),
//          read from a 16-bin histogram of δ.
// Formulas, bins and the reasons for what is excluded: docs/methods.md, "Token-evolution
// statistics". The per-step monitor with EMAs is token_evolution_monitor.h.
#pragma once

#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <limits>

namespace winnow::compression {

// δ histogram: bin 0 holds δ < kDeltaUnderflow (unchanged tokens, including exact zeros); bins
// 1..15 split [kDeltaUnderflow, kDeltaMax] into 15 log-spaced bins (each edge ≈ 2.63 × the
// previous one); δ = 2 (y = −x) falls into the last bin.
constexpr int64_t kDeltaBins = 16;
constexpr double kDeltaUnderflow = 1e-6;
constexpr double kDeltaMax = 2.0;
// The kDeltaBins + 1 edges: {0, 1e-6, …, 2}; bin b holds edges[b] ≤ δ < edges[b + 1].
std::array<double, kDeltaBins + 1> delta_bin_edges();

// Layout of the per-block accumulators, a float64 tensor [kEvolutionFields]. Every field is a
// sum, so the accumulators of two halves of a batch (or of two ranks) add up to the whole batch's.
constexpr int64_t kTokenCount = 0;         // kept, non-protected tokens observed
constexpr int64_t kCosineSum = 1;          // Σ cos(x_i, y_i)
constexpr int64_t kRelativeUpdateSum = 2;  // Σ ‖y_i − x_i‖ / ‖x_i‖
constexpr int64_t kUniformitySum = 3;      // Σ over samples with ≥ 2 such tokens of U(y)
constexpr int64_t kUniformitySamples = 4;  // those samples
constexpr int64_t kTaylorSum = 5;          // Σ τ_i (added in backward; 0 when not enabled)
constexpr int64_t kTaylorCount = 6;        // tokens in kTaylorSum
constexpr int64_t kDeltaCountBegin = 7;    // [kDeltaBins]: tokens per δ bin
constexpr int64_t kDeltaMassBegin = kDeltaCountBegin + kDeltaBins;  // [kDeltaBins]: Σ δ per bin
constexpr int64_t kEvolutionFields = kDeltaMassBegin + kDeltaBins;  // 39

// Accumulators of one block for one forward pass (the Taylor fields stay 0): float64
// [kEvolutionFields] on x's device. Only tokens i ≥ protected_count with keep > 0.5 (all when keep
// is undefined) count. No autograd, no host synchronisation; a handful of O(B·N·C) kernels.
torch::Tensor block_evolution_sums(const torch::Tensor& x,     // [B, N, C] block input
                                   const torch::Tensor& y,     // [B, N, C] block output
                                   const torch::Tensor& keep,  // [B, N] or undefined
                                   int64_t protected_count);

// The Taylor fields for the gradient `grad` = ∂L/∂y (kTaylorSum, kTaylorCount; the rest 0), over
// the same tokens as block_evolution_sums: float64 [kEvolutionFields].
torch::Tensor taylor_saliency_sums(const torch::Tensor& x,     // [B, N, C]
                                   const torch::Tensor& y,     // [B, N, C]
                                   const torch::Tensor& grad,  // [B, N, C] ∂L/∂y
                                   const torch::Tensor& keep,  // [B, N] or undefined
                                   int64_t protected_count);

// Registers a hook on y that, when backward reaches y, adds taylor_saliency_sums(x, y, ∂L/∂y, …)
// into `accumulator` (float64 [kEvolutionFields] on y's device; a row of the monitor's step
// tensor). Only values are kept (no reference to y's graph), so the hook creates no reference
// cycle. y must not be modified in place afterwards (checked in backward). Returns false, and
// registers nothing, when y does not require grad (evaluation, frozen path).
bool add_taylor_saliency_hook(const torch::Tensor& x,     // [B, N, C]
                              const torch::Tensor& y,     // [B, N, C], requires grad
                              const torch::Tensor& keep,  // [B, N] or undefined
                              int64_t protected_count,
                              torch::Tensor accumulator);  // [kEvolutionFields] float64

// M(share): the share of the total δ mass carried by the top `share` of the tokens by δ, from a
// δ histogram (counts or count shares per bin, and Σδ or mean mass per bin; only ratios matter).
// Bins are taken from the highest δ down, the boundary bin pro rata. Concave and increasing in
// share, M(0) = 0, M(1) = 1; when no token changed at all (no mass) it is `share` itself.
double evolution_mass(const std::array<double, kDeltaBins>& counts,
                      const std::array<double, kDeltaBins>& masses, double share);

constexpr double kNoValue = std::numeric_limits<double>::quiet_NaN();

// The statistics that one set of accumulators (one step, all ranks) gives. Statistics whose count
// is 0 are NaN.
struct EvolutionStats {
  double tokens = 0;                             // kTokenCount
  double block_influence = kNoValue;             // 1 − mean cos
  double relative_update = kNoValue;             // mean ‖y − x‖/‖x‖
  double uniformity_samples = 0;                 // kUniformitySamples
  double uniformity = kNoValue;                  // mean over samples of U(y)
  double taylor_tokens = 0;                      // kTaylorCount
  double taylor = kNoValue;                      // Σ τ_i: the layer's Taylor skip saliency T_l
  double taylor_per_token = kNoValue;            // Σ τ_i / taylor_tokens
  std::array<double, kDeltaBins> delta_share{};  // share of the tokens in each δ bin (Σ = 1)
  std::array<double, kDeltaBins> delta_mass{};   // Σδ per bin / tokens (Σ = block_influence)

  // M(k) for these tokens: the share of Σδ kept by the top ⌈k·tokens⌉ tokens, k in [0, 1].
  double evolution_mass(double capacity) const;
};
EvolutionStats evolution_stats(const torch::Tensor& sums);  // [kEvolutionFields] float64

}  // namespace winnow::compression
