// End-to-end training on synthetic data (loss goes down for ViT and GPT), gradient accumulation
// equivalence, and global loss normalisation.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include "data/loader.h"
#include "data/synthetic_dataset.h"
#include "dist/communicator.h"
#include "tests/train/tiny_models.h"
#include "train/gpt.h"
#include "train/trainer.h"
#include "train/vit.h"

using namespace winnow;
using namespace winnow::train;

namespace {

using tiny::images;
using tiny::small_vit;

TrainerOptions quick(int64_t steps) {
  return tiny::quick_options(steps, 32, 5, 10);
}

double mean_loss(const std::vector<double>& v, size_t begin, size_t end) {
  double s = 0;
  for (size_t i = begin; i < end; ++i) s += v[i];
  return s / static_cast<double>(end - begin);
}

// Trains 50 steps of 32 samples; returns (mean loss of the first 5 steps, of the last 5).
std::pair<double, double> first_and_last_losses(const std::shared_ptr<TransformerModel>& model,
                                                const std::shared_ptr<data::Dataset>& data,
                                                double lr) {
  OptimizerOptions opt;
  opt.lr = lr;
  Trainer trainer(model, data, nullptr, dist::make_communicator("local"), quick(50), opt);
  data::LoaderOptions lo;
  lo.global_batch_size = 32;
  data::Loader loader(data, lo);
  std::vector<double> losses;
  for (int64_t step = 0; step < 50; ++step)
    losses.push_back(trainer.train_step(loader.next(), step).loss);
  return {mean_loss(losses, 0, 5), mean_loss(losses, 45, 50)};
}

}  // namespace

TEST(TrainerEndToEnd, TinyVitLossDecreases) {
  torch::manual_seed(0);
  const auto [first, last] = first_and_last_losses(small_vit(), images(2048), 2e-3);
  EXPECT_LT(last, 0.6 * first) << "first " << first << " last " << last;
}

TEST(TrainerEndToEnd, TinyGptLossDecreases) {
  torch::manual_seed(0);
  data::SyntheticTokenOptions to;
  to.num_windows = 1024;
  to.vocab_size = 32;
  to.context_length = 16;
  GptOptions go;
  go.vocab_size = 32;
  go.context = 16;
  go.dim = 32;
  go.depth = 2;
  go.heads = 2;
  const auto [first, last] = first_and_last_losses(std::make_shared<GptImpl>(go),
                                                   data::make_synthetic_token_dataset(to), 3e-3);
  EXPECT_LT(last, 0.75 * first) << "first " << first << " last " << last;
}

TEST(TrainerEndToEnd, RunEvaluatesAndWritesMetrics) {
  torch::manual_seed(0);
  auto comm = dist::make_communicator("local");
  auto dir = std::string(testing::TempDir()) + "/winnow_trainer_run";
  std::filesystem::create_directories(dir);
  std::filesystem::remove(dir + "/metrics.jsonl");
  auto t = quick(20);
  t.run_dir = dir;
  t.eval_every = 10;
  Trainer trainer(small_vit(), images(512), images(64), comm, t, OptimizerOptions{});
  auto summary = trainer.run();
  EXPECT_EQ(summary.steps, 20);
  EXPECT_EQ(summary.eval.samples, 64);
  EXPECT_GT(summary.training_flops, 0.0);
  std::ifstream in(dir + "/metrics.jsonl");
  std::string line;
  int steps = 0, evals = 0;
  while (std::getline(in, line)) {
    steps += line.find("\"event\":\"step\"") != std::string::npos;
    evals += line.find("\"event\":\"eval\"") != std::string::npos;
  }
  EXPECT_EQ(steps, 2);  // every log_every = 10 steps
  EXPECT_EQ(evals, 2);  // at step 10 and at the end
}

TEST(TrainerEndToEnd, AccumulationMatchesOneBigMicroBatch) {
  auto comm = dist::make_communicator("local");
  auto data = images(256);
  std::vector<std::shared_ptr<VisionTransformerImpl>> models;
  for (int64_t accumulation : {1, 4}) {
    torch::manual_seed(3);
    auto model = small_vit();
    auto t = quick(3);
    t.accumulation = accumulation;
    Trainer trainer(model, data, nullptr, comm, t, OptimizerOptions{});
    data::LoaderOptions lo;
    lo.global_batch_size = 32;
    data::Loader loader(data, lo);
    for (int64_t step = 0; step < 3; ++step) trainer.train_step(loader.next(), step);
    models.push_back(model);
  }
  auto a = models[0]->parameters(), b = models[1]->parameters();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::allclose(a[i], b[i], 1e-4, 1e-5)) << i;
}

TEST(TrainerEndToEnd, LossIsTheGlobalMean) {
  // The step loss equals the plain mean cross-entropy of the batch.
  torch::manual_seed(5);
  auto comm = dist::make_communicator("local");
  auto data = images(64);
  auto model = small_vit();
  data::LoaderOptions lo;
  lo.global_batch_size = 16;
  data::Loader loader(data, lo);
  auto batch = loader.next();
  double expected;
  {
    torch::NoGradGuard g;
    auto out = model->forward(batch.inputs, {});
    expected = torch::nn::functional::cross_entropy(out.logits, batch.targets).item<double>();
  }
  Trainer trainer(model, data, nullptr, comm, quick(1), OptimizerOptions{});
  EXPECT_NEAR(trainer.train_step(batch, 0).loss, expected, 1e-5);
}
