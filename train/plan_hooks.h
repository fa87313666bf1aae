// PlanHooks: executes one step's Plan inside the blocks — per layer, a BlockHook that applies the
// layer gate, runs the planned reductions at their sites (several per layer, in plan order), and
// feeds the token-evolution monitor. The bridge from compression/ plans to the block interface.
#pragma once

#include <memory>
#include <vector>

#include "compression/plan.h"
#include "compression/token_evolution_monitor.h"
#include "train/block.h"

namespace winnow::train {

class LayerHook : public BlockHook {
 public:
  // `monitor`: where this block's token-evolution statistics go (null = none). `planned_keep`:
  // ScoreContext::planned_keep of each of plan.reductions (empty = 1 for all).
  LayerHook(const compression::LayerPlan& plan, compression::ScoreContext context, bool runs,
            compression::TokenEvolutionMonitor* monitor, std::vector<double> planned_keep = {});

  bool runs() const override { return runs_; }
  double update_scale() const override { return scale_; }
  void around_block(compression::TokenState& state,
                    const std::function<void(compression::TokenState&)>& block) override;
  AttentionRequest attention_request() const override;
  void post_attention(compression::TokenState& state, const AttentionOutput& attention) override;
  bool observes() const override { return monitor_ != nullptr || !plan_.saliency.empty(); }
  void after_block(const compression::TokenState& input,
                   const compression::TokenState& output) override;
  double extra_forward_flops() const override { return scoring_flops_; }

 private:
  // Adds the FLOPs of `criterion` scoring the reducible tokens of `state` to scoring_flops_.
  void count_scoring(const compression::Criterion& criterion, const compression::TokenState& state);

  void apply(const compression::PlannedReduction& reduction, compression::TokenState& state);

  const compression::LayerPlan& plan_;
  compression::ScoreContext context_;
  bool runs_;
  double scale_;
  compression::TokenEvolutionMonitor* monitor_;
  std::vector<double> planned_keep_;  // by reduction
  double scoring_flops_ = 0.0;        // learned scorers' forward FLOPs in this block
};

// The input token ids of a text model's batch ([B, T] int64) for PlanHooks, undefined for images.
torch::Tensor token_ids_of(const torch::Tensor& inputs);

// The hooks of one forward pass, built from the step's plan.
class PlanHooks {
 public:
  // `plan` must outlive the hooks. When plan.statistics, every block that runs reports its input
  // and output to `monitor` (if given); blocks with saliency tables report to those. `token_ids`
  // ([B, T] int64, text models; else undefined) reach criteria as ScoreContext::token_ids.
  PlanHooks(const compression::Plan& plan, uint64_t seed, const torch::Tensor& sample_ids,
            compression::TokenEvolutionMonitor* monitor = nullptr,
            const torch::Tensor& token_ids = torch::Tensor());
  BlockHook* operator()(int64_t layer) const { return hooks_[static_cast<size_t>(layer)].get(); }
  // Whether any layer has a hook (false: the forward pass runs dense).
  bool any() const { return any_; }
  // Losses the plan's learned components added during the forward pass.
  compression::AuxLosses& aux_losses() { return aux_losses_; }
  // Statistics the plan's components reported during the forward pass (this rank's sums).
  const compression::AuxMetrics& metrics() const { return metrics_; }
  // Whether each layer runs this step (false: gated off).
  const std::vector<bool>& layers_run() const { return layers_run_; }

 private:
  std::vector<std::unique_ptr<LayerHook>> hooks_;
  std::vector<bool> layers_run_;
  compression::AuxLosses aux_losses_;
  compression::AuxMetrics metrics_;
  bool any_ = false;
};

}  // namespace winnow::train
