// Distillation from a frozen teacher: DynamicViT's loss (reference fixture), winnow's per-sample
// token mean, comparison at original positions, and the trainer's use of it.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "dist/communicator.h"
#include "tests/compression/fixture.h"
#include "tests/train/tiny_models.h"
#include "train/distillation.h"
#include "train/trainer.h"

using namespace winnow;
using namespace winnow::train;
using compression::testing::entry;
using compression::testing::load_fixture;

namespace {

void expect_close(const torch::Tensor& actual, const torch::Tensor& expected, const char* what) {
  ASSERT_EQ(actual.sizes(), expected.sizes()) << what;
  const double error =
      (actual.to(torch::kFloat64) - expected.to(torch::kFloat64)).abs().max().item<double>();
  EXPECT_LT(error, 1e-5) << what;
}

}  // namespace

// losses.py DistillDiffPruningLoss_dynamic (mse_token=True, distill_weight 0.5, clf and ratio
// weights 0): 0.5 · KL_batchmean + 0.5 · MSE over the kept tokens; value and gradients to the
// student's logits and tokens. Every sample keeps 7 of 12 tokens, where the two means agree.
TEST(Distillation, MatchesDynamicViTsLoss) {
  const auto f = load_fixture("dynamicvit_distillation");
  const auto logits = entry(f, "student_logits").clone().requires_grad_(true);  // [B, K]
  const auto tokens = entry(f, "student_tokens").clone().requires_grad_(true);  // [B, N, C]
  const int64_t batch = logits.size(0), n = tokens.size(1);
  const double weight = entry(f, "distill_weight").item<double>();
  // The reference's features exclude the CLS token; ours carry it as the protected token 0.
  compression::TokenState student;
  student.x = torch::cat({torch::zeros({batch, 1, tokens.size(2)}, tokens.options()), tokens}, 1);
  student.keep = torch::cat({torch::ones({batch, 1}, torch::kFloat64), entry(f, "mask")}, 1);
  student.protected_count = 1;
  const auto teacher_tokens = torch::cat(
      {torch::randn({batch, 1, tokens.size(2)}, torch::kFloat64), entry(f, "teacher_tokens")}, 1);
  const auto loss = (weight * logit_distillation_sum(logits, entry(f, "teacher_logits")) +
                     weight * token_distillation_sum(student, teacher_tokens)) /
                    static_cast<double>(batch);
  expect_close(loss, entry(f, "loss"), "loss");
  loss.backward();
  expect_close(logits.grad(), entry(f, "grad_logits"), "dL/dlogits");
  expect_close(tokens.grad(), entry(f, "grad_tokens"), "dL/dtokens");
  EXPECT_EQ(n, 12);
}

// Samples keeping different counts: each sample's mean over its own kept tokens, summed over
// samples (DynamicViT means over all kept tokens of the local batch, which depends on how the
// batch is split over GPUs); a sample that kept nothing adds 0.
TEST(Distillation, TokenLossIsASumOfPerSampleMeans) {
  compression::TokenState student;
  student.x = torch::zeros({3, 4, 2}, torch::kFloat64);
  student.keep = torch::tensor({{1.0, 1.0, 0.0, 0.0}, {1.0, 1.0, 1.0, 1.0}, {0.0, 0.0, 0.0, 0.0}},
                               torch::kFloat64);
  auto teacher = torch::zeros({3, 4, 2}, torch::kFloat64);
  teacher[0][0] = torch::tensor({1.0, 1.0});  // kept: squared error 1
  teacher[0][2] = torch::tensor({9.0, 9.0});  // dropped: ignored
  teacher[1][3] = torch::tensor({2.0, 0.0});  // kept: mean over channels 2
  teacher[2][1] = torch::tensor({5.0, 5.0});  // nothing kept: 0
  // sample 0: (1 + 0) / 2; sample 1: (0 + 0 + 0 + 2) / 4; sample 2: 0.
  EXPECT_NEAR(token_distillation_sum(student, teacher).item<double>(), 0.5 + 0.5, 1e-12);
}

// A pruned student is compared with the teacher's tokens at their original positions.
TEST(Distillation, PrunedTokensAreComparedAtTheirOriginalPositions) {
  compression::TokenState student;
  student.x = torch::tensor({{{0.0}, {3.0}, {7.0}}}, torch::kFloat64);  // CLS, kept 3, kept 7
  student.pos = torch::tensor({{0, 3, 7}}, torch::kInt64);
  student.protected_count = 1;
  auto teacher = torch::arange(9, torch::kFloat64).reshape({1, 9, 1});  // token i holds i
  EXPECT_NEAR(token_distillation_sum(student, teacher).item<double>(), 0.0, 1e-12);
  student.x[0][2][0] = 5.0;  // (5 − 7)² / 2 kept tokens
  EXPECT_NEAR(token_distillation_sum(student, teacher).item<double>(), 2.0, 1e-12);
}

// Logits KL: zero for equal logits; for sequences the mean over positions of each sample.
TEST(Distillation, LogitKlPerSampleAndPerPosition) {
  const auto a = torch::randn({2, 5}, torch::kFloat64);
  EXPECT_NEAR(logit_distillation_sum(a, a).item<double>(), 0.0, 1e-12);
  const auto s = torch::randn({2, 3, 4}, torch::kFloat64),
             t = torch::randn({2, 3, 4}, torch::kFloat64);
  double expected = 0.0;
  for (int64_t b = 0; b < 2; ++b) {
    double sample = 0.0;
    for (int64_t i = 0; i < 3; ++i)
      sample += logit_distillation_sum(s[b][i].unsqueeze(0), t[b][i].unsqueeze(0)).item<double>();
    expected += sample / 3;
  }
  EXPECT_NEAR(logit_distillation_sum(s, t).item<double>(), expected, 1e-12);
  EXPECT_THROW(logit_distillation_sum(a, torch::randn({2, 4}, torch::kFloat64)), c10::Error);
}

// In the trainer: the losses are logged as aux losses, the teacher never changes and never
// trains, and its forward FLOPs are counted once (no backward) in the training FLOPs.
TEST(Distillation, TrainerAddsTheLossesAndCountsTheTeacher) {
  torch::manual_seed(3);
  auto student = tiny::small_vit();
  torch::manual_seed(4);
  auto teacher = tiny::small_vit();
  {
    torch::NoGradGuard no_grad;
    teacher->head->weight.normal_();  // heads start at zero: equal logits would give KL 0
  }
  std::map<std::string, torch::Tensor> before;
  for (const auto& item : teacher->named_parameters()) before[item.key()] = item.value().clone();
  DistillationOptions options;
  options.teacher = "in memory";
  auto distillation = std::make_shared<Distillation>(teacher, options);
  Trainer trainer(student, tiny::images(64), nullptr, dist::make_communicator("local"),
                  tiny::quick_options(2, 16, 1, 1), OptimizerOptions{});
  trainer.set_distillation(distillation);
  data::Batch batch;
  batch.inputs = torch::randn({16, 1, 8, 8});
  batch.targets = torch::randint(0, 4, {16}, torch::kInt64);
  batch.sample_ids = torch::arange(16, torch::kInt64);
  batch.global_batch_size = 16;
  const auto r = trainer.train_step(batch, 0);
  ASSERT_EQ(r.aux_losses.count("distill_logits"), 1u);
  ASSERT_EQ(r.aux_losses.count("distill_tokens"), 1u);
  EXPECT_GT(r.aux_losses.at("distill_logits"), 0.0);
  EXPECT_GT(r.aux_losses.at("distill_tokens"), 0.0);
  EXPECT_DOUBLE_EQ(r.teacher_flops, r.forward_flops);  // the same dense shape
  EXPECT_DOUBLE_EQ(r.training_flops(), 4.0 * r.forward_flops);
  for (const auto& item : teacher->named_parameters()) {
    EXPECT_TRUE(torch::equal(item.value(), before[item.key()])) << item.key();
    EXPECT_FALSE(item.value().requires_grad()) << item.key();
  }
}

// Bad weights are refused before any step.
TEST(Distillation, OptionsAreChecked) {
  DistillationOptions options;
  options.teacher = "t.h5";
  options.logits_weight = -1;
  EXPECT_THROW(options.validate(), c10::Error);
  options.logits_weight = 0;
  options.tokens_weight = 0;
  EXPECT_THROW(options.validate(), c10::Error);
}
