// Inference throughput measurement: the alternation of rounds, the statistics of the rounds, the
// per-layer tokens, FLOPs and kept positions under a plan, and where the results are written.
// Nothing here asserts a speed: timing goals belong in benchmarks.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "compression/flops.h"
#include "compression/planner.h"
#include "dist/communicator.h"
#include "tests/train/tiny_models.h"
#include "train/inference_speed.h"
#include "train/metrics_lines.h"
#include "train/trainer.h"

using namespace winnow;
using namespace winnow::train;

TEST(InferenceSpeed, RoundsAlternateAfterADiscardedWarmUp) {
  std::vector<std::string> calls;
  double clock = 0.0;
  auto pass = [&](const std::string& name) {
    return [&, name](bool timed) {
      calls.push_back(name + (timed ? "" : "(warm-up)"));
      clock += 1.0;
      return clock;  // the seconds a pass "took": its place in the sequence
    };
  };
  const auto seconds = time_alternating({pass("plan"), pass("dense")}, 3);
  EXPECT_EQ(calls, (std::vector<std::string>{"plan(warm-up)", "dense(warm-up)", "plan", "dense",
                                             "dense", "plan", "plan", "dense"}));
  ASSERT_EQ(seconds.size(), 2u);
  EXPECT_EQ(seconds[0], (std::vector<double>{3, 6, 7}));  // the warm-up's 1 and 2 are dropped
  EXPECT_EQ(seconds[1], (std::vector<double>{4, 5, 8}));
  EXPECT_THROW(time_alternating({pass("plan")}, 0), c10::Error);
}

TEST(InferenceSpeed, ThroughputIsTheMedianAndRangeOfTheRounds) {
  const auto odd = throughput_of({0.5, 0.25, 1.0}, 100.0);
  EXPECT_EQ(odd.samples_per_second, (std::vector<double>{200, 400, 100}));
  EXPECT_DOUBLE_EQ(odd.median, 200.0);
  EXPECT_DOUBLE_EQ(odd.min, 100.0);
  EXPECT_DOUBLE_EQ(odd.max, 400.0);
  EXPECT_DOUBLE_EQ(throughput_of({1.0, 0.5, 0.25, 0.125}, 10.0).median, 30.0);  // (20 + 40) / 2
  EXPECT_DOUBLE_EQ(median_of({}), 0.0);
}

TEST(InferenceSpeed, HalvingTheTokensIsMeasuredPerLayer) {
  torch::manual_seed(0);
  auto model = tiny::small_vit(2, 32);
  auto data = tiny::images(40);
  auto planner = tiny::random_prune_at_layer_one(2, 0.5);
  auto comm = dist::make_communicator("local");
  InferenceSpeedOptions options;
  options.batch = 12;
  options.rounds = 3;
  options.planner = planner.get();
  const auto speed = measure_inference_speed(*model, *data, *comm, options);

  ASSERT_TRUE(speed.measured());
  EXPECT_EQ(speed.batch, 12);
  EXPECT_EQ(speed.rounds, 3);
  EXPECT_EQ(speed.plan.samples_per_second.size(), 3u);
  EXPECT_EQ(speed.dense.samples_per_second.size(), 3u);
  for (const auto* rounds : {&speed.plan, &speed.dense}) {
    EXPECT_GT(rounds->min, 0.0);
    EXPECT_LE(rounds->min, rounds->median);
    EXPECT_LE(rounds->median, rounds->max);
  }
  EXPECT_TRUE(std::isfinite(speed.speedup) && speed.speedup > 0.0);

  // Layer 0 sees all 17 tokens; layer 1 the CLS token and 8 of the 16 patches.
  EXPECT_EQ(speed.plan_layers.tokens, (std::vector<double>{17, 9}));
  EXPECT_EQ(speed.dense_layers.tokens, (std::vector<double>{17, 17}));
  const compression::BlockShape shape{32, 128};
  EXPECT_DOUBLE_EQ(speed.plan_layers.attention_core_flops[1],
                   compression::attention_core_forward_flops(shape, 9, 9));
  EXPECT_DOUBLE_EQ(speed.dense_layers.attention_core_flops[1],
                   compression::attention_core_forward_flops(shape, 17, 17));
  EXPECT_DOUBLE_EQ(
      speed.plan_layers.attention_core_flops[1] / speed.dense_layers.attention_core_flops[1],
      81.0 / 289.0);  // (m/n)²
  EXPECT_DOUBLE_EQ(speed.plan_layers.attention_flops[1],
                   compression::attention_forward_flops(shape, 9, 9));
  EXPECT_DOUBLE_EQ(speed.plan_layers.attention_flops[0], speed.dense_layers.attention_flops[0]);
  for (const auto* layers : {&speed.plan_layers, &speed.dense_layers}) {
    ASSERT_EQ(layers->attention_seconds.size(), 2u);
    for (size_t l = 0; l < 2; ++l) {
      EXPECT_GT(layers->attention_core_seconds[l], 0.0) << l;
      EXPECT_GE(layers->attention_seconds[l], layers->attention_core_seconds[l]) << l;
    }
  }

  // Kept positions: every sample keeps all 17 at layer 0, and the CLS token and 8 patches at 1.
  EXPECT_EQ(speed.positions, 17);
  EXPECT_EQ(speed.patch_grid, (std::pair<int64_t, int64_t>{4, 4}));
  ASSERT_EQ(speed.kept_position_fraction.size(), 34u);
  const auto begin = speed.kept_position_fraction.begin();
  EXPECT_EQ(std::vector<double>(begin, begin + 17), std::vector<double>(17, 1.0));
  EXPECT_DOUBLE_EQ(speed.kept_position_fraction[17], 1.0);  // CLS
  EXPECT_NEAR(std::accumulate(begin + 17, begin + 34, 0.0), 9.0, 1e-12);
}

TEST(InferenceSpeed, ZeroRoundsMeasuresNothing) {
  auto model = tiny::small_vit();
  auto comm = dist::make_communicator("local");
  InferenceSpeedOptions options;
  options.rounds = 0;
  EXPECT_FALSE(measure_inference_speed(*model, *tiny::images(8), *comm, options).measured());
  options.rounds = -1;
  EXPECT_THROW(options.validate(), c10::Error);
}

TEST(InferenceSpeed, EvalLineGivesThroughputRangeAndRatios) {
  InferenceSpeed speed;
  speed.batch = 64;
  speed.rounds = 5;
  speed.plan.median = 1234;
  speed.plan.min = 1200;
  speed.plan.max = 1250;
  speed.dense.median = 800;
  speed.dense.min = 790;
  speed.dense.max = 810;
  speed.speedup = 1.54;
  EXPECT_EQ(inference_speed_line(speed, {"img/s", 1, "images", "accuracy", false}, 1.67),
            "inference: 1234 img/s (median of 5 rounds of 64 samples, range 1200-1250) vs dense "
            "800 img/s (range 790-810): 1.54x (FLOPs 1.67x)");
  // Text models count tokens: 16 per sample.
  EXPECT_EQ(
      inference_speed_line(speed, {"tok/s", 16, "sequences", "next_token_accuracy", true}, 1.0),
      "inference: 19744 tok/s (median of 5 rounds of 64 samples, range 19200-20000) vs "
      "dense 12800 tok/s (range 12640-12960): 1.54x (FLOPs 1.00x)");
  // Without an evaluation there is no FLOPs ratio.
  EXPECT_EQ(inference_speed_line(speed, {"img/s", 1, "images", "accuracy", false},
                                 std::numeric_limits<double>::quiet_NaN()),
            "inference: 1234 img/s (median of 5 rounds of 64 samples, range 1200-1250) vs dense "
            "800 img/s (range 790-810): 1.54x");
  speed.plan.median = speed.plan.min = speed.plan.max = 0.5;  // slow: 3 significant digits
  EXPECT_EQ(
      inference_speed_line(speed, {"img/s", 1, "images", "accuracy", false}, 1.0).substr(0, 21),
      "inference: 0.5 img/s ");
}

TEST(InferenceSpeed, RunMeasuresAfterTrainingAndWritesTheFields) {
  torch::manual_seed(0);
  auto dir = std::string(testing::TempDir()) + "/winnow_inference_run";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  auto options = tiny::quick_options(4, 16, 1, 2);
  options.run_dir = dir;
  options.inference_batch = 8;
  options.inference_rounds = 2;
  auto model = tiny::small_vit(2, 32);
  Trainer trainer(model, tiny::images(64), tiny::images(16, 1), dist::make_communicator("local"),
                  options, OptimizerOptions{});
  trainer.set_planner(tiny::random_prune_at_layer_one(2, 0.5));
  const auto summary = trainer.run();
  ASSERT_TRUE(summary.inference.measured());
  EXPECT_EQ(summary.inference.rounds, 2);
  EXPECT_GT(summary.peak_activation_bytes, 0);
  EXPECT_GT(summary.eval.flops_speedup(), 1.0);  // the plan halves layer 1's tokens

  JsonLine line;
  add_run_measurements(line, summary);
  const std::string json = line.str();
  for (const char* key :
       {"\"peak_activation_bytes\":", "\"inference_flops_speedup\":",
        "\"inference_samples_per_second\":", "\"dense_inference_samples_per_second\":",
        "\"inference_speedup\":", "\"kept_tokens_per_layer\":[17,9]",
        "\"attention_flops_per_layer\":", "\"dense_attention_core_seconds_per_layer\":",
        "\"kept_position_shape\":[2,17]", "\"patch_grid\":[4,4]"})
    EXPECT_NE(json.find(key), std::string::npos) << key << " in " << json;

  std::ifstream in(dir + "/metrics.jsonl");
  std::string text, row;
  int inference_lines = 0, steps_with_peak = 0;
  while (std::getline(in, row)) {
    inference_lines += row.find("\"event\":\"inference\"") != std::string::npos;
    steps_with_peak += row.find("\"event\":\"step\"") != std::string::npos &&
                       row.find("\"peak_activation_bytes\":") != std::string::npos;
  }
  EXPECT_EQ(inference_lines, 1);
  EXPECT_EQ(steps_with_peak, 2);  // every log_every = 2 steps

  // Stopped early (train.stop_at): no measurement.
  auto stopped = options;
  stopped.stop_at = 2;
  stopped.run_dir.clear();
  stopped.checkpoint.dir.clear();
  Trainer early(tiny::small_vit(2, 32), tiny::images(64), tiny::images(16, 1),
                dist::make_communicator("local"), stopped, OptimizerOptions{});
  EXPECT_FALSE(early.run().inference.measured());
}
