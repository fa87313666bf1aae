// LR schedule values and AdamW parameter groups.
#include <gtest/gtest.h>

#include <cmath>

#include "train/lr_schedule.h"
#include "train/optimizer.h"
#include "train/vit.h"

using namespace winnow::train;

TEST(LrSchedule, WarmupThenCosineToFloor) {
  LrSchedule s{1.0, 10, 110, 0.1};
  s.validate();
  EXPECT_DOUBLE_EQ(s.at(0), 0.1);
  EXPECT_DOUBLE_EQ(s.at(9), 1.0);
  EXPECT_DOUBLE_EQ(s.at(10), 1.0);
  EXPECT_NEAR(s.at(60), 0.1 + 0.9 * 0.5, 1e-12);  // half way through the decay
  EXPECT_NEAR(s.at(110), 0.1, 1e-12);
  EXPECT_NEAR(s.at(500), 0.1, 1e-12);  // stays at the floor
  for (int64_t i = 10; i < 110; ++i) EXPECT_LE(s.at(i + 1), s.at(i) + 1e-15);
}

TEST(LrSchedule, RejectsBadSettings) {
  EXPECT_THROW((LrSchedule{0.0, 0, 10, 0.0}.validate()), c10::Error);
  EXPECT_THROW((LrSchedule{1.0, 11, 10, 0.0}.validate()), c10::Error);
  EXPECT_THROW((LrSchedule{1.0, 0, 10, 1.5}.validate()), c10::Error);
}

TEST(Optimizer, NoDecayOnNormsBiasesAndEmbeddings) {
  VitOptions o;
  o.image_height = o.image_width = 8;
  o.dim = 8;
  o.depth = 1;
  o.heads = 2;
  VisionTransformerImpl vit(o);
  auto groups = split_parameter_groups(vit);
  auto has = [](const std::vector<std::string>& v, const std::string& s) {
    return std::find(v.begin(), v.end(), s) != v.end();
  };
  EXPECT_TRUE(has(groups.decayed_names, "blocks.0.attn.qkv.weight"));
  EXPECT_TRUE(has(groups.decayed_names, "patch_embed.proj.weight"));
  EXPECT_TRUE(has(groups.decayed_names, "head.weight"));
  EXPECT_TRUE(has(groups.exempt_names, "cls_token"));
  EXPECT_TRUE(has(groups.exempt_names, "pos_embed"));
  EXPECT_TRUE(has(groups.exempt_names, "blocks.0.norm1.weight"));
  EXPECT_TRUE(has(groups.exempt_names, "blocks.0.attn.qkv.bias"));
  EXPECT_EQ(groups.decayed.size() + groups.exempt.size(), vit.parameters().size());

  OptimizerOptions opt;
  opt.weight_decay = 0.1;
  auto adamw = make_adamw(vit, opt);
  ASSERT_EQ(adamw->param_groups().size(), 2u);
  auto wd = [&](size_t g) {
    return static_cast<torch::optim::AdamWOptions&>(adamw->param_groups()[g].options())
        .weight_decay();
  };
  EXPECT_DOUBLE_EQ(wd(0), 0.1);
  EXPECT_DOUBLE_EQ(wd(1), 0.0);
  set_learning_rate(*adamw, 0.25);
  for (auto& g : adamw->param_groups()) EXPECT_DOUBLE_EQ(g.options().get_lr(), 0.25);
}

TEST(Optimizer, ParameterWithoutGradientIsLeftUntouched) {
  VitOptions o;
  o.image_height = o.image_width = 8;
  o.dim = 8;
  o.depth = 1;
  o.heads = 2;
  VisionTransformerImpl vit(o);
  auto adamw = make_adamw(vit, OptimizerOptions{});
  for (auto& p : vit.parameters()) p.mutable_grad() = torch::ones_like(p);
  vit.cls_token.mutable_grad() = torch::Tensor();  // no gradient this step
  auto before = vit.cls_token.detach().clone();
  adamw->step();
  EXPECT_TRUE(torch::equal(before, vit.cls_token.detach()));
  EXPECT_EQ(adamw->state().count(optimizer_state_key(vit.cls_token)), 0u);
}
