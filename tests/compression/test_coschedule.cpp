// The co-scheduler: budget schedule, greedy capacity allocator on synthetic statistics, and the
// planner's plans, probes, FLOPs model, decisions from a real monitor and state round trip.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <random>

#include "compression/budget_schedule.h"
#include "compression/capacity_allocator.h"
#include "compression/co_scheduler.h"
#include "compression/flops.h"
#include "compression/layer_timing_table.h"
#include "compression/token_evolution_monitor.h"

namespace winnow::compression {
namespace {

// ---- budget schedule ----

TEST(BudgetSchedule, WarmupThenCosineRampThenHold) {
  BudgetScheduleConfig c;
  c.target = 0.5;
  c.warmup_steps = 10;
  c.ramp_steps = 100;
  BudgetSchedule s(c);
  EXPECT_EQ(s.at(0), 1.0);
  EXPECT_EQ(s.at(9), 1.0);
  EXPECT_DOUBLE_EQ(s.at(10), 1.0);     // cos(0) = 1: the ramp starts at 1
  EXPECT_NEAR(s.at(60), 0.75, 1e-12);  // half way: ρ* + (1−ρ*)·½
  EXPECT_NEAR(s.at(35), 0.5 + 0.5 * 0.5 * (1 + std::cos(M_PI * 0.25)), 1e-12);
  EXPECT_DOUBLE_EQ(s.at(110), 0.5);
  EXPECT_DOUBLE_EQ(s.at(100000), 0.5);
  for (int64_t t = 0; t < 200; ++t) EXPECT_LE(s.at(t + 1), s.at(t));
  EXPECT_EQ(s.first_step_at_or_below(0.75), 60);
  EXPECT_EQ(s.first_step_at_or_below(1.0), 10);
}

TEST(BudgetSchedule, LinearExponentialAndStepRamps) {
  BudgetScheduleConfig c;
  c.target = 0.6;
  c.warmup_steps = 1;
  c.ramp_steps = 40;
  c.ramp = "linear";
  EXPECT_NEAR(BudgetSchedule(c).at(21), 0.8, 1e-12);
  c.ramp = "step";
  EXPECT_EQ(BudgetSchedule(c).at(40), 1.0);
  EXPECT_EQ(BudgetSchedule(c).at(41), 0.6);
  c.ramp = "exponential";
  c.gamma = 0.01;
  EXPECT_NEAR(BudgetSchedule(c).at(101), 0.4 * std::exp(-1.0) + 0.6, 1e-12);
}

TEST(BudgetSchedule, HealPhaseAndErrorsNameTheOption) {
  BudgetScheduleConfig c;
  c.heal_steps = 10;
  c.total_steps = 100;
  BudgetSchedule s(c);
  EXPECT_FALSE(s.healing(89));
  EXPECT_TRUE(s.healing(90));
  c.total_steps = 5;
  EXPECT_THROW(
      try { BudgetSchedule{c}; } catch (const c10::Error& e) {
        EXPECT_NE(std::string(e.msg()).find("coschedule.heal_steps"), std::string::npos);
        throw;
      },
      c10::Error);
  BudgetScheduleConfig bad;
  bad.target = 0.0;
  EXPECT_THROW(BudgetSchedule{bad}, c10::Error);
  bad.target = 0.5;
  bad.ramp = "sigmoid";
  EXPECT_THROW(BudgetSchedule{bad}, c10::Error);
}

// ---- allocator on synthetic statistics ----

// Cost = Σ levels (every grid step of every layer costs the same); M_l(k) = k.
AllocationProblem linear_problem(std::vector<double> influence, double budget) {
  AllocationProblem p;
  p.influence = std::move(influence);
  p.kept_mass = [](int64_t, double k) { return k; };
  p.cost = [](const std::vector<int64_t>& levels) {
    double c = 0;
    for (auto l : levels) c += static_cast<double>(l);
    return c;
  };
  p.budget = budget;
  return p;
}

std::vector<LayerCapacity> dense_layers(int64_t depth, int64_t grid) {
  std::vector<LayerCapacity> layers(static_cast<size_t>(depth));
  for (auto& l : layers) l.level = grid;
  return layers;
}

std::vector<int64_t> levels_of(const std::vector<LayerCapacity>& layers) {
  std::vector<int64_t> out;
  for (const auto& l : layers) out.push_back(l.level);
  return out;
}

AllocatorOptions options(int64_t grid) {
  AllocatorOptions o;
  o.grid = grid;
  o.min_protected_level = grid / 2;
  return o;
}

TEST(CapacityAllocator, PicksTheCheapestDamageMovesByHand) {
  // Influences 0.4, 0.1, 0.3, 0.2; G = 4; dense cost 16; budget 12 → four grid steps down.
  // Layer 1 (w 0.1, ratio 0.025 per step) goes 4 → 3 → 2 → 1; its step to 0 waits for fade-out,
  // so the fourth step is layer 3's (w 0.2).
  CapacityAllocator allocator(options(4), 4);
  auto layers = dense_layers(4, 4);
  const auto result =
      allocator.decide(linear_problem({0.4, 0.1, 0.3, 0.2}, 12.0), MoveRules{}, layers);
  EXPECT_TRUE(result.feasible);
  EXPECT_EQ(levels_of(layers), (std::vector<int64_t>{4, 1, 4, 3}));
  ASSERT_EQ(result.moves.size(), 4u);
  EXPECT_EQ(result.moves[0].layer, 1);
  EXPECT_EQ(result.moves[2].to, 1);
  EXPECT_EQ(result.moves[3].layer, 3);
  EXPECT_DOUBLE_EQ(result.cost, 12.0);
  for (const auto& m : result.moves) EXPECT_EQ(m.reason, "budget");
  // Next decision, same budget, lower: layer 1 has sat at 1/4 for one decision and may go to 0.
  const auto next =
      allocator.decide(linear_problem({0.4, 0.1, 0.3, 0.2}, 11.0), MoveRules{}, layers);
  EXPECT_EQ(levels_of(layers), (std::vector<int64_t>{4, 0, 4, 3}));
  EXPECT_EQ(next.moves.size(), 1u);
}

TEST(CapacityAllocator, ConvexKeptMassPrefersThinningOverDroppingALayer) {
  // M(k) = √k: the first tokens removed carry little change, so thinning two layers a little
  // beats pruning one whole layer of the same influence.
  CapacityAllocator allocator(options(8), 4);
  auto layers = dense_layers(4, 8);
  auto problem = linear_problem({0.25, 0.25, 0.25, 0.25}, 24.0);
  problem.kept_mass = [](int64_t, double k) { return std::sqrt(k); };
  allocator.decide(problem, MoveRules{}, layers);
  for (auto level : levels_of(layers)) EXPECT_GT(level, 0);
  EXPECT_EQ(problem.cost(levels_of(layers)), 24.0);
}

TEST(CapacityAllocator, MeetsTheBudgetAtEveryDecisionOnRandomStatistics) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> u(0.01, 1.0);
  AllocatorOptions o = options(8);
  o.protected_layers = {0, 7};
  CapacityAllocator allocator(o, 8);
  auto layers = dense_layers(8, 8);
  // Costs grow faster than levels (attention's n² term).
  for (int decision = 0; decision < 40; ++decision) {
    std::vector<double> w(8);
    for (auto& x : w) x = u(rng);
    const double exponent = 0.5 + u(rng);
    auto problem = linear_problem(w, 0.0);
    problem.kept_mass = [exponent](int64_t, double k) { return std::pow(k, exponent); };
    problem.cost = [](const std::vector<int64_t>& levels) {
      double c = 0;
      for (auto l : levels) c += static_cast<double>(l) + 0.1 * static_cast<double>(l * l);
      return c;
    };
    const double dense = problem.cost(std::vector<int64_t>(8, 8));
    const double rho = 1.0 - 0.6 * std::min(1.0, decision / 20.0);
    problem.budget = rho * dense;
    const auto result = allocator.decide(problem, MoveRules{}, layers);
    ASSERT_TRUE(result.feasible);
    EXPECT_LE(problem.cost(levels_of(layers)), problem.budget * (1 + 1e-12)) << decision;
    EXPECT_GE(layers[0].level, 4);
    EXPECT_GE(layers[7].level, 4);
  }
}

TEST(CapacityAllocator, ModesRestrictTheMoves) {
  const auto problem = linear_problem({0.4, 0.1, 0.3, 0.2}, 10.0);
  CapacityAllocator allocator(options(4), 4);
  {
    MoveRules token_only;
    token_only.drop = false;
    token_only.revive = false;
    auto layers = dense_layers(4, 4);
    for (int i = 0; i < 3; ++i) allocator.decide(problem, token_only, layers);
    for (auto level : levels_of(layers)) EXPECT_GE(level, 1);
  }
  {
    MoveRules layer_only;
    layer_only.thin = false;
    auto layers = dense_layers(4, 4);
    const auto result = allocator.decide(problem, layer_only, layers);
    for (auto level : levels_of(layers)) EXPECT_TRUE(level == 0 || level == 4);
    // Two whole layers, the two least influential.
    EXPECT_EQ(levels_of(layers), (std::vector<int64_t>{4, 0, 4, 0}));
    EXPECT_TRUE(result.feasible);
  }
}

TEST(CapacityAllocator, ProtectedLayersStopAtTheirMinimumAndInfeasibleIsReported) {
  AllocatorOptions o = options(4);
  o.protected_layers = {0, 1};
  CapacityAllocator allocator(o, 2);
  auto layers = dense_layers(2, 4);
  const auto result = allocator.decide(linear_problem({0.5, 0.5}, 1.0), MoveRules{}, layers);
  EXPECT_FALSE(result.feasible);
  EXPECT_EQ(levels_of(layers), (std::vector<int64_t>{2, 2}));
}

TEST(CapacityAllocator, DwellBlocksAReversalAndSlackIsSpentAfterIt) {
  AllocatorOptions o = options(4);
  o.dwell = 2;
  CapacityAllocator allocator(o, 2);
  auto layers = dense_layers(2, 4);
  allocator.decide(linear_problem({0.6, 0.4}, 7.0), MoveRules{}, layers);
  EXPECT_EQ(levels_of(layers), (std::vector<int64_t>{4, 3}));
  // The budget is loose again at once: layer 1 moved down one decision ago and must dwell.
  allocator.decide(linear_problem({0.6, 0.4}, 8.0), MoveRules{}, layers);
  EXPECT_EQ(levels_of(layers), (std::vector<int64_t>{4, 3}));
  const auto later = allocator.decide(linear_problem({0.6, 0.4}, 8.0), MoveRules{}, layers);
  EXPECT_EQ(levels_of(layers), (std::vector<int64_t>{4, 4}));
  ASSERT_EQ(later.moves.size(), 1u);
  EXPECT_EQ(later.moves[0].reason, "slack");
}

TEST(CapacityAllocator, HysteresisHoldsAgainstSmallChangesAndSwapsOnLargeOnes) {
  AllocatorOptions o = options(4);
  o.dwell = 0;
  o.hysteresis = 0.1;
  CapacityAllocator allocator(o, 2);
  auto layers = dense_layers(2, 4);
  allocator.decide(linear_problem({0.55, 0.45}, 7.0), MoveRules{}, layers);
  ASSERT_EQ(levels_of(layers), (std::vector<int64_t>{4, 3}));
  // The influences cross by less than the margin: no swap.
  auto small = allocator.decide(linear_problem({0.48, 0.52}, 7.0), MoveRules{}, layers);
  EXPECT_TRUE(small.moves.empty());
  EXPECT_EQ(levels_of(layers), (std::vector<int64_t>{4, 3}));
  // Now layer 1 matters far more: swap.
  auto large = allocator.decide(linear_problem({0.2, 0.8}, 7.0), MoveRules{}, layers);
  EXPECT_EQ(levels_of(layers), (std::vector<int64_t>{3, 4}));
  ASSERT_EQ(large.moves.size(), 2u);
  EXPECT_EQ(large.moves[0].reason, "swap");
}

TEST(CapacityAllocator, FadeOutIsOverriddenOnlyWhenNothingElseMeetsTheBudget) {
  AllocatorOptions o = options(2);
  o.fade = 1;
  CapacityAllocator allocator(o, 1);
  auto layers = dense_layers(1, 2);
  const auto result = allocator.decide(linear_problem({1.0}, 0.0), MoveRules{}, layers);
  EXPECT_EQ(layers[0].level, 0);
  ASSERT_EQ(result.moves.size(), 2u);
  EXPECT_EQ(result.moves[0].reason, "budget");
  EXPECT_EQ(result.moves[1].reason, "forced");
}

TEST(CapacityAllocator, UnmovableLayersStayPut) {
  CapacityAllocator allocator(options(4), 3);
  auto layers = dense_layers(3, 4);
  auto problem = linear_problem({0.0, 0.5, 0.5}, 10.0);
  problem.movable = {false, true, true};
  allocator.decide(problem, MoveRules{}, layers);
  EXPECT_EQ(layers[0].level, 4);
}

// ---- the planner ----

ModelShape vit_shape(int64_t depth = 6) {
  ModelShape shape;
  shape.depth = depth;
  shape.width = 16;
  shape.grid_height = 4;
  shape.grid_width = 4;
  shape.mlp_hidden = 64;
  shape.tokens = 17;
  shape.protected_tokens = 1;
  return shape;
}

CoSchedulerConfig joint_config() {
  CoSchedulerConfig c;
  c.mode = "joint";
  c.budget.target = 0.5;
  c.budget.warmup_steps = 4;
  c.budget.ramp_steps = 0;
  c.interval = 4;
  c.probe_every = 8;
  c.statistics_every = 1;
  c.allocator.grid = 4;
  c.allocator.min_protected_level = 2;
  c.allocator.protected_layers = {0};
  return c;
}

TEST(CoScheduler, BlockFlopsCountKeptTokensCumulativelyInDropMode) {
  CoScheduler planner(joint_config(), vit_shape(3));
  EXPECT_TRUE(planner.drop_mode());
  const BlockShape block{16, 64};
  const double dense = 3 * block_forward_flops(block, 17, 17);
  EXPECT_DOUBLE_EQ(planner.dense_block_flops(), dense);
  // Layer 1 at 2/4 keeps 1 + ⌈0.5·16⌉ = 9 after its attention (cls_attention: post-attention
  // site), layer 2 is pruned.
  const double expected = block_forward_flops(block, 17, 17) +
                          attention_forward_flops(block, 17, 17) + mlp_forward_flops(block, 9);
  EXPECT_DOUBLE_EQ(planner.block_flops({4, 2, 0}), expected);
}

TEST(CoScheduler, PlansExecuteTheCapacitiesAndProbesRunFull) {
  auto config = joint_config();
  config.mode = "open_loop";
  CoScheduler planner(config, vit_shape());
  // Dense until the first decision, after warmup step 3.
  EXPECT_TRUE(planner.plan(0, true).dense());
  EXPECT_FALSE(planner.decides_after(2));
  EXPECT_TRUE(planner.decides_after(3));
  const auto decisions = planner.observe(3, nullptr);
  EXPECT_FALSE(decisions.empty());
  const auto plan = planner.plan(4, true);
  EXPECT_TRUE(plan.statistics);
  const auto k = planner.capacities();
  std::vector<int64_t> levels;
  for (size_t l = 0; l < k.size(); ++l) {
    levels.push_back(std::llround(k[l] * 4));
    const auto& layer = plan.layers[l];
    if (k[l] == 0.0) {
      EXPECT_EQ(layer.gate.mode, LayerGate::Mode::kSkip);
    } else if (k[l] < 1.0) {
      ASSERT_EQ(layer.reductions.size(), 1u);
      EXPECT_DOUBLE_EQ(layer.reductions[0].keep, k[l]);
      EXPECT_EQ(layer.reductions[0].site, Site::kPostAttention);
    } else {
      EXPECT_TRUE(layer.reductions.empty());
    }
  }
  EXPECT_LE(planner.block_flops(levels), 0.5 * planner.dense_block_flops() * (1 + 1e-12));
  EXPECT_GE(k[0], 0.5);  // protected
  // Open loop: capacity never rises with depth (PLD profile).
  for (size_t l = 2; l < k.size(); ++l) EXPECT_LE(k[l], k[l - 1]);
  // Probe: step 11 is the 8th step after warmup.
  EXPECT_TRUE(planner.is_probe(11));
  EXPECT_TRUE(planner.plan(11, true).dense());
  EXPECT_FALSE(planner.plan(12, true).dense());
  // Evaluation at the current capacities by default.
  EXPECT_FALSE(planner.plan(0, false).dense());
  EXPECT_FALSE(planner.plan(0, false).statistics);
}

TEST(CoScheduler, StatisticsEverySStepsAndOnEveryProbeAndBeforeEveryDecision) {
  auto config = joint_config();  // warmup 4, a decision every 4 steps, probes every 8
  config.statistics_every = 5;
  CoScheduler planner(config, vit_shape());
  std::vector<int64_t> observed;
  for (int64_t step = 0; step < 21; ++step) {
    if (planner.plan(step, true).statistics) observed.push_back(step);
    EXPECT_FALSE(planner.plan(step, false).statistics);
  }
  // Every 5th step: 4, 9, 14, 19; before a decision: 3, 7, 11, 15, 19; probes: 11, 19.
  EXPECT_EQ(observed, (std::vector<int64_t>{3, 4, 7, 9, 11, 14, 15, 19}));
  EXPECT_TRUE(planner.is_probe(11));
  EXPECT_NE(planner.describe().find("statistics every 5"), std::string::npos) << planner.describe();
  // S = 1 observes every training step.
  CoScheduler every(joint_config(), vit_shape());
  for (int64_t step = 0; step < 21; ++step) EXPECT_TRUE(every.plan(step, true).statistics);
}

TEST(CoScheduler, StructureEvaluationSkipsPrunedLayersAndRunsThinnedOnesDense) {
  auto config = joint_config();
  config.capacities = {1.0, 0.5, 0.0};
  config.eval = "structure";
  CoScheduler planner(config, vit_shape(3));
  const auto eval = planner.plan(7, false);
  ASSERT_EQ(eval.layers.size(), 3u);
  EXPECT_TRUE(eval.layers[0].reductions.empty());
  EXPECT_TRUE(eval.layers[1].reductions.empty());
  EXPECT_EQ(eval.layers[2].gate.mode, LayerGate::Mode::kSkip);
  // Training still thins layer 1 (step 5 is not a probe).
  EXPECT_FALSE(planner.is_probe(5));
  EXPECT_EQ(planner.plan(5, true).layers[1].reductions.size(), 1u);
  EXPECT_NE(planner.describe().find("evaluated structure"), std::string::npos)
      << planner.describe();
}

// Feeds the monitor one step where layer l changes its tokens by scale[l].
void observe_layers(TokenEvolutionMonitor& monitor, const std::vector<double>& scale,
                    int64_t step) {
  torch::manual_seed(step);
  for (int64_t l = 0; l < monitor.depth(); ++l) {
    auto x = torch::randn({2, 17, 16});
    auto y = x + scale[static_cast<size_t>(l)] * torch::randn({2, 17, 16});
    monitor.observe(l, x, y, {}, 1);
  }
  monitor.update(monitor.step_sums(), step);
}

TEST(CoScheduler, JointDecisionsFollowTheStatisticsAndRoundTripThroughState) {
  auto config = joint_config();
  config.budget.target = 0.6;
  CoScheduler planner(config, vit_shape(6));
  TokenEvolutionMonitor monitor(6);
  const std::vector<double> scale = {1.0, 0.05, 0.8, 0.02, 0.9, 0.7};
  for (int64_t step = 0; step < 4; ++step) observe_layers(monitor, scale, step);
  const auto decisions = planner.observe(3, &monitor);
  ASSERT_FALSE(decisions.empty());
  const auto k = planner.capacities();
  // Only the layers that barely change their tokens (1 and 3) give up capacity.
  EXPECT_TRUE(k[1] < 1.0 || k[3] < 1.0);
  EXPECT_EQ(k[2], 1.0);
  EXPECT_EQ(k[4], 1.0);
  for (const auto& d : decisions) {
    EXPECT_EQ(d.step, 3);
    EXPECT_LE(d.cost, 0.6 + 1e-12);
    EXPECT_DOUBLE_EQ(d.budget, 0.6);
  }
  // State round trip: a fresh planner loaded from the state plans identically.
  CoScheduler restored(config, vit_shape(6));
  restored.load_state(planner.state());
  EXPECT_EQ(restored.capacities(), planner.capacities());
  EXPECT_EQ(restored.plan(5, true).describe(), planner.plan(5, true).describe());
  for (int64_t step = 4; step < 8; ++step) observe_layers(monitor, scale, step);
  const auto a = planner.observe(7, &monitor);
  const auto b = restored.observe(7, &monitor);
  EXPECT_EQ(a.size(), b.size());
  EXPECT_EQ(restored.capacities(), planner.capacities());
  auto bad = planner.state();
  bad["level"] = torch::zeros({5}, torch::kInt64);
  EXPECT_THROW(restored.load_state(bad), c10::Error);
}

TEST(CoScheduler, ModesOnTheSamePath) {
  TokenEvolutionMonitor monitor(6);
  const std::vector<double> scale = {1.0, 0.05, 0.8, 0.02, 0.9, 0.7};
  for (int64_t step = 0; step < 4; ++step) observe_layers(monitor, scale, step);
  for (const std::string mode : {"token_only", "layer_only", "staged_lt", "staged_tl"}) {
    auto config = joint_config();
    config.mode = mode;
    config.budget.target = 0.55;
    config.allocator.protected_layers = {};
    CoScheduler planner(config, vit_shape(6));
    planner.observe(3, &monitor);
    const auto k = planner.capacities();
    for (double c : k) {
      if (mode == "token_only") {
        EXPECT_GT(c, 0.0) << mode;
      }
      if (mode == "layer_only") {
        EXPECT_TRUE(c == 0.0 || c == 1.0) << mode;
      }
    }
    std::vector<int64_t> levels;
    for (double c : k) levels.push_back(std::llround(c * 4));
    EXPECT_LE(planner.block_flops(levels), 0.55 * planner.dense_block_flops() * (1 + 1e-12))
        << mode;
  }
}

TEST(CoScheduler, ConfigurationErrorsNameTheOption) {
  auto expect_error = [](CoSchedulerConfig c, const std::string& option) {
    try {
      CoScheduler planner(c, vit_shape());
      ADD_FAILURE() << "no error for " << option;
    } catch (const c10::Error& e) {
      EXPECT_NE(std::string(e.msg()).find(option), std::string::npos) << e.msg();
    }
  };
  auto c = joint_config();
  c.mode = "both";
  expect_error(c, "coschedule.mode");
  c = joint_config();
  c.budget.warmup_steps = 0;
  expect_error(c, "coschedule.warmup_steps");
  c = joint_config();
  c.influence = "gradient";
  expect_error(c, "coschedule.influence");
  c = joint_config();
  c.allocator.protected_layers = {9};
  expect_error(c, "coschedule.protected");
  c = joint_config();
  c.staged_split = 0.3;
  expect_error(c, "coschedule.staged_split");
  c = joint_config();
  c.statistics_every = 0;
  expect_error(c, "coschedule.statistics_every");
  c = joint_config();
  c.eval = "causal";
  expect_error(c, "coschedule.eval");
  c = joint_config();
  c.cost = "wallclock";
  expect_error(c, "coschedule.cost");
}

// ---- wall-clock cost model (coschedule.cost = time) ----

// A hand-made table for `planner`'s token counts: the attention and MLP halves of layer l each
// take seconds[l]·n/N (linear in the tokens, so only the layers' relative times differ from
// FLOPs).
LayerTimingTable linear_table(const CoScheduler& planner, const std::vector<double>& seconds,
                              int64_t tokens = 17) {
  const auto counts = planner.timing_token_counts();
  const auto depth = static_cast<int64_t>(seconds.size());
  auto half = torch::zeros({depth, static_cast<int64_t>(counts.size())}, torch::kFloat64);
  for (int64_t l = 0; l < depth; ++l)
    for (size_t p = 0; p < counts.size(); ++p)
      half[l][static_cast<int64_t>(p)] = 0.5 * seconds[static_cast<size_t>(l)] *
                                         static_cast<double>(counts[p]) /
                                         static_cast<double>(tokens);
  return LayerTimingTable(counts, half, half.clone());
}

TEST(LayerTimingTable, InterpolatesLinearlyBetweenMeasuredCounts) {
  const auto attention = torch::tensor({{1.0, 3.0, 7.0}}, torch::kFloat64);  // [1, 3]
  const auto mlp = torch::tensor({{2.0, 2.0, 4.0}}, torch::kFloat64);
  LayerTimingTable table({2, 4, 8}, attention, mlp);
  EXPECT_DOUBLE_EQ(table.attention(0, 2), 1.0);
  EXPECT_DOUBLE_EQ(table.attention(0, 3), 2.0);
  EXPECT_DOUBLE_EQ(table.attention(0, 6), 5.0);
  EXPECT_DOUBLE_EQ(table.mlp(0, 7), 3.5);
  EXPECT_EQ(table.attention(0, 0), 0.0);  // a pruned layer processes no token
  EXPECT_THROW(table.attention(0, 9), c10::Error);
  EXPECT_THROW(table.attention(1, 4), c10::Error);
  EXPECT_THROW(LayerTimingTable({4, 2, 8}, attention, mlp), c10::Error);
  EXPECT_THROW(LayerTimingTable({2, 4}, attention, mlp), c10::Error);
}

TEST(CoScheduler, TimingTokenCountsAreTheGridsCountsAndTheDropModeMinimum) {
  auto config = joint_config();  // G = 4; 17 tokens, 1 protected
  EXPECT_TRUE(CoScheduler(config, vit_shape()).timing_token_counts().empty());  // cost = flops
  config.cost = "time";
  EXPECT_EQ(CoScheduler(config, vit_shape()).timing_token_counts(),
            (std::vector<int64_t>{2, 5, 9, 13, 17}));
  config.execution = "skip";
  EXPECT_EQ(CoScheduler(config, vit_shape()).timing_token_counts(),
            (std::vector<int64_t>{5, 9, 13, 17}));
}

// Six layers of equal FLOPs, layer 5 five times as slow as the others (as a block with
// overheads the FLOPs do not see would be). Layers 1 and 3 barely change their tokens; layer 5
// changes them a lot. The FLOPs budget drops 1 and 3; the time budget drops layer 5 alone: its
// damage per second saved is the smallest, and the layers the FLOPs model would drop save too
// little time. Both meet their own budget; the time plan would miss the FLOPs one.
TEST(CoScheduler, ATimeTablePicksMovesTheFlopsModelWouldNotAndMeetsTheTimeBudget) {
  TokenEvolutionMonitor monitor(6);
  const std::vector<double> scale = {1.0, 0.05, 0.8, 0.02, 0.9, 0.7};
  for (int64_t step = 0; step < 4; ++step) observe_layers(monitor, scale, step);
  auto config = joint_config();
  config.mode = "layer_only";
  config.budget.target = 0.7;
  config.allocator.protected_layers = {};
  config.allocator.dwell = 0;
  CoScheduler flops(config, vit_shape(6));
  config.cost = "time";
  CoScheduler timed(config, vit_shape(6));
  EXPECT_THROW(timed.block_cost({4, 4, 4, 4, 4, 4}), c10::Error);  // not measured yet
  timed.set_timing(linear_table(timed, {1, 1, 1, 1, 1, 5}));
  EXPECT_DOUBLE_EQ(timed.dense_block_cost(), 10.0);
  flops.observe(3, &monitor);
  const auto decisions = timed.observe(3, &monitor);
  EXPECT_EQ(flops.capacities(), (std::vector<double>{1, 0, 1, 0, 1, 1}));
  EXPECT_EQ(timed.capacities(), (std::vector<double>{1, 1, 1, 1, 1, 0}));
  const std::vector<int64_t> levels = {4, 4, 4, 4, 4, 0};
  EXPECT_LE(timed.block_cost(levels), 0.7 * timed.dense_block_cost());
  EXPECT_GT(flops.block_flops(levels), 0.7 * flops.dense_block_flops());
  ASSERT_FALSE(decisions.empty());
  EXPECT_DOUBLE_EQ(decisions.back().cost, 0.5);
  EXPECT_NE(timed.describe().find("coschedule.cost=time"), std::string::npos);
  EXPECT_NE(flops.describe().find("coschedule.cost=flops"), std::string::npos);
}

// Token thinning in drop mode reads the table at the cumulative counts, interpolated, with the
// attention half at the entering count at a post-attention site, as the FLOPs model counts.
TEST(CoScheduler, TimeCostFollowsTheTokenCountsOfDropMode) {
  auto config = joint_config();
  config.cost = "time";
  CoScheduler planner(config, vit_shape(3));
  const auto table = linear_table(planner, {1, 1, 1});
  planner.set_timing(table);
  // Layer 1 at 2/4: attention on 17, MLP on 9; layer 2 at 1/4 of the 8 left: attention on 9,
  // MLP on 1 + 2 = 3 (between the measured 2 and 5).
  const double expected = 1.0 + 0.5 * (17.0 + 9.0) / 17.0 + 0.5 * (9.0 + 3.0) / 17.0;
  EXPECT_NEAR(planner.block_cost({4, 2, 1}), expected, 1e-12);
  EXPECT_EQ(planner.block_cost({0, 0, 0}), 0.0);
}

TEST(CoScheduler, TheSmallerPlannerOfTheHealPhaseKeepsTheKeptLayersTimes) {
  auto config = joint_config();
  config.cost = "time";
  CoScheduler planner(config, vit_shape(3));
  planner.set_timing(linear_table(planner, {1, 2, 3}));
  const auto smaller = std::dynamic_pointer_cast<CoScheduler>(planner.without_layers({0, 2}));
  ASSERT_NE(smaller, nullptr);
  ASSERT_EQ(smaller->timing().depth(), 2);
  for (int64_t n : planner.timing().token_counts()) {
    EXPECT_EQ(smaller->timing().attention(0, n), planner.timing().attention(0, n));
    EXPECT_EQ(smaller->timing().mlp(1, n), planner.timing().mlp(2, n));
  }
  EXPECT_EQ(smaller->block_cost({4, 4}), planner.block_cost({4, 0, 4}));
}

TEST(CoScheduler, TheTimingTableRoundTripsThroughState) {
  auto config = joint_config();
  config.cost = "time";
  CoScheduler planner(config, vit_shape(3));
  planner.set_timing(linear_table(planner, {1, 2, 3}));
  const auto state = planner.state();
  for (const auto* name : {"timing.tokens", "timing.attention_seconds", "timing.mlp_seconds"})
    EXPECT_TRUE(state.count(name)) << name;
  CoScheduler restored(config, vit_shape(3));
  restored.load_state(state);
  EXPECT_EQ(restored.timing().token_counts(), planner.timing().token_counts());
  EXPECT_TRUE(
      torch::equal(restored.timing().attention_seconds(), planner.timing().attention_seconds()));
  EXPECT_TRUE(torch::equal(restored.timing().mlp_seconds(), planner.timing().mlp_seconds()));
  EXPECT_EQ(restored.block_cost({4, 1, 0}), planner.block_cost({4, 1, 0}));
  // A FLOPs planner's state has no table; a time planner cannot resume from it.
  auto flops_config = joint_config();
  const auto flops_state = CoScheduler(flops_config, vit_shape(3)).state();
  EXPECT_FALSE(flops_state.count("timing.tokens"));
  try {
    restored.load_state(flops_state);
    ADD_FAILURE() << "a time planner loaded a state without a timing table";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.msg()).find("coschedule.cost"), std::string::npos) << e.msg();
  }
}

}  // namespace
}  // namespace winnow::compression
