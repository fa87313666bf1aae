// Model shapes, parameter names, attention hooks, FLOPs bookkeeping and a finite-difference
// gradient check.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "train/attention.h"
#include "train/batched_matmul.h"
#include "train/gpt.h"
#include "train/model_registry.h"
#include "train/vit.h"

using namespace winnow::train;

namespace {

VitOptions tiny_vit() {
  VitOptions o;
  o.image_channels = 1;
  o.image_height = 8;
  o.image_width = 8;
  o.patch = 4;
  o.dim = 8;
  o.depth = 2;
  o.heads = 2;
  o.mlp_ratio = 2.0;
  o.num_classes = 3;
  return o;
}

GptOptions tiny_gpt() {
  GptOptions o;
  o.vocab_size = 11;
  o.context = 6;
  o.dim = 8;
  o.depth = 2;
  o.heads = 2;
  o.mlp_ratio = 2.0;
  return o;
}

std::vector<std::string> names_of(const torch::nn::Module& m) {
  std::vector<std::string> names;
  for (const auto& p : m.named_parameters()) names.push_back(p.key());
  return names;
}

}  // namespace

TEST(Vit, OutputShapeAndTokenAccounting) {
  torch::manual_seed(0);
  VisionTransformerImpl vit(tiny_vit());
  auto out = vit.forward(torch::randn({5, 1, 8, 8}), {});
  EXPECT_EQ(out.logits.sizes(), torch::IntArrayRef({5, 3}));
  ASSERT_EQ(out.tokens_per_layer.size(), 2u);
  EXPECT_EQ(out.tokens_per_layer[0], 5 * (4 + 1));  // 4 patches + CLS, summed over the batch
  EXPECT_NEAR(out.forward_flops, 5 * vit.dense_forward_flops_per_sample(),
              1e-6 * out.forward_flops);
}

TEST(Vit, ParameterNamesFollowTimm) {
  VisionTransformerImpl vit(tiny_vit());
  auto names = names_of(vit);
  // A module's own parameters come before its children's, as in PyTorch (and timm's state_dict).
  std::vector<std::string> expected = {"cls_token", "pos_embed", "patch_embed.proj.weight",
                                       "patch_embed.proj.bias"};
  for (int b = 0; b < 2; ++b) {
    const std::string p = "blocks." + std::to_string(b) + ".";
    for (const char* s : {"norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias",
                          "attn.proj.weight", "attn.proj.bias", "norm2.weight", "norm2.bias",
                          "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias"})
      expected.push_back(p + s);
  }
  for (const char* s : {"norm.weight", "norm.bias", "head.weight", "head.bias"})
    expected.push_back(s);
  EXPECT_EQ(names, expected);
  EXPECT_EQ(vit.patch_embed->proj->weight.sizes(), torch::IntArrayRef({8, 1, 4, 4}));
  EXPECT_EQ(vit.pos_embed.sizes(), torch::IntArrayRef({1, 5, 8}));
}

TEST(Vit, PatchEmbeddingEqualsStridedConvolution) {
  torch::manual_seed(1);
  VisionTransformerImpl vit(tiny_vit());
  auto images = torch::randn({3, 1, 8, 8});
  auto ours = vit.patch_embed->forward(images);                                   // [B, P, C]
  auto conv = vit.patch_embed->proj->forward(images).flatten(2).transpose(1, 2);  // [B, P, C]
  EXPECT_TRUE(torch::allclose(ours, conv, 1e-5, 1e-6));
}

TEST(Vit, RejectsWrongImageShapeWithClearMessage) {
  VisionTransformerImpl vit(tiny_vit());
  try {
    vit.forward(torch::randn({2, 3, 8, 8}), {});
    FAIL() << "expected an error";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.msg()).find("expected images [B, 1, 8, 8]"), std::string::npos)
        << e.msg();
  }
}

TEST(Vit, InvalidOptionsAreRejected) {
  auto o = tiny_vit();
  o.patch = 3;
  EXPECT_THROW(VisionTransformerImpl{o}, c10::Error);
  o = tiny_vit();
  o.heads = 3;
  EXPECT_THROW(VisionTransformerImpl{o}, c10::Error);
}

TEST(Gpt, OutputShapeTiedHeadAndNames) {
  torch::manual_seed(0);
  GptImpl gpt(tiny_gpt());
  auto tokens = torch::randint(0, 11, {4, 6}, torch::kInt64);
  auto out = gpt.forward(tokens, {});
  EXPECT_EQ(out.logits.sizes(), torch::IntArrayRef({4, 6, 11}));
  auto names = names_of(gpt);
  EXPECT_EQ(names.front(), "pos_embed");
  EXPECT_EQ(names[1], "tok_embed.weight");
  EXPECT_EQ(names.back(), "norm.bias");
  EXPECT_EQ(std::count(names.begin(), names.end(), "head.weight"), 0);  // tied to tok_embed
  // Shorter sequences are allowed; longer ones are rejected.
  EXPECT_EQ(gpt.forward(tokens.narrow(1, 0, 3), {}).logits.size(1), 3);
  EXPECT_THROW(gpt.forward(torch::zeros({1, 7}, torch::kInt64), {}), c10::Error);
}

TEST(Gpt, IsCausal) {
  torch::manual_seed(2);
  GptImpl gpt(tiny_gpt());
  auto a = torch::randint(0, 11, {1, 6}, torch::kInt64);
  auto b = a.clone();
  b[0][5] = (a[0][5].item<int64_t>() + 1) % 11;  // change only the last token
  auto la = gpt.forward(a, {}).logits, lb = gpt.forward(b, {}).logits;
  EXPECT_TRUE(torch::allclose(la.narrow(1, 0, 5), lb.narrow(1, 0, 5), 1e-6, 1e-6));
  EXPECT_FALSE(torch::allclose(la.narrow(1, 5, 1), lb.narrow(1, 5, 1), 1e-6, 1e-6));
}

TEST(Registry, BuildsEveryKnownModelAndRejectsUnknown) {
  for (const auto& kind : known_models()) {
    ModelSpec s;
    s.kind = kind;
    s.dim = 8, s.depth = 1, s.heads = 2, s.patch = 4;
    s.image_channels = 1, s.image_height = 8, s.image_width = 8, s.num_classes = 2;
    s.vocab_size = 5, s.context = 4;
    EXPECT_EQ(make_model(s)->kind(), kind);
  }
  ModelSpec bad;
  bad.kind = "resnet";
  try {
    make_model(bad);
    FAIL();
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.msg()).find("known: vit, gpt"), std::string::npos) << e.msg();
  }
}

TEST(Attention, ExtrasMatchProbabilities) {
  torch::manual_seed(3);
  MultiHeadAttention attn(AttentionOptions(8, 2));
  auto x = torch::randn({2, 5, 8});
  AttentionRequest all;
  all.probabilities = all.cls_row = all.received = all.mean_keys = true;
  auto out = attn->forward(x, {}, all);
  EXPECT_EQ(out.probabilities.sizes(), torch::IntArrayRef({2, 2, 5, 5}));
  EXPECT_TRUE(torch::allclose(out.probabilities.sum(-1), torch::ones({2, 2, 5}), 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(out.cls_row, out.probabilities.select(2, 0).mean(1)));
  EXPECT_TRUE(torch::allclose(out.received, out.probabilities.mean({1, 2})));
  EXPECT_EQ(out.mean_keys.sizes(), torch::IntArrayRef({2, 5, 4}));
  // Asking for extras does not change the output.
  EXPECT_TRUE(torch::allclose(out.out, attn->forward(x).out, 1e-5, 1e-6));
}

TEST(Attention, ClsRowFromTheClsQueryAloneMatchesFullProbabilities) {
  // cls_attention_row computes only query 0's row (O(N·d)); with a key bias, a dropped key and a
  // causal mask it equals row 0 of the full softmax, head-averaged.
  torch::manual_seed(11);
  const int64_t B = 2, H = 3, N = 6, D = 4;
  auto q = torch::randn({B, H, N, D}), k = torch::randn({B, H, N, D});
  auto bias = torch::log(torch::rand({B, 1, 1, N}) + 0.5);
  bias.index_put_({0, 0, 0, 2}, -std::numeric_limits<float>::infinity());  // key 2 dropped in b=0
  auto causal = causal_bias_from_positions(torch::tensor({{3, 0, 1, 2, 4, 5}, {0, 1, 2, 3, 4, 5}}),
                                           torch::kFloat);  // [B, 1, N, N]
  for (const auto& b : {torch::Tensor(), bias, bias + causal}) {
    auto logits = torch::matmul(q / std::sqrt(double(D)), k.transpose(-2, -1));
    if (b.defined()) logits = logits + b;
    auto full = torch::softmax(logits, -1).select(2, 0).mean(1);  // [B, N]
    auto row = cls_attention_row(q, k, b);
    ASSERT_EQ(row.sizes(), torch::IntArrayRef({B, N}));
    EXPECT_TRUE(torch::allclose(row, full, 1e-5, 1e-6));
  }
  EXPECT_EQ(cls_attention_row(q, k, bias)[0][2].item<float>(), 0.f);
  // Asking the module for the CLS row alone gives the same row as asking for everything.
  MultiHeadAttention attn(AttentionOptions(8, 2));
  auto x = torch::randn({2, 5, 8});
  AttentionRequest only_cls, all;
  only_cls.cls_row = true;
  all.probabilities = all.cls_row = true;
  EXPECT_TRUE(torch::allclose(attn->forward(x, {}, only_cls).cls_row,
                              attn->forward(x, {}, all).cls_row, 1e-5, 1e-6));
}

TEST(Attention, MaskedKeyEqualsRemovedToken) {
  torch::manual_seed(4);
  MultiHeadAttention attn(AttentionOptions(8, 2));
  auto x = torch::randn({1, 5, 8});
  AttentionInputs in;
  in.key_keep = torch::tensor({{1.f, 1.f, 0.f, 1.f, 1.f}});
  auto masked = attn->forward(x, in).out;
  auto kept = torch::tensor({0, 1, 3, 4}, torch::kInt64);
  auto removed = attn->forward(x.index_select(1, kept)).out;
  EXPECT_TRUE(torch::allclose(masked.index_select(1, kept), removed, 1e-5, 1e-6));
}

TEST(Attention, LogSizeBiasEqualsDuplicatedTokens) {
  // Proportional attention: a token of size 2 weighs like the same token present twice.
  torch::manual_seed(5);
  MultiHeadAttention attn(AttentionOptions(8, 2));
  auto x = torch::randn({1, 4, 8});
  AttentionInputs in;
  in.key_bias = torch::log(torch::tensor({{1.f, 2.f, 1.f, 1.f}}));
  auto biased = attn->forward(x, in).out;
  auto duplicated = torch::cat({x, x.narrow(1, 1, 1)}, 1);  // token 1 appears twice
  auto reference = attn->forward(duplicated).out.narrow(1, 0, 4);
  EXPECT_TRUE(torch::allclose(biased, reference, 1e-5, 1e-6));
}

TEST(Attention, CausalMaskFollowsOriginalPositions) {
  // Reordering tokens together with their positions reorders the output the same way.
  torch::manual_seed(6);
  MultiHeadAttention attn(AttentionOptions(8, 2).causal(true));
  auto x = torch::randn({1, 5, 8});
  auto order = torch::tensor({3, 0, 4, 1, 2}, torch::kInt64);
  AttentionInputs in;
  in.positions = order.unsqueeze(0);
  auto permuted = attn->forward(x.index_select(1, order), in).out;
  auto reference = attn->forward(x).out.index_select(1, order);
  EXPECT_TRUE(torch::allclose(permuted, reference, 1e-5, 1e-6));
  // A subset of tokens with their original positions equals attending over that subset only.
  auto subset = torch::tensor({0, 2, 4}, torch::kInt64);
  AttentionInputs sub;
  sub.positions = subset.unsqueeze(0);
  auto pruned = attn->forward(x.index_select(1, subset), sub).out;
  EXPECT_TRUE(torch::allclose(pruned, attn->forward(x.index_select(1, subset)).out, 1e-5, 1e-6));
}

TEST(Gradients, FiniteDifferencesAgreeWithAutograd) {
  torch::manual_seed(7);
  auto o = tiny_vit();
  o.dim = 4;
  o.depth = 1;
  VisionTransformerImpl vit(o);
  vit.to(torch::kFloat64);
  {
    torch::NoGradGuard g;  // a non-zero head so every parameter influences the loss
    vit.head->weight.normal_(0.0, 0.5);
  }
  auto images = torch::randn({2, 1, 8, 8}, torch::kFloat64);
  auto labels = torch::tensor({0, 2}, torch::kInt64);
  auto loss_of = [&] { return vit.loss_sum(vit.forward(images, {}), labels); };
  vit.zero_grad();
  loss_of().backward();
  const double h = 1e-6;
  int checked = 0;
  for (auto& item : vit.named_parameters()) {
    auto p = item.value();
    auto grad = p.grad().reshape({-1});
    auto flat = p.data().view({-1});
    for (int64_t i : {int64_t{0}, flat.numel() / 2, flat.numel() - 1}) {
      torch::NoGradGuard g;
      const double original = flat[i].item<double>();
      flat[i] = original + h;
      const double up = loss_of().item<double>();
      flat[i] = original - h;
      const double down = loss_of().item<double>();
      flat[i] = original;
      const double numeric = (up - down) / (2 * h);
      const double analytic = grad[i].item<double>();
      EXPECT_NEAR(analytic, numeric, 1e-6 + 1e-5 * std::abs(numeric))
          << item.key() << "[" << i << "]";
      ++checked;
    }
  }
  EXPECT_GT(checked, 30);
}

TEST(BatchedMatmul, MatchesMatmulAndItsGradients) {
  torch::manual_seed(8);
  auto a = torch::randn({2, 3, 5, 4}, torch::kFloat64).requires_grad_();
  // A strided operand, like the keys of a permuted qkv projection.
  auto b_storage = torch::randn({2, 6, 3, 4}, torch::kFloat64);
  auto b = b_storage.permute({0, 2, 3, 1}).detach().requires_grad_();  // [2, 3, 4, 6]
  auto ours = batched_matmul(a, b);
  auto reference = torch::matmul(a, b);
  EXPECT_TRUE(torch::allclose(ours, reference, 1e-10, 1e-12));
  auto g = torch::randn_like(reference);
  auto grads = torch::autograd::grad({ours}, {a, b}, {g});
  auto reference_grads = torch::autograd::grad({reference}, {a, b}, {g});
  EXPECT_TRUE(torch::allclose(grads[0], reference_grads[0], 1e-10, 1e-12));
  EXPECT_TRUE(torch::allclose(grads[1], reference_grads[1], 1e-10, 1e-12));
  EXPECT_THROW(batched_matmul(a, torch::randn({2, 4, 4, 6}, torch::kFloat64)), c10::Error);
}
