// TokenEvolutionMonitor: the token-evolution statistics of every block of one model, collected
// per step as additive sums, and kept across steps as exponential moving averages for planners.
#pragma once

#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "compression/token_evolution.h"

namespace winnow::compression {

struct TokenEvolutionOptions {
  // EMA decay β: ema ← β·ema + (1 − β)·value; 0 keeps only the last step. 0.99 follows the
  // co-scheduler note (Token Dropping uses 0.995 for its loss EMA).
  double ema_decay = 0.99;
  // Also collect the Taylor skip saliency in backward (one O(B·N·C) hook per block).
  bool taylor = false;
};

// One per model. Per training step:
//   1. forward: the block of layer l calls observe(l, x, y, keep, protected_count) with its input
//      and output (same tokens; for route, the routed tokens before the scatter);
//   2. backward: the Taylor hooks (when enabled) add into the same step sums;
//   3. the trainer sums step_sums() over ranks (all-reduce, sum) and calls update(reduced, step).
// Every field is a sum over tokens or samples and no mean is taken before the all-reduce, so N
// ranks give the statistics of 1 rank on the same global batch (up to float64 rounding of the
// summation order). update() starts the next step; discard_step() drops a step (e.g. skipped for
// a non-finite loss) without touching the EMAs.
//
// EMAs are kept per layer and per group — evolution (BI, r, δ histogram), uniformity, Taylor — and
// a group updates only in steps where it has a non-zero count: a skipped layer, or one whose
// tokens were all pruned, is not observed and keeps its previous EMA (selection bias: only a
// full-capacity probe step refreshes it). A group's first observation initialises its EMA.
class TokenEvolutionMonitor {
 public:
  TokenEvolutionMonitor(int64_t depth, TokenEvolutionOptions options = {},
                        torch::Device device = torch::kCPU);

  int64_t depth() const { return depth_; }
  const TokenEvolutionOptions& options() const { return options_; }

  // Adds block_evolution_sums(x, y, keep, protected_count) into layer `layer`'s step sums, and
  // registers the Taylor hook on y when options().taylor and y requires grad. x and y must be on
  // the monitor's device. May be called several times per step (micro-batches).
  void observe(int64_t layer,
               const torch::Tensor& x,     // [B, N, C] block input
               const torch::Tensor& y,     // [B, N, C] block output
               const torch::Tensor& keep,  // [B, N] or undefined
               int64_t protected_count);

  // This step's sums: float64 [depth, kEvolutionFields] on the monitor's device. All-reduce a
  // copy or the tensor itself (in place is fine: update() starts a fresh one).
  const torch::Tensor& step_sums() const { return step_sums_; }

  // Forms the statistics of `reduced` (step_sums() summed over all ranks, any device), updates the
  // EMAs and starts the next step. `step` (the optimizer step) must increase from call to call.
  // A group whose sums are not finite is treated as unobserved and counted in non_finite().
  void update(const torch::Tensor& reduced, int64_t step);
  // Drops this step's sums (and any Taylor hooks still pending write into the dropped tensor).
  void discard_step();

  // EMA readers for planners. Each throws when the layer's group was never observed; check first.
  bool observed(int64_t layer) const;             // evolution group: BI, r, δ histogram
  bool uniformity_observed(int64_t layer) const;  // at least one sample with ≥ 2 tokens
  bool taylor_observed(int64_t layer) const;      // Taylor hook ran for the layer
  double block_influence(int64_t layer) const;    // 1 − mean cos(x, y)
  double relative_update(int64_t layer) const;    // mean ‖y − x‖/‖x‖
  double uniformity(int64_t layer) const;         // mean pairwise cosine of the output tokens
  double taylor(int64_t layer) const;             // T_l = Σ_i τ_i per step (the layer total)
  double taylor_per_token(int64_t layer) const;   // T_l / tokens
  // M_l(k), k in [0, 1], from the EMA of the δ histogram (count share and mass per token per bin):
  // the share of the layer's change that a capacity-k router keeping the highest-δ tokens keeps.
  double evolution_mass(int64_t layer, double capacity) const;
  // The EMA statistics of a layer as one struct (NaN for groups never observed; tokens etc. 0).
  EvolutionStats ema(int64_t layer) const;

  // The last update's raw statistics (from its all-reduced sums), and those sums [depth, F].
  EvolutionStats last(int64_t layer) const;
  const torch::Tensor& last_sums() const { return last_sums_; }
  int64_t last_step() const { return last_step_; }  // -1 before the first update
  int64_t updates() const { return updates_; }      // update() calls so far
  // Steps in which a group of the layer had non-finite sums and was skipped.
  int64_t non_finite(int64_t layer) const;

  // Everything that carries over steps, as name → CPU tensor (for /compression in checkpoints):
  // the EMAs, per-layer observation counts, the update count, the last step and its sums.
  // load_state(state()) restores the monitor bit for bit; shapes are checked against depth().
  std::map<std::string, torch::Tensor> state() const;
  void load_state(const std::map<std::string, torch::Tensor>& state);

  // The monitor of the model that keeps only the layers `kept` (ascending) of this one's,
  // renumbered 0..: their EMAs and counts, the same update count and last step. Call between
  // steps (this step's sums are not carried).
  std::shared_ptr<TokenEvolutionMonitor> without_layers(const std::vector<int64_t>& kept) const;

 private:
  void check_layer(int64_t layer) const;
  void check_observed(int64_t layer, int64_t group, const char* statistic) const;
  void start_step();

  int64_t depth_;
  TokenEvolutionOptions options_;
  torch::Device device_;
  torch::Tensor step_sums_;  // [L, kEvolutionFields] float64 on device_
  // EMAs, CPU float64. [L] per scalar statistic; [L, kDeltaBins] for the histogram.
  torch::Tensor block_influence_, relative_update_, uniformity_, taylor_, taylor_per_token_;
  torch::Tensor delta_share_, delta_mass_;
  torch::Tensor observations_;  // [L, 3] int64: steps each group was observed
  torch::Tensor non_finite_;    // [L] int64
  torch::Tensor last_sums_;     // [L, kEvolutionFields] float64, CPU
  int64_t last_step_ = -1;
  int64_t updates_ = 0;
};

}  // namespace winnow::compression
