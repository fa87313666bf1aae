// Planner: builds the Plan of every step. The static planner turns the configured stages of token
// reduction ([compress] or [stage.NAME] sections) and layer gates ([gate]) into plans; planners
// that decide from what training measures (the co-scheduler) implement the same interface.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "compression/layer_gate.h"
#include "compression/plan.h"
#include "compression/schedule.h"
#include "compression/token_saliency.h"

namespace winnow::compression {

// What a planner needs to know of the model it plans for.
struct ModelShape {
  int64_t depth = 0;
  int64_t width = 0;        // C, for learned components' parameters
  int64_t grid_height = 0;  // patch grid of the reducible tokens (0 for sequences)
  int64_t grid_width = 0;
  // For planners that count FLOPs: the MLP's hidden width, the tokens entering block 0 of one
  // sample, and how many of them are protected (CLS) and never reduced.
  int64_t mlp_hidden = 0;
  int64_t tokens = 0;
  int64_t protected_tokens = 0;
  int64_t vocab = 0;  // text models: the vocabulary size (saliency tables keyed by token id)
};

class TokenEvolutionMonitor;

// A change a planner made after a step (logged as one metrics line each).
struct PlannerDecision {
  int64_t step = 0;  // the optimizer step after which it was decided
  int64_t layer = 0;
  double from = 1.0;  // capacity before and after (1 dense, 0 the layer pruned)
  double to = 1.0;
  std::string reason;   // why (budget, slack, swap, forced, open_loop)
  double budget = 1.0;  // the fraction of the dense cost it met
  double cost = 1.0;    // the fraction of the dense cost the plan has after the decision
  std::string cost_model = "flops";  // what budget and cost are fractions of: flops | time
};

class Planner {
 public:
  virtual ~Planner() = default;
  virtual std::string name() const = 0;
  // The plan of training step `step`, or the evaluation plan (training = false).
  virtual Plan plan(int64_t step, bool training) const = 0;
  // One line (or a few) for the run header and checkpoints.
  virtual std::string describe() const = 0;
  // Whether any plan can reduce tokens or gate layers (false: the model always runs dense).
  virtual bool active() const = 0;
  // State kept across steps (controller state), saved under /compression in checkpoints and
  // restored on resume. Stateless planners have none.
  virtual std::map<std::string, torch::Tensor> state() const { return {}; }
  virtual void load_state(const std::map<std::string, torch::Tensor>& /*state*/) {}
  // Parameters of learned components (Δθ), a module tree the model registers as its `compress`
  // submodule, so that they are named compress.<stage>.<layer>.<name> and the optimizer, gradient
  // sync, checkpoints and weights files see them like any other. Null when there are none.
  virtual std::shared_ptr<torch::nn::Module> parameters() const { return nullptr; }
  // Called by the trainer after every completed training step (not for a step skipped for a
  // non-finite loss), with the monitor's EMAs already updated from the all-reduced statistics of
  // that step (null without a monitor). Closed-loop planners decide here; the decisions are
  // returned for the metrics log. Every rank calls it with the same statistics.
  virtual std::vector<PlannerDecision> observe(int64_t /*step*/,
                                               const TokenEvolutionMonitor* /*monitor*/) {
    return {};
  }
  // Per-layer capacity the plans run at now (logged per step), empty for planners without one.
  virtual std::vector<double> capacities() const { return {}; }
  // Whether the planner reads token-evolution statistics (the run then creates a monitor), and
  // the Taylor saliency among them.
  virtual bool needs_statistics() const { return false; }
  virtual bool needs_taylor() const { return false; }
  // Tables of per-token Taylor saliency that this step's backward fills (saliency criteria):
  // after every training step the trainer sums each one's step_sums() over ranks and calls its
  // update(), or discard_step() for a skipped step, in this order on every rank. Their state is
  // part of state().
  virtual std::vector<std::shared_ptr<TokenSaliencyTable>> saliency_tables() const { return {}; }
  // The layers that stay pruned for the rest of the run, which the trainer removes from the model
  // (and the optimizer) before training step `step`, ascending; empty: none. The co-scheduler
  // names its capacity-0 layers from the first step of its heal phase; once removed they are gone
  // from without_layers()'s planner, so the answer is empty from then on.
  virtual std::vector<int64_t> layers_to_remove(int64_t /*step*/) const { return {}; }
  // This planner for the model that keeps only the layers `kept` (ascending) of this one's,
  // renumbered 0..: their per-layer state carries over, learned parameters are created afresh
  // for the kept layers (the trainer copies their values with the blocks). Planners that never
  // remove layers throw.
  virtual std::shared_ptr<Planner> without_layers(const std::vector<int64_t>& kept) const;
};

// A named stage of token reduction.
struct StageConfig {
  std::string name;  // "compress" for the single [compress] section, else the stage's name
  ReductionConfig reduction;
};

struct StaticPlannerConfig {
  std::vector<StageConfig> stages;  // applied in this order within a layer and site
  GateConfig gate;
  bool statistics = false;  // ask for token-evolution statistics at every training step
};

// Fixed stages and gates; the plan of a step depends only on the step (warmup and ramps).
class StaticPlanner : public Planner {
 public:
  // Validates every stage and their combination against the model; errors name the option.
  // Creates the parameters of learned criteria.
  StaticPlanner(const StaticPlannerConfig& config, const ModelShape& model);

  std::string name() const override { return "static"; }
  Plan plan(int64_t step, bool training) const override;
  std::string describe() const override;
  bool active() const override;
  std::shared_ptr<torch::nn::Module> parameters() const override { return parameters_; }
  // The saliency tables of the stages, as "saliency.<stage>.<entry>".
  std::map<std::string, torch::Tensor> state() const override;
  void load_state(const std::map<std::string, torch::Tensor>& state) override;
  std::vector<std::shared_ptr<TokenSaliencyTable>> saliency_tables() const override;

  const std::vector<std::pair<std::string, ReductionSchedule>>& stages() const { return stages_; }
  const LayerGateSchedule& gates() const { return gates_; }

 private:
  std::vector<std::pair<std::string, ReductionSchedule>> stages_;
  LayerGateSchedule gates_;
  std::shared_ptr<torch::nn::Module> parameters_;
  int64_t depth_ = 0;
  bool statistics_ = false;
};

}  // namespace winnow::compression
