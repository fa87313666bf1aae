// Plans: layer gates (skip lists, LayerDrop, PLD's formula, keyed decisions), the static planner
// composing several stages per layer, and its validation errors.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

#include "compression/layer_gate.h"
#include "compression/planner.h"

using namespace winnow::compression;
using testing::HasSubstr;

namespace {

GateConfig gate(const std::string& kind, std::vector<int64_t> layers = {}) {
  GateConfig g;
  g.kind = kind;
  g.layers = std::move(layers);
  return g;
}

StageConfig stage(const std::string& name, const std::string& criterion,
                  const std::string& strategy, std::vector<int64_t> layers, double keep) {
  StageConfig s;
  s.name = name;
  s.reduction.criterion = criterion;
  s.reduction.strategy = strategy;
  s.reduction.layers = std::move(layers);
  s.reduction.keep = {keep};
  return s;
}

std::string planner_error(const StaticPlannerConfig& config, int64_t depth = 8) {
  try {
    StaticPlanner planner(config, {depth, 16, 4, 4});
  } catch (const c10::Error& e) {
    return e.msg();
  }
  return "no error";
}

}  // namespace

// Zhang & He 2020 (DeepSpeed PLD): θ(t) = (1 − θ̄)e^(−γt) + θ̄, p_l = 1 − (l/L)(1 − θ(t)).
TEST(LayerGates, PldKeepProbabilitiesFollowTheFormula) {
  GateConfig g = gate("pld");  // defaults θ̄ = 0.5, γ = 0.001
  const int64_t depth = 12;
  LayerGateSchedule gates(g, depth);
  for (int64_t t : {0, 1, 100, 693, 5000, 100000}) {
    const double theta = 0.5 * std::exp(-0.001 * static_cast<double>(t)) + 0.5;
    EXPECT_NEAR(gates.pld_theta(t), theta, 1e-15) << t;
    for (int64_t layer : {0, 5, 11}) {
      const double expected = 1.0 - (static_cast<double>(layer + 1) / depth) * (1.0 - theta);
      EXPECT_NEAR(gates.keep_probability(layer, t), expected, 1e-15) << t << " " << layer;
      const LayerGate at = gates.at(layer, t, /*training=*/true);
      EXPECT_EQ(at.mode, LayerGate::Mode::kStochastic);
      EXPECT_NEAR(at.keep_probability, expected, 1e-15);
      EXPECT_NEAR(at.update_scale(), 1.0 / expected, 1e-12);  // PLD's 1/p, on by default
    }
  }
  // Step 0: every layer runs with probability 1; the last layer tends to θ̄.
  EXPECT_DOUBLE_EQ(gates.keep_probability(11, 0), 1.0);
  EXPECT_NEAR(gates.keep_probability(11, 1000000), 0.5, 1e-12);
  EXPECT_NEAR(gates.keep_probability(5, 1000000), 1.0 - 0.5 * 0.5, 1e-12);
}

TEST(LayerGates, DecisionsAreKeyedAndFollowTheProbability) {
  LayerGate g;
  g.mode = LayerGate::Mode::kStochastic;
  g.keep_probability = 0.3;
  int runs = 0;
  for (int64_t step = 0; step < 4000; ++step) {
    const bool first = g.runs(7, step, 2);
    EXPECT_EQ(first, g.runs(7, step, 2));  // a pure function of the keys
    runs += first ? 1 : 0;
  }
  EXPECT_NEAR(runs / 4000.0, 0.3, 0.03);
  // Other layers and seeds draw differently.
  int differ = 0;
  for (int64_t step = 0; step < 200; ++step)
    differ += g.runs(7, step, 2) != g.runs(7, step, 3) || g.runs(7, step, 2) != g.runs(8, step, 2);
  EXPECT_GT(differ, 20);
  g.mode = LayerGate::Mode::kSkip;
  EXPECT_FALSE(g.runs(0, 0, 0));
  g.mode = LayerGate::Mode::kRun;
  EXPECT_TRUE(g.runs(0, 0, 0));
  EXPECT_EQ(g.update_scale(), 1.0);
}

TEST(LayerGates, SkipListLayerDropAndEvaluation) {
  LayerGateSchedule skip(gate("skip", {1, 3}), 4);
  EXPECT_EQ(skip.at(1, 5, true).mode, LayerGate::Mode::kSkip);
  EXPECT_EQ(skip.at(2, 5, true).mode, LayerGate::Mode::kRun);
  EXPECT_EQ(skip.at(3, 5, false).mode, LayerGate::Mode::kSkip);  // auto: removed layers stay so
  GateConfig all = gate("skip", {1});
  all.eval = "all";
  EXPECT_EQ(LayerGateSchedule(all, 4).at(1, 5, false).mode, LayerGate::Mode::kRun);

  GateConfig drop = gate("layerdrop", {2});
  drop.drop = 0.25;
  drop.scale = false;
  LayerGateSchedule layerdrop(drop, 4);
  EXPECT_EQ(layerdrop.at(1, 5, true).mode, LayerGate::Mode::kRun);  // not gated
  const auto at = layerdrop.at(2, 5, true);
  EXPECT_EQ(at.mode, LayerGate::Mode::kStochastic);
  EXPECT_DOUBLE_EQ(at.keep_probability, 0.75);
  EXPECT_EQ(at.update_scale(), 1.0);
  EXPECT_EQ(layerdrop.at(2, 5, false).mode, LayerGate::Mode::kRun);  // evaluation runs all
  drop.eval = "same";
  EXPECT_DOUBLE_EQ(LayerGateSchedule(drop, 4).at(2, 5, false).keep_probability, 0.75);
}

TEST(LayerGates, KindsAreAnExplicitList) {
  EXPECT_EQ(gate_kind_registry().names(),
            (std::vector<std::string>{"none", "skip", "layerdrop", "pld"}));
  EXPECT_EQ(gate_kind_registry().create("none", GateConfig{}), nullptr);  // nothing is gated
  EXPECT_TRUE(gate_kind_registry().create("skip", gate("skip", {1}))->skips());
  EXPECT_FALSE(gate_kind_registry().create("pld", gate("pld"))->skips());
}

TEST(LayerGates, BadConfigurationsNameTheOption) {
  auto error = [](const GateConfig& g) {
    try {
      LayerGateSchedule s(g, 4);
    } catch (const c10::Error& e) {
      return e.msg();
    }
    return std::string("no error");
  };
  EXPECT_THAT(error(gate("sometimes")), HasSubstr("gate.kind: expected one of none, skip"));
  EXPECT_THAT(error(gate("skip")), HasSubstr("gate.layers: gate.kind=skip needs"));
  EXPECT_THAT(error(gate("skip", {4})), HasSubstr("gate.layers: layer 4 outside [0, 4)"));
  GateConfig g = gate("layerdrop");
  g.drop = 1.0;
  EXPECT_THAT(error(g), HasSubstr("gate.drop"));
  g = gate("pld");
  g.theta_bar = 0.0;
  EXPECT_THAT(error(g), HasSubstr("gate.theta_bar"));
}

// 2×2 pooling after block 0, ToMe merging in blocks 3–7 and a skip gate on block 2: each layer's
// plan holds exactly its stage's reduction, in site order.
TEST(StaticPlanner, SeveralStagesInOneModel) {
  StaticPlannerConfig config;
  config.stages.push_back(stage("pool", "uniform", "pool", {1}, 0.25));
  config.stages.push_back(stage("tome", "similarity", "merge", {3, 4, 5, 6, 7}, 0.9));
  config.gate = gate("skip", {2});
  StaticPlanner planner(config, {8, 16, 4, 4});
  const Plan plan = planner.plan(10, /*training=*/true);
  ASSERT_EQ(plan.layers.size(), 8u);
  EXPECT_TRUE(plan.layers[0].reductions.empty());
  ASSERT_EQ(plan.layers[1].reductions.size(), 1u);
  EXPECT_EQ(plan.layers[1].reductions[0].stage, "pool");
  EXPECT_EQ(plan.layers[1].reductions[0].site, Site::kPreBlock);
  EXPECT_DOUBLE_EQ(plan.layers[1].reductions[0].keep, 0.25);
  EXPECT_EQ(plan.layers[2].gate.mode, LayerGate::Mode::kSkip);
  for (int64_t l = 3; l < 8; ++l) {
    ASSERT_EQ(plan.layers[static_cast<size_t>(l)].reductions.size(), 1u) << l;
    EXPECT_EQ(plan.layers[static_cast<size_t>(l)].reductions[0].stage, "tome");
    EXPECT_EQ(plan.layers[static_cast<size_t>(l)].reductions[0].site, Site::kPostAttention);
  }
  EXPECT_FALSE(plan.dense());
  EXPECT_THAT(plan.describe(), HasSubstr("2: gate skip"));
  EXPECT_THAT(planner.describe(), HasSubstr("stage tome: similarity+merge"));
}

// DiffRate-style: prune then merge at the same layer and site, in the configured order.
TEST(StaticPlanner, PruneThenMergeAtOneLayerKeepsTheConfiguredOrder) {
  StaticPlannerConfig config;
  config.stages.push_back(stage("prune", "cls_attention", "prune", {2}, 0.8));
  config.stages.push_back(stage("merge", "similarity", "merge", {2}, 0.75));
  StaticPlanner planner(config, {4, 16, 4, 4});
  const Plan plan = planner.plan(0, true);
  const auto& reductions = plan.layers[2].reductions;
  ASSERT_EQ(reductions.size(), 2u);
  EXPECT_EQ(reductions[0].stage, "prune");
  EXPECT_EQ(reductions[1].stage, "merge");
}

TEST(StaticPlanner, RampsWarmupsAndEvaluationPerStage) {
  StaticPlannerConfig config;
  config.stages.push_back(stage("late", "random", "prune", {1}, 0.5));
  config.stages.back().reduction.warmup_steps = 10;
  config.stages.push_back(stage("route", "random", "route", {2}, 0.5));
  StaticPlanner planner(config, {4, 16, 4, 4});
  EXPECT_TRUE(planner.plan(5, true).layers[1].reductions.empty());  // warmup
  EXPECT_EQ(planner.plan(5, true).layers[2].reductions.size(), 1u);
  const Plan evaluation = planner.plan(0, false);
  EXPECT_EQ(evaluation.layers[1].reductions.size(), 1u);  // target keep
  EXPECT_TRUE(evaluation.layers[2].reductions.empty());   // route evaluates dense (auto)
  EXPECT_FALSE(evaluation.statistics);
}

TEST(StaticPlanner, InvalidCombinationsNameTheStages) {
  StaticPlannerConfig two_routes;
  two_routes.stages.push_back(stage("a", "random", "route", {1}, 0.5));
  two_routes.stages.push_back(stage("b", "norm", "route", {1, 2}, 0.5));
  EXPECT_THAT(planner_error(two_routes), HasSubstr("stages 'a' and 'b' both route layer 1"));
  StaticPlannerConfig route_and_merge;
  route_and_merge.stages.push_back(stage("a", "random", "route", {3}, 0.5));
  route_and_merge.stages.push_back(stage("m", "similarity", "merge", {3}, 0.5));
  EXPECT_THAT(planner_error(route_and_merge),
              HasSubstr("stage 'a' routes layer 3 and stage 'm' reduces inside the same block"));
  StaticPlannerConfig twice;
  twice.stages.push_back(stage("a", "random", "prune", {1}, 0.5));
  twice.stages.push_back(stage("a", "norm", "prune", {2}, 0.5));
  EXPECT_THAT(planner_error(twice), HasSubstr("stage 'a' given twice"));
  StaticPlannerConfig bad_name;
  bad_name.stages.push_back(stage("a.b", "random", "prune", {1}, 0.5));
  EXPECT_THAT(planner_error(bad_name), HasSubstr("got 'a.b'"));
  StaticPlannerConfig bad_keep;
  bad_keep.stages.push_back(stage("tome", "similarity", "merge", {1}, 1.5));
  EXPECT_THAT(planner_error(bad_keep), HasSubstr("stage.tome.keep: expected values in (0, 1]"));
  StaticPlannerConfig learned_prune;
  learned_prune.stages.push_back(stage("s", "linear", "prune", {1}, 0.5));
  EXPECT_THAT(planner_error(learned_prune), HasSubstr("passes no gradient to its scores"));
}

// A learned criterion's parameters: one scorer per configured layer, named <stage>.<layer>.*.
TEST(StaticPlanner, LearnedCriteriaCreateParametersPerLayer) {
  StaticPlannerConfig config;
  config.stages.push_back(stage("router", "linear", "mask", {1, 3}, 0.5));
  config.stages.back().reduction.straight_through = true;
  StaticPlanner planner(config, {4, 16, 4, 4});
  ASSERT_TRUE(planner.parameters());
  std::vector<std::string> names;
  for (const auto& p : planner.parameters()->named_parameters()) names.push_back(p.key());
  EXPECT_THAT(names, testing::UnorderedElementsAre("router.1.norm.weight", "router.1.norm.bias",
                                                   "router.1.score.weight", "router.1.score.bias",
                                                   "router.3.norm.weight", "router.3.norm.bias",
                                                   "router.3.score.weight", "router.3.score.bias"));
  StaticPlannerConfig none;
  none.stages.push_back(stage("p", "random", "prune", {1}, 0.5));
  EXPECT_FALSE(StaticPlanner(none, {4, 16, 4, 4}).parameters());
}
