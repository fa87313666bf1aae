// ReductionSchedule: default layers and sites, keep per layer, warmup and ramps, and errors.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "compression/schedule.h"

using namespace winnow::compression;
using testing::HasSubstr;

namespace {

ReductionConfig config(const std::string& criterion, const std::string& strategy) {
  ReductionConfig c;
  c.criterion = criterion;
  c.strategy = strategy;
  return c;
}

std::string error_of(const ReductionConfig& c, int64_t depth = 6) {
  try {
    ReductionSchedule s(c, depth, 7, 7);
  } catch (const c10::Error& e) {
    return e.msg();
  }
  return "no error";
}

}  // namespace

TEST(ReductionSchedule, NoneIsDense) {
  ReductionSchedule s(ReductionConfig{}, 6);
  EXPECT_FALSE(s.enabled());
  for (int64_t l = 0; l < 6; ++l) EXPECT_EQ(s.keep_at(l, 100), 1.0);
}

TEST(ReductionSchedule, SitesFollowTheMethod) {
  EXPECT_EQ(ReductionSchedule(config("random", "prune"), 6).site(), Site::kPreBlock);
  EXPECT_EQ(ReductionSchedule(config("cls_attention", "prune"), 6).site(), Site::kPostAttention);
  EXPECT_EQ(ReductionSchedule(config("similarity", "merge"), 6).site(), Site::kPostAttention);
  EXPECT_EQ(ReductionSchedule(config("random", "route"), 6).site(), Site::kAroundBlock);
}

TEST(ReductionSchedule, DefaultLayersSkipTheFirstAndForRouteTheLast) {
  EXPECT_EQ(ReductionSchedule(config("random", "prune"), 4).layers(),
            (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(ReductionSchedule(config("random", "route"), 4).layers(), (std::vector<int64_t>{1, 2}));
  auto c = config("norm", "prune");
  c.layers = {3, 1};
  c.keep = {0.5, 0.8};
  ReductionSchedule s(c, 6);
  EXPECT_EQ(s.target_keep(3), 0.5);
  EXPECT_EQ(s.target_keep(1), 0.8);
  EXPECT_EQ(s.target_keep(2), 1.0);
}

TEST(ReductionSchedule, WarmupThenRampToTheTarget) {
  auto c = config("random", "prune");
  c.keep = {0.5};
  c.warmup_steps = 10;
  c.ramp_steps = 20;
  c.ramp = "linear";
  ReductionSchedule linear(c, 4);
  EXPECT_EQ(linear.keep_at(1, 0), 1.0);
  EXPECT_EQ(linear.keep_at(1, 9), 1.0);
  EXPECT_DOUBLE_EQ(linear.keep_at(1, 10), 1.0);
  EXPECT_DOUBLE_EQ(linear.keep_at(1, 20), 0.75);
  EXPECT_DOUBLE_EQ(linear.keep_at(1, 30), 0.5);
  EXPECT_DOUBLE_EQ(linear.keep_at(1, 1000), 0.5);
  EXPECT_EQ(linear.keep_at(0, 1000), 1.0);  // layer 0 does not reduce
  c.ramp = "cosine";
  ReductionSchedule cosine(c, 4);
  EXPECT_DOUBLE_EQ(cosine.keep_at(1, 20), 0.75);            // half way: cosine and linear agree
  EXPECT_GT(cosine.keep_at(1, 12), linear.keep_at(1, 12));  // cosine starts slower
}

TEST(ReductionSchedule, EvaluationFollowsTheEvalSetting) {
  EXPECT_TRUE(ReductionSchedule(config("random", "prune"), 4).reduce_in_eval());
  EXPECT_FALSE(
      ReductionSchedule(config("random", "route"), 4).reduce_in_eval());  // random-LTD: dense eval
  auto c = config("random", "prune");
  c.eval = "dense";
  EXPECT_FALSE(ReductionSchedule(c, 4).reduce_in_eval());
}

TEST(ReductionSchedule, ErrorsNameTheOption) {
  auto c = config("random", "prune");
  c.layers = {7};
  EXPECT_THAT(error_of(c), HasSubstr("compress.layers: layer 7 outside [0, 6)"));
  c = config("random", "prune");
  c.keep = {1.5};
  EXPECT_THAT(error_of(c), HasSubstr("compress.keep: expected values in (0, 1]"));
  c = config("random", "prune");
  c.layers = {1, 2};
  c.keep = {0.5, 0.6, 0.7};
  EXPECT_THAT(error_of(c), HasSubstr("one value or one per reducing layer"));
  c = config("cls_attention", "prune");
  c.site = "pre_block";
  EXPECT_THAT(error_of(c), HasSubstr("needs this block's attention"));
  c = config("random", "route");
  c.site = "pre_block";
  EXPECT_THAT(error_of(c), HasSubstr("needs site around_block"));
  c = config("random", "prune");
  c.ramp = "step";
  EXPECT_THAT(error_of(c), HasSubstr("compress.ramp"));
  EXPECT_THAT(error_of(config("magic", "prune")), HasSubstr("magic"));
}

TEST(ReductionSchedule, LinearKeepInterpolatesAcrossTheReducingLayers) {
  auto c = config("random", "prune");
  c.layers = {1, 2, 3, 4, 5};
  c.keep = {0.9, 0.5};
  c.keep_schedule = "linear";
  ReductionSchedule s(c, 6);
  EXPECT_DOUBLE_EQ(s.target_keep(1), 0.9);
  EXPECT_DOUBLE_EQ(s.target_keep(3), 0.7);
  EXPECT_DOUBLE_EQ(s.target_keep(5), 0.5);
  c.keep = {0.9};
  EXPECT_THAT(error_of(c), HasSubstr("takes two values"));
}
