// CoScheduler: the closed-loop planner that co-schedules layer pruning and token reduction under
// one compute budget (co_compression.md §7). Every layer has a capacity k_l on the grid
// {0, 1/G, …, 1}; every `interval` steps the CapacityAllocator moves capacities to meet the budget
// schedule ρ(t) with the least damage, judged from the token-evolution statistics (influence w_l
// from BI, relative update or Taylor saliency; M_l(k) from the δ histogram). Plans then run:
//   k = 1      the block, dense;
//   0 < k < 1  skip mode: the block on ⌈k·N⌉ routed tokens, the others ride the residual (GPTs);
//              drop mode: keep ⌈k·N⌉ of the tokens entering the block, cumulatively (ViTs);
//   k = 0      the block skipped (the layer pruned).
// Probe steps (every `probe_every`) run every layer at full capacity so that skipped layers and
// dropped tokens stay observed. Modes restrict the moves on one code path, so the baselines are
// honest: joint, token_only, layer_only, staged_lt / staged_tl (one axis, then the other), and
// open_loop (a fixed depth profile rescaled to ρ(t), no statistics).
// The budget is a fraction of the dense cost in one of two cost models (coschedule.cost): the
// analytic block FLOPs, or the blocks' measured training time (a LayerTimingTable the run
// measures on the real model before its first step and hands over with set_timing()).
#pragma once

#include <torch/torch.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "compression/budget_schedule.h"
#include "compression/capacity_allocator.h"
#include "compression/layer_timing_table.h"
#include "compression/planner.h"

namespace winnow::compression {

// [coschedule]
struct CoSchedulerConfig {
  std::string mode = "none";  // none | joint | token_only | layer_only | staged_lt | staged_tl |
                              // open_loop (coschedule_modes())
  BudgetScheduleConfig budget;
  AllocatorOptions allocator;
  int64_t interval = 200;          // K: steps between decisions
  int64_t probe_every = 100;       // P: every P-th step runs at full capacity (0 = never)
  int64_t statistics_every = 4;    // S: token-evolution statistics on every S-th step, on probes
                                   // and on the step before each decision (1 = every step)
  std::string influence = "bi";    // bi | relative_update | taylor: the layer weight w_l; random:
                                   // the control (w_l drawn per decision, M_l(k) = k)
  uint64_t seed = 0;               // keys the random control's draws (the run's train.seed)
  std::string execution = "auto";  // auto (skip for sequences, drop for images) | skip | drop
  std::string criterion = "auto";  // which tokens fill the capacity (auto: cls_attention in drop
                                   // mode with a CLS token, else norm); a registry name
  double z_loss = 1e-3;            // linear router: its z-loss weight
  double staged_split = 0.0;    // staged: ρ_A where the first axis stops (0 = 1 − ½(1 − ρ*))
  std::string profile = "pld";  // open_loop: pld (linear in depth) | cosine (p-MoD's shifted)
  std::string eval = "same";    // same (evaluate at the current capacities) | dense |
                                // structure (k = 0 layers skipped, thinned layers run dense)
  std::string cost = "flops";   // what ρ(t) is a fraction of: flops (analytic block FLOPs) |
                                // time (measured training seconds of the blocks)
  // At the first heal step the capacity-0 layers leave the model and the optimizer
  // (layers_to_remove); false keeps them, skipped, to the end.
  bool heal_remove = true;
  // Capacities to start from, one per layer on the grid (empty = dense): the structure a finished
  // run stores with its weights, so that `winnow eval` and `train --init-from` rebuild it.
  std::vector<double> capacities;
};

const std::vector<std::string>& coschedule_modes();

class CoScheduler : public Planner {
 public:
  // Validates the configuration against the model; errors name coschedule.* options.
  CoScheduler(const CoSchedulerConfig& config, const ModelShape& model);

  std::string name() const override { return "coschedule"; }
  Plan plan(int64_t step, bool training) const override;
  std::string describe() const override;
  bool active() const override { return true; }
  std::map<std::string, torch::Tensor> state() const override;
  void load_state(const std::map<std::string, torch::Tensor>& state) override;
  std::shared_ptr<torch::nn::Module> parameters() const override { return parameters_; }
  std::vector<PlannerDecision> observe(int64_t step, const TokenEvolutionMonitor* monitor) override;
  std::vector<double> capacities() const override;
  bool needs_statistics() const override {
    return config_.mode != "open_loop" && config_.influence != "random";
  }
  bool needs_taylor() const override { return config_.influence == "taylor"; }
  std::vector<int64_t> layers_to_remove(int64_t step) const override;
  std::shared_ptr<Planner> without_layers(const std::vector<int64_t>& kept) const override;

  // Whether training step `step` is a probe (every layer at full capacity). Never in the heal
  // phase: the structure is frozen, and removed layers cannot be probed.
  bool is_probe(int64_t step) const;
  // Whether observe(step, …) takes a decision.
  bool decides_after(int64_t step) const;
  // Whether training step `step` collects token-evolution statistics.
  bool observes(int64_t step) const;
  // Block forward FLOPs of one sample at `levels` (capacities level / G), and dense.
  double block_flops(const std::vector<int64_t>& levels) const;
  double dense_block_flops() const { return dense_flops_; }
  // With coschedule.cost = time: the token counts at which every block's training time is to be
  // measured, ascending: those the grid's capacities give the whole sequence (protected tokens +
  // keep_count_for_rate(g / G, reducible)), and in drop mode also the fewest tokens a cumulative
  // reduction reaches (protected + 1); other counts are interpolated. Empty with cost = flops.
  std::vector<int64_t> timing_token_counts() const;
  // With coschedule.cost = time: the measured table, identical on every rank, for counts that
  // cover timing_token_counts(); before the first decision (a resumed run reads it from state()).
  void set_timing(LayerTimingTable table);
  const LayerTimingTable& timing() const { return timing_; }
  bool timed() const { return config_.cost == "time"; }
  // The cost of `levels` in the active model (block FLOPs of one sample, or seconds of the
  // blocks' training forward+backward on the per-rank micro-batch), and dense.
  double block_cost(const std::vector<int64_t>& levels) const;
  double dense_block_cost() const;
  const std::vector<LayerCapacity>& layers() const { return layers_; }
  const BudgetSchedule& budget() const { return budget_; }
  bool drop_mode() const { return drop_mode_; }
  int64_t grid() const { return config_.allocator.grid; }

 private:
  MoveRules rules_for(double budget) const;
  std::vector<int64_t> open_loop_levels(double budget) const;
  // Σ over the layers that run at `levels` of layer_cost(layer, attention tokens, MLP tokens) of
  // one sample: the token counts of skip and drop mode, shared by both cost models.
  double sum_over_layers(const std::vector<int64_t>& levels,
                         const std::function<double(int64_t, int64_t, int64_t)>& layer_cost) const;

  CoSchedulerConfig config_;
  ModelShape shape_;
  BudgetSchedule budget_;
  CapacityAllocator allocator_;
  std::shared_ptr<const Method> method_;
  Site site_ = Site::kPreBlock;
  bool drop_mode_ = false;
  double dense_flops_ = 0.0;
  double staged_split_ = 1.0;
  std::shared_ptr<torch::nn::Module> parameters_;
  std::vector<LayerCapacity> layers_;  // [depth]
  LayerTimingTable timing_;            // cost = time: the measured table (empty until set)
  int64_t decisions_ = 0;              // decisions taken so far
  int64_t infeasible_ = 0;             // decisions that could not meet the budget
};

}  // namespace winnow::compression
