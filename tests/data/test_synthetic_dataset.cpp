// Tests the synthetic datasets: determinism, shapes, and that both are learnable.
#include "data/synthetic_dataset.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

namespace winnow::data {
namespace {

TEST(SyntheticImages, DeterministicPerSampleId) {
  SyntheticImageOptions options;
  options.size = 100;
  options.channels = 3;
  options.height = 8;
  options.width = 6;
  options.num_classes = 5;
  options.seed = 9;
  const SyntheticImageDataset a(options), b(options);
  const Batch x = a.fetch({3, 50, 7});
  const Batch y = b.fetch({50});
  EXPECT_EQ(x.inputs.sizes(), (std::vector<int64_t>{3, 3, 8, 6}));
  EXPECT_EQ(x.inputs.scalar_type(), torch::kFloat32);
  EXPECT_EQ(x.targets.scalar_type(), torch::kInt64);
  EXPECT_TRUE(torch::equal(x.inputs[1], y.inputs[0])) << "a sample does not depend on its batch";
  EXPECT_EQ(x.targets[1].item<int64_t>(), y.targets[0].item<int64_t>());
  EXPECT_TRUE(torch::equal(x.inputs, a.fetch({3, 50, 7}).inputs));
  options.seed = 10;
  EXPECT_FALSE(torch::equal(x.inputs, SyntheticImageDataset(options).fetch({3, 50, 7}).inputs));
  const Batch all = a.fetch([] {
    std::vector<int64_t> ids(100);
    std::iota(ids.begin(), ids.end(), 0);
    return ids;
  }());
  EXPECT_EQ(torch::bincount(all.targets).size(0), 5) << "every class occurs";
  EXPECT_NEAR(all.inputs.std().item<double>(), std::sqrt(2.0), 0.1);  // signal 1 + noise 1
}

TEST(SyntheticImages, LinearModelLearnsThem) {
  SyntheticImageOptions options;
  options.size = 512;
  options.height = 8;
  options.width = 8;
  options.num_classes = 4;
  options.noise = 2.0;
  const SyntheticImageDataset dataset(options);
  std::vector<int64_t> ids(256);
  std::iota(ids.begin(), ids.end(), 0);
  const Batch batch = dataset.fetch(ids);
  torch::manual_seed(0);
  torch::nn::Linear model(64, 4);
  torch::optim::SGD optimizer(model->parameters(), 0.05);
  const auto x = batch.inputs.flatten(1);  // [B, 64]
  double first = 0, last = 0;
  for (int step = 0; step < 40; ++step) {
    optimizer.zero_grad();
    const auto loss = torch::nn::functional::cross_entropy(model(x), batch.targets);
    loss.backward();
    optimizer.step();
    (step == 0 ? first : last) = loss.item<double>();
  }
  EXPECT_LT(last, 0.5 * first);
}

TEST(SyntheticTokens, DeterministicLearnableChain) {
  SyntheticTokenOptions options;
  options.num_windows = 200;
  options.vocab_size = 16;
  options.context_length = 10;
  options.seed = 4;
  options.noise = 0.1;
  const torch::Tensor stream = synthetic_token_stream(options);
  EXPECT_EQ(stream.size(0), 2001);
  EXPECT_TRUE(torch::equal(stream, synthetic_token_stream(options)));
  EXPECT_GE(stream.min().item<int>(), 0);
  EXPECT_LT(stream.max().item<int>(), 16);
  // The most frequent successor of each token accounts for ~(1 - noise) of the transitions.
  const auto s = stream.to(torch::kInt64);
  const auto bigrams =
      torch::bincount(s.slice(0, 0, -1) * 16 + s.slice(0, 1), {}, 256).view({16, 16});
  const double predictable =
      std::get<0>(bigrams.max(1)).sum().item<double>() / static_cast<double>(stream.size(0) - 1);
  EXPECT_GT(predictable, 0.85);

  const auto dataset = make_synthetic_token_dataset(options);
  EXPECT_EQ(dataset->size(), 200);
  EXPECT_EQ(dataset->vocab_size(), 16);
  const Batch batch = dataset->fetch({199});
  EXPECT_TRUE(torch::equal(batch.inputs[0], s.slice(0, 1990, 2000)));
  EXPECT_TRUE(torch::equal(batch.targets[0], s.slice(0, 1991, 2001)));
  options.seed = 5;
  EXPECT_FALSE(torch::equal(stream, synthetic_token_stream(options)));
}

TEST(SyntheticTokens, BigramModelLearnsThem) {
  SyntheticTokenOptions options;
  options.num_windows = 64;
  options.vocab_size = 32;
  options.context_length = 16;
  const auto dataset = make_synthetic_token_dataset(options);
  std::vector<int64_t> ids(64);
  std::iota(ids.begin(), ids.end(), 0);
  const Batch batch = dataset->fetch(ids);
  torch::manual_seed(0);
  torch::nn::Embedding model(32, 32);  // logits of the next token given the current one
  torch::optim::Adam optimizer(model->parameters(), 0.1);
  double first = 0, last = 0;
  for (int step = 0; step < 60; ++step) {
    optimizer.zero_grad();
    const auto logits = model(batch.inputs).view({-1, 32});
    const auto loss = torch::nn::functional::cross_entropy(logits, batch.targets.view({-1}));
    loss.backward();
    optimizer.step();
    (step == 0 ? first : last) = loss.item<double>();
  }
  EXPECT_GT(first, 3.0);  // ~log(32) = 3.47 at the start
  EXPECT_LT(last, 1.0);   // near the chain's entropy
}

}  // namespace
}  // namespace winnow::data

TEST(SyntheticSplits, HeldOutImagesShareClassesButNotSamples) {
  winnow::data::SyntheticImageOptions o;
  o.size = 400;
  o.height = o.width = 6;
  o.num_classes = 2;
  o.noise = 0.5;
  winnow::data::SyntheticImageDataset train(o);
  o.split = 1;
  winnow::data::SyntheticImageDataset held_out(o);
  std::vector<int64_t> ids(400);
  std::iota(ids.begin(), ids.end(), 0);
  auto a = train.fetch(ids), b = held_out.fetch(ids);
  EXPECT_FALSE(torch::equal(a.inputs, b.inputs));
  // Class means of the two splits point the same way (same prototypes).
  for (int64_t k = 0; k < 2; ++k) {
    auto mean_a = a.inputs.index({a.targets == k}).mean(0).flatten();
    auto mean_b = b.inputs.index({b.targets == k}).mean(0).flatten();
    const double cosine =
        (mean_a * mean_b).sum().item<double>() / (mean_a.norm() * mean_b.norm()).item<double>();
    EXPECT_GT(cosine, 0.9) << "class " << k;
  }
}

TEST(SyntheticSplits, HeldOutTokensFollowTheSameChain) {
  winnow::data::SyntheticTokenOptions o;
  o.num_windows = 100;
  o.vocab_size = 16;
  o.context_length = 8;
  o.noise = 0.1;
  auto a = winnow::data::synthetic_token_stream(o);
  o.split = 1;
  auto b = winnow::data::synthetic_token_stream(o);
  EXPECT_FALSE(torch::equal(a, b));
  // The most frequent successor of each token in split 0 predicts split 1 as well as the chain
  // allows (~90% with 10% noise); another chain would match ~1/16 of the time.
  std::map<int32_t, std::map<int32_t, int>> counts;
  for (int64_t i = 0; i + 1 < a.size(0); ++i)
    ++counts[a[i].item<int32_t>()][a[i + 1].item<int32_t>()];
  int matches = 0, total = 0;
  for (int64_t i = 0; i + 1 < b.size(0); ++i) {
    const auto& next = counts[b[i].item<int32_t>()];
    if (next.empty()) continue;
    auto best = std::max_element(next.begin(), next.end(),
                                 [](const auto& x, const auto& y) { return x.second < y.second; });
    matches += best->first == b[i + 1].item<int32_t>();
    ++total;
  }
  EXPECT_GT(static_cast<double>(matches) / total, 0.8);
}
