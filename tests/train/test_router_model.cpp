// Mixture-of-Depths inside the models: a routed block against its equations, causal routing in
// evaluation (decisions and logits at t depend only on tokens <= t), the predictor's accuracy in
// training and evaluation, and the router's parameters in checkpoints.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>

#include "compression/planner.h"
#include "compression/router_criterion.h"
#include "compression/weighted_route.h"
#include "data/synthetic_dataset.h"
#include "dist/communicator.h"
#include "tests/train/tiny_models.h"
#include "train/checkpoint.h"
#include "train/evaluate.h"
#include "train/gpt.h"
#include "train/plan_hooks.h"
#include "train/trainer.h"

using namespace winnow;
using namespace winnow::train;

namespace {

constexpr int64_t kVocab = 16, kContext = 16, kWidth = 16;

// A MoD stage "mod" of criterion router and strategy weighted_route at `layers`.
compression::StaticPlannerConfig mod_config(std::vector<int64_t> layers, double keep,
                                            const std::string& eval = "same",
                                            const std::string& weighting = "sigmoid") {
  compression::StaticPlannerConfig config;
  config.stages.push_back({"mod", {}});
  auto& c = config.stages.back().reduction;
  c.criterion = "router";
  c.strategy = "weighted_route";
  c.layers = std::move(layers);
  c.keep = {keep};
  c.eval = eval;
  c.router_weight = weighting;
  return config;
}

struct RoutedGpt {
  std::shared_ptr<GptImpl> model;
  std::shared_ptr<compression::StaticPlanner> planner;
};

RoutedGpt routed_gpt(int64_t depth, const compression::StaticPlannerConfig& config,
                     uint64_t seed = 3) {
  torch::manual_seed(seed);
  RoutedGpt r;
  r.model = tiny::small_gpt(kVocab, kContext, kWidth, depth);
  r.planner = std::make_shared<compression::StaticPlanner>(
      config, compression::ModelShape{depth, kWidth, 0, 0});
  r.model->attach_compression(r.planner->parameters());
  return r;
}

ModelOutput run(TransformerModel& model, const torch::Tensor& tokens,
                const compression::Planner& planner, bool training,
                compression::AuxMetrics* metrics = nullptr) {
  ForwardContext context;
  context.sample_ids = torch::arange(tokens.size(0), torch::kInt64);
  const compression::Plan plan = planner.plan(0, training);
  PlanHooks hooks(plan, 0, context.sample_ids);
  context.hook_for = [&hooks](int64_t layer) { return hooks(layer); };
  context.aux_losses = &hooks.aux_losses();
  auto output = model.forward(tokens, context);
  if (metrics) *metrics = hooks.metrics();
  return output;
}

torch::Tensor random_tokens(int64_t batch, uint64_t seed) {
  torch::manual_seed(seed);
  return torch::randint(kVocab, {batch, kContext}, torch::kInt64);
}

const compression::RouterCriterion& router_of(const compression::StaticPlanner& planner) {
  for (const auto& layer : planner.plan(0, true).layers)
    for (const auto& reduction : layer.reductions)
      return dynamic_cast<const compression::RouterCriterion&>(reduction.method->criterion());
  throw std::runtime_error("no routed layer in the plan");
}

}  // namespace

// A 1-block GPT routed at 25% equals the equations computed outside the model: r = wᵀx, the
// top-⌊0.25·16⌋ = 4 tokens of each sample (different per sample) run the block at their original
// positions, x ← x + w(r)·(block(x̃) − x̃), the other tokens ride the residual; both weightings.
TEST(RouterModel, RoutedBlockMatchesTheEquations) {
  for (const std::string weighting : {"sigmoid", "tanh"}) {
    auto r = routed_gpt(1, mod_config({0}, 0.25, "same", weighting));
    r.model->eval();
    torch::NoGradGuard no_grad;
    const auto tokens = random_tokens(2, 5);
    const auto logits = run(*r.model, tokens, *r.planner, /*training=*/false).logits;

    const auto& router = router_of(*r.planner);
    const auto x = r.model->tok_embed->forward(tokens) + r.model->pos_embed;  // [2, 16, C]
    const auto scores = torch::matmul(x, router.layer(0)->router->weight.t()).squeeze(-1);
    const auto top = std::get<1>(scores.topk(4, 1));  // [2, 4]
    const auto indices = std::get<0>(top.sort(1));    // ascending
    EXPECT_FALSE(torch::equal(indices[0], indices[1])) << "same winners: a weaker test";
    auto expected = x.clone();
    for (int64_t b = 0; b < 2; ++b) {
      compression::TokenState routed;
      routed.x = x[b].index_select(0, indices[b]).unsqueeze(0);  // [1, 4, C]
      routed.pos = indices[b].unsqueeze(0);                      // original positions
      const auto input = routed.x;
      r.model->blocks[0]->as<BlockImpl>()->forward(routed);
      const auto r_b = scores[b].index_select(0, indices[b]);  // [4]
      const auto w = weighting == "sigmoid" ? torch::sigmoid(r_b) : 0.2 * torch::tanh(r_b) + 1.0;
      expected[b].index_add_(0, indices[b], (routed.x[0] - input[0]) * w.unsqueeze(-1));
    }
    const auto expected_logits =
        torch::matmul(r.model->norm->forward(expected), r.model->tok_embed->weight.t());
    EXPECT_TRUE(torch::allclose(logits, expected_logits, 1e-5, 1e-5)) << weighting;
  }
}

// Training reaches the router (through w(r)) and the predictor (through its BCE), and reports the
// predictor's accuracy against the top-k membership.
TEST(RouterModel, TrainingGradientsReachRouterAndPredictor) {
  auto r = routed_gpt(2, mod_config({1}, 0.25));
  r.model->train();
  compression::AuxMetrics metrics;
  const auto tokens = random_tokens(3, 6);
  auto output = run(*r.model, tokens, *r.planner, /*training=*/true, &metrics);
  ASSERT_EQ(output.aux_losses.count("router_predictor"), 1u);
  auto loss = r.model->loss_sum(output, tokens) + output.aux_losses.at("router_predictor").sum;
  loss.backward();
  const auto named = r.model->named_parameters();
  for (const char* name : {"compress.mod.1.router.weight", "compress.mod.1.predictor.fc1.weight",
                           "compress.mod.1.predictor.fc2.bias"}) {
    ASSERT_NE(named.find(name), nullptr) << name;
    ASSERT_TRUE(named[name].grad().defined()) << name;
    EXPECT_GT(named[name].grad().abs().sum().item<double>(), 0.0) << name;
  }
  ASSERT_EQ(metrics.count("router_predictor_accuracy"), 1u);
  EXPECT_EQ(metrics.at("router_predictor_accuracy").count, 3.0 * kContext);
}

// The predictor's BCE does not touch the LM objective's gradients: the backbone's and the
// router's gradients are the same with and without it.
TEST(RouterModel, PredictorLossLeavesTheLanguageModelGradientsAlone) {
  auto grads = [](bool with_predictor_loss) {
    auto r = routed_gpt(2, mod_config({1}, 0.25));
    r.model->train();
    const auto tokens = random_tokens(2, 8);
    auto output = run(*r.model, tokens, *r.planner, true);
    auto loss = r.model->loss_sum(output, tokens);
    if (with_predictor_loss) loss = loss + output.aux_losses.at("router_predictor").sum;
    loss.backward();
    std::map<std::string, torch::Tensor> out;
    for (const auto& item : r.model->named_parameters())
      if (item.key().find(".predictor.") == std::string::npos && item.value().grad().defined())
        out[item.key()] = item.value().grad().clone();
    return out;
  };
  const auto with = grads(true), without = grads(false);
  ASSERT_EQ(with.size(), without.size());
  ASSERT_NE(with.count("compress.mod.1.router.weight"), 0u);
  for (const auto& [name, grad] : with) EXPECT_TRUE(torch::equal(grad, without.at(name))) << name;
}

// Causal routing in evaluation: perturbing the tokens after position p changes neither the
// routing decisions nor the logits at positions <= p. The top-k evaluation of the same model is
// not causal (the same perturbation moves earlier logits), so the test can fail.
TEST(RouterModel, CausalRoutingDependsOnlyOnEarlierTokens) {
  auto causal = routed_gpt(3, mod_config({1, 2}, 0.25, "causal"));
  auto topk = routed_gpt(3, mod_config({1, 2}, 0.25, "same"));  // same seed: same weights
  causal.model->eval();
  topk.model->eval();
  torch::NoGradGuard no_grad;
  const auto tokens = random_tokens(2, 9);
  const int64_t p = 7;
  auto perturbed = tokens.clone();
  perturbed.slice(1, p + 1) = (perturbed.slice(1, p + 1) + 5) % kVocab;
  // The predictor's log-odds at layer 1 on the block's input, the output of block 0 (dense,
  // causal): [B, T].
  const auto& router = router_of(*causal.planner);
  auto log_odds = [&](const torch::Tensor& t) {
    compression::TokenState state;
    state.x = causal.model->tok_embed->forward(t) + causal.model->pos_embed;
    causal.model->blocks[0]->as<BlockImpl>()->forward(state);
    compression::ScoreContext context;
    context.layer = 1;
    return router.routing_log_odds(state, context);
  };
  // Causality needs no trained predictor, but the test needs one that routes some tokens and not
  // others: centre the untrained one's log-odds on this input.
  router.layer(1)->predictor->fc2->bias.sub_(log_odds(tokens).median());

  compression::AuxMetrics metrics;
  const auto a = run(*causal.model, tokens, *causal.planner, false, &metrics).logits;
  const auto b = run(*causal.model, perturbed, *causal.planner, false).logits;
  EXPECT_TRUE(torch::allclose(a.slice(1, 0, p + 1), b.slice(1, 0, p + 1), 1e-6, 1e-6));
  EXPECT_FALSE(torch::allclose(a.slice(1, p + 1), b.slice(1, p + 1), 1e-6, 1e-6));
  ASSERT_EQ(metrics.count("causal_routed_fraction"), 1u);
  const double routed =
      metrics.at("causal_routed_fraction").sum / metrics.at("causal_routed_fraction").count;
  EXPECT_GT(routed, 0.0);
  EXPECT_LT(routed, 1.0);

  // The decisions at layer 1.
  const auto da = log_odds(tokens) > 0, db = log_odds(perturbed) > 0;
  EXPECT_TRUE(torch::equal(da.slice(1, 0, p + 1), db.slice(1, 0, p + 1)));
  EXPECT_TRUE(da.any().item<bool>() && da.logical_not().any().item<bool>());

  const auto ta = run(*topk.model, tokens, *topk.planner, false).logits;
  const auto tb = run(*topk.model, perturbed, *topk.planner, false).logits;
  EXPECT_FALSE(torch::allclose(ta.slice(1, 0, p + 1), tb.slice(1, 0, p + 1), 1e-6, 1e-6))
      << "top-k routing looked causal here: the perturbation is too weak to test anything";
}

// evaluate_model reports the predictor's accuracy against the top-k membership and the fraction
// of tokens the causal predictor routed.
TEST(RouterModel, EvaluationReportsThePredictorsAccuracy) {
  auto r = routed_gpt(2, mod_config({1}, 0.25, "causal"));
  data::SyntheticTokenOptions o;
  o.num_windows = 12;
  o.vocab_size = kVocab;
  o.context_length = kContext;
  auto data = data::make_synthetic_token_dataset(o);
  auto comm = dist::make_communicator("local");
  EvalOptions options;
  options.batch = 5;
  options.planner = r.planner.get();
  const auto result = evaluate_model(*r.model, *data, *comm, options);
  ASSERT_EQ(result.metrics.count("router_predictor_accuracy"), 1u);
  const double accuracy = result.metrics.at("router_predictor_accuracy");
  EXPECT_GE(accuracy, 0.0);
  EXPECT_LE(accuracy, 1.0);
  ASSERT_EQ(result.metrics.count("causal_routed_fraction"), 1u);
}

// The router's and the predictor's parameters are saved under stable names
// compress.<stage>.<layer>.{router,predictor}.* and load back bit for bit.
TEST(RouterModel, CheckpointRoundTripOfRouterAndPredictor) {
  const auto dir = std::filesystem::temp_directory_path() / "winnow_router_checkpoint";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "router.h5").string();
  auto source = routed_gpt(4, mod_config({1, 3}, 0.125), /*seed=*/3);
  write_checkpoint(path, *source.model, nullptr, CheckpointMeta{});
  auto target = routed_gpt(4, mod_config({1, 3}, 0.125), /*seed=*/4);
  read_checkpoint(path, *target.model, nullptr);
  const auto saved = source.model->named_parameters(), loaded = target.model->named_parameters();
  for (const char* name :
       {"compress.mod.1.router.weight", "compress.mod.3.router.weight",
        "compress.mod.1.predictor.fc1.weight", "compress.mod.1.predictor.fc1.bias",
        "compress.mod.3.predictor.fc2.weight", "compress.mod.3.predictor.fc2.bias"}) {
    ASSERT_NE(saved.find(name), nullptr) << name;
    EXPECT_TRUE(torch::equal(saved[name], loaded[name])) << name;
  }
  EXPECT_EQ(saved.find("compress.mod.1.router.bias"), nullptr);  // MoD's router has no bias
  std::filesystem::remove_all(dir);
}
