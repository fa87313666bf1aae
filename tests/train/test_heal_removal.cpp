// The co-scheduler's heal phase removes its pruned blocks from the model and the optimizer: the
// smaller model trains exactly as the gated one would (same kept weights, moments and logits),
// and a run resumed across the heal start continues bit for bit.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include "compression/co_scheduler.h"
#include "dist/communicator.h"
#include "tests/train/tiny_models.h"
#include "train/checkpoint.h"
#include "train/layer_removal.h"
#include "train/optimizer.h"
#include "train/plan_hooks.h"
#include "train/trainer.h"

namespace winnow::train {
namespace {
namespace fs = std::filesystem;

const torch::optim::AdamWParamState* state_of(torch::optim::AdamW& optimizer,
                                              const torch::Tensor& p) {
  const auto it = optimizer.state().find(optimizer_state_key(p));
  if (it == optimizer.state().end()) return nullptr;
  return &static_cast<const torch::optim::AdamWParamState&>(*it->second);
}

// A co-scheduled small_vit(4) whose structure is fixed at capacities 1, 0, 0.5, 0 (dense warmup
// up to the heal start, so no decision moves them): blocks 1 and 3 are pruned, block 2 keeps
// half of its tokens (cls_attention, drop mode). The heal phase is the last `heal_steps` steps.
struct HealRun {
  std::shared_ptr<VisionTransformerImpl> model;
  std::shared_ptr<compression::CoScheduler> planner;
  std::shared_ptr<compression::TokenEvolutionMonitor> monitor;
};
compression::CoSchedulerConfig heal_config(int64_t steps, int64_t heal_steps, bool remove) {
  compression::CoSchedulerConfig c;
  c.mode = "joint";
  c.budget.target = 0.5;
  c.budget.warmup_steps = steps - heal_steps;
  c.budget.heal_steps = heal_steps;
  c.budget.total_steps = steps;
  c.probe_every = 2;
  c.allocator.grid = 2;
  c.allocator.min_protected_level = 1;
  c.allocator.protected_layers = {0};
  c.capacities = {1.0, 0.0, 0.5, 0.0};
  c.heal_remove = remove;
  return c;
}
HealRun heal_run(int64_t steps, int64_t heal_steps, bool remove) {
  HealRun run;
  run.model = tiny::small_vit(4);
  run.planner = std::make_shared<compression::CoScheduler>(heal_config(steps, heal_steps, remove),
                                                           tiny::small_vit_shape(4));
  run.model->attach_compression(run.planner->parameters());
  run.monitor = std::make_shared<compression::TokenEvolutionMonitor>(4);
  return run;
}

TrainerOptions heal_options(int64_t steps) {
  TrainerOptions t = tiny::quick_options(steps, /*global_batch=*/16, /*warmup=*/2, /*log_every=*/1);
  t.prefetch = 0;
  t.inference_rounds = 0;
  t.checkpoint.minutes = 0;
  return t;
}

std::unique_ptr<Trainer> trainer_for(const HealRun& run, const TrainerOptions& options,
                                     std::shared_ptr<data::Dataset> eval = nullptr) {
  auto trainer =
      std::make_unique<Trainer>(run.model, tiny::images(256), std::move(eval),
                                dist::make_communicator("local"), options, OptimizerOptions{});
  trainer->set_planner(run.planner);
  trainer->set_monitor(run.monitor);
  trainer->set_model_factory([](int64_t depth) { return tiny::small_vit(depth); });
  return trainer;
}

torch::Tensor eval_logits(Trainer& trainer, const torch::Tensor& images) {
  torch::NoGradGuard no_grad;
  trainer.model().eval();
  const auto plan = trainer.planner()->plan(0, /*training=*/false);
  ForwardContext context;
  context.sample_ids = torch::arange(images.size(0));
  PlanHooks hooks(plan, 0, context.sample_ids);
  if (hooks.any()) context.hook_for = [&hooks](int64_t layer) { return hooks(layer); };
  return trainer.model().forward(images, context).logits;  // [B, classes]
}

std::string fresh_dir(const std::string& name) {
  const std::string dir = std::string(testing::TempDir()) + "/winnow_heal_" + name;
  fs::remove_all(dir);
  return dir;
}

// One twin of a `steps`-step run that heals its last `heal` steps: removing the pruned blocks
// or keeping them gated, trained from seed 5 with `options` into the fresh directory
// `prefix` + "removed" or "gated".
struct TrainedTwin {
  std::unique_ptr<Trainer> trainer;
  TrainSummary summary;
};
TrainedTwin train_twin(int64_t steps, int64_t heal, bool remove, const std::string& prefix,
                       TrainerOptions options, std::shared_ptr<data::Dataset> eval = nullptr) {
  torch::manual_seed(5);
  auto run = heal_run(steps, heal, remove);
  options.run_dir = fresh_dir(prefix + (remove ? "removed" : "gated"));
  fs::create_directories(options.run_dir);
  TrainedTwin twin;
  twin.trainer = trainer_for(run, options, std::move(eval));
  twin.summary = twin.trainer->run();
  return twin;
}

// The step lines of a run's metrics log without their timings.
std::vector<std::string> step_lines(const std::string& dir) {
  std::ifstream in(dir + "/metrics.jsonl");
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line)) {
    if (line.find("\"event\":\"step\"") == std::string::npos) continue;
    std::string kept = line.substr(0, line.find(",\"lr\""));
    const auto tail = line.find(",\"tokens_per_layer\"");
    if (tail != std::string::npos) kept += line.substr(tail, line.find(",\"elapsed") - tail);
    out.push_back(kept);
  }
  return out;
}

}  // namespace

TEST(LayerRemoval, CarriedOptimizerStateIsTheKeptParametersMoments) {
  torch::manual_seed(0);
  auto source = tiny::small_vit(3);
  auto optimizer = make_adamw(*source, OptimizerOptions{});
  source->forward(torch::randn({4, 1, 8, 8}), ForwardContext{}).logits.sum().backward();
  optimizer->step();
  auto target = tiny::small_vit(2);
  copy_kept_blocks(*source, *target, {0, 2});
  auto carried = make_adamw(*target, OptimizerOptions{});
  carry_optimizer_state(*source, *optimizer, *target, *carried, {0, 2});
  const auto from = source->named_parameters();
  EXPECT_EQ(carried->state().size(), target->parameters().size());
  for (const auto& item : target->named_parameters()) {
    const auto* a = state_of(*carried, item.value());
    const auto* b = state_of(*optimizer, from[kept_block_source(item.key(), {0, 2})]);
    ASSERT_TRUE(a != nullptr && b != nullptr) << item.key();
    EXPECT_EQ(a->step(), b->step()) << item.key();
    EXPECT_TRUE(torch::equal(a->exp_avg(), b->exp_avg())) << item.key();
    EXPECT_TRUE(torch::equal(a->exp_avg_sq(), b->exp_avg_sq())) << item.key();
  }
  EXPECT_EQ(kept_block_source("blocks.1.attn.qkv.weight", {0, 2}), "blocks.2.attn.qkv.weight");
  EXPECT_EQ(kept_block_source("compress.cs.1.w", {0, 2}), "compress.cs.2.w");
  EXPECT_EQ(kept_block_source("head.weight", {0, 2}), "head.weight");
  EXPECT_EQ(kept_layers(4, {1, 3}), (std::vector<int64_t>{0, 2}));
  EXPECT_THROW(kept_layers(2, {0, 1}), c10::Error);
}

// Trained side by side for 6 steps, heal from step 3: the run that removes blocks 1 and 3 and the
// run that keeps them skipped (and untrained: warmup runs at the configured capacities) hold the
// same kept weights and moments, log the same losses and give the same logits; the smaller run's
// optimizer holds exactly its parameters.
TEST(HealRemoval, SmallerModelTrainsExactlyAsTheGatedOne) {
  const int64_t steps = 6, heal = 3;
  auto gated = train_twin(steps, heal, /*remove=*/false, "", heal_options(steps)).trainer;
  auto removed = train_twin(steps, heal, /*remove=*/true, "", heal_options(steps)).trainer;
  EXPECT_EQ(gated->model().depth(), 4);
  ASSERT_EQ(removed->model().depth(), 2);
  EXPECT_EQ(removed->removed_layers(), (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(removed->kept_layers(), (std::vector<int64_t>{0, 2}));
  EXPECT_EQ(removed->planner()->capacities(), (std::vector<double>{1.0, 0.5}));
  EXPECT_EQ(removed->monitor()->depth(), 2);
  EXPECT_LT(parameter_count(removed->model()), parameter_count(gated->model()));

  const auto gated_parameters = gated->model().named_parameters();
  const std::vector<int64_t> kept = {0, 2};
  EXPECT_EQ(removed->optimizer().state().size(), removed->model().parameters().size());
  for (const auto& item : removed->model().named_parameters()) {
    const auto& source = gated_parameters[kept_block_source(item.key(), kept)];
    EXPECT_TRUE(torch::equal(item.value(), source)) << item.key();
    const auto* a = state_of(removed->optimizer(), item.value());
    const auto* b = state_of(gated->optimizer(), source);
    ASSERT_TRUE(a != nullptr && b != nullptr) << item.key();
    EXPECT_EQ(a->step(), steps) << item.key();
    EXPECT_EQ(a->step(), b->step()) << item.key();
    EXPECT_TRUE(torch::equal(a->exp_avg(), b->exp_avg())) << item.key();
    EXPECT_TRUE(torch::equal(a->exp_avg_sq(), b->exp_avg_sq())) << item.key();
  }
  const auto images = torch::randn({6, 1, 8, 8});
  EXPECT_TRUE(torch::equal(eval_logits(*gated, images), eval_logits(*removed, images)));
  const std::string temp = std::string(testing::TempDir()) + "/winnow_heal_";
  ASSERT_EQ(step_lines(temp + "gated").size(), static_cast<size_t>(steps));
  const auto losses = [](const std::vector<std::string>& lines) {
    std::vector<std::string> out;
    for (const auto& line : lines)
      out.push_back(line.substr(0, line.find(",\"tokens_per_layer\"")));
    return out;
  };
  EXPECT_EQ(losses(step_lines(temp + "gated")), losses(step_lines(temp + "removed")));
  std::ifstream log(temp + "removed/metrics.jsonl");
  const std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("\"event\":\"remove_layers\",\"step\":3,\"removed\":[1,3]"),
            std::string::npos);
}

// A healed run reports its FLOPs ratio and its inference speedup against the model the user
// configured (4 blocks), not against the smaller model it became: the same FLOPs ratio as the
// gated twin, and a dense reference of 4 blocks (the ratio is 4 blocks' FLOPs over 1 + 0.5 of a
// block's plus the embedding and head, so well above 1; the smaller model against itself is 1).
TEST(HealRemoval, ReportsAgainstTheConfiguredModel) {
  const int64_t steps = 4, heal = 2;
  TrainerOptions options = heal_options(steps);
  options.inference_rounds = 1;
  options.inference_batch = 8;
  const auto eval = tiny::images(32, 1);
  const TrainSummary gated = train_twin(steps, heal, false, "report_", options, eval).summary;
  const TrainSummary removed = train_twin(steps, heal, true, "report_", options, eval).summary;
  ASSERT_GT(removed.eval.samples, 0);
  EXPECT_GT(removed.eval.flops_speedup(), 1.5);
  EXPECT_DOUBLE_EQ(removed.eval.flops_speedup(), gated.eval.flops_speedup());
  ASSERT_TRUE(removed.inference.measured());
  EXPECT_EQ(removed.inference.dense_depth, 4);
  EXPECT_EQ(removed.inference.plan_layers.tokens.size(), 2u);
  EXPECT_EQ(removed.inference.dense_layers.tokens.size(), 4u);
  EXPECT_EQ(gated.inference.dense_depth, 4);
  const std::string line = inference_speed_line(removed.inference, TaskUnits{}, 2.0);
  EXPECT_NE(line.find("vs dense with 4 blocks"), std::string::npos) << line;
  EXPECT_EQ(inference_speed_line(gated.inference, TaskUnits{}, 2.0).find("with 4 blocks"),
            std::string::npos);
}

// Checkpoints after step 4 of 8: before the heal start (step 5) and after it (step 3). The resumed
// run rebuilds the smaller model first (or removes at step 5 itself) and ends bit-identical to the
// uninterrupted one.
TEST(HealRemoval, ResumeAcrossTheHealStartIsBitIdentical) {
  const int64_t steps = 8, k = 4;
  for (const int64_t heal : {3, 5}) {
    const std::string prefix = "resume" + std::to_string(heal) + "_";
    const auto run = [&](const std::string& name, int64_t stop_at, const std::string& resume) {
      torch::manual_seed(resume.empty() ? 0 : 99);  // a resumed run must not depend on its init
      auto options = heal_options(steps);
      options.run_dir = fresh_dir(prefix + name);
      options.checkpoint.dir = options.run_dir + "/checkpoints";
      options.checkpoint.every = 0;
      options.stop_at = stop_at;
      if (!resume.empty()) fs::copy(resume, options.run_dir, fs::copy_options::recursive);
      fs::create_directories(options.run_dir);
      auto trainer = trainer_for(heal_run(steps, heal, /*remove=*/true), options);
      if (!resume.empty()) trainer->resume(options.run_dir);
      const TrainSummary summary = trainer->run();
      return std::make_pair(std::move(trainer), summary);
    };
    auto [straight, straight_summary] = run("straight", 0, "");
    auto [first, first_summary] = run("first", k, "");
    ASSERT_EQ(first_summary.last_step, k);
    const auto saved = read_checkpoint_meta(first_summary.last_checkpoint);
    const std::vector<int64_t> expected_removed =
        heal == 5 ? std::vector<int64_t>{1, 3} : std::vector<int64_t>{};
    EXPECT_EQ(saved.removed_layers, expected_removed) << "heal " << heal;
    auto [resumed, resumed_summary] =
        run("resumed", 0, std::string(testing::TempDir()) + "/winnow_heal_" + prefix + "first");
    EXPECT_EQ(resumed->start_step(), k);
    EXPECT_EQ(resumed_summary.steps, steps - k);
    ASSERT_EQ(resumed->model().depth(), 2);
    auto a = straight->model().named_parameters(), b = resumed->model().named_parameters();
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i].key(), b[i].key());
      EXPECT_TRUE(torch::equal(a[i].value(), b[i].value())) << a[i].key();
      const auto* sa = state_of(straight->optimizer(), a[i].value());
      const auto* sb = state_of(resumed->optimizer(), b[i].value());
      ASSERT_TRUE(sa != nullptr && sb != nullptr) << a[i].key();
      EXPECT_EQ(sa->step(), sb->step());
      EXPECT_TRUE(torch::equal(sa->exp_avg(), sb->exp_avg())) << a[i].key();
      EXPECT_TRUE(torch::equal(sa->exp_avg_sq(), sb->exp_avg_sq())) << a[i].key();
    }
    const auto sa = straight->compression_state(), sb = resumed->compression_state();
    ASSERT_EQ(sa.size(), sb.size());
    for (const auto& [name, tensor] : sa) EXPECT_TRUE(torch::equal(tensor, sb.at(name))) << name;
    const std::string temp = std::string(testing::TempDir()) + "/winnow_heal_" + prefix;
    const auto straight_lines = step_lines(temp + "straight");
    ASSERT_EQ(straight_lines.size(), static_cast<size_t>(steps));
    EXPECT_EQ(straight_lines, step_lines(temp + "resumed"));
  }
}

}  // namespace winnow::train
