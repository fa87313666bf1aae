// The planner registry (launch/planner_registry.h): its list, and that make_planner picks from it.
#include "launch/planner_registry.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "launch/run_setup.h"

namespace winnow::launch {
namespace {

using ::testing::HasSubstr;

train::ModelSpec tiny_vit() {
  train::ModelSpec spec;
  spec.kind = "vit";
  spec.dim = 16, spec.depth = 4, spec.heads = 2, spec.patch = 4;
  spec.image_channels = 1, spec.image_height = 8, spec.image_width = 8, spec.num_classes = 3;
  return spec;
}

TEST(PlannerRegistry, ListsEveryPlannerByItsName) {
  EXPECT_EQ(planner_registry().names(), (std::vector<std::string>{"static", "coschedule"}));
  try {
    planner_registry().create("greedy", RunConfig{}, compression::ModelShape{});
    FAIL() << "expected an error";
  } catch (const c10::Error& error) {
    EXPECT_THAT(error.msg(),
                HasSubstr("unknown planner 'greedy'; known planners: static, coschedule"));
  }
}

TEST(PlannerRegistry, MakePlannerBuildsTheStaticPlannerByDefault) {
  const auto planner = make_planner(RunConfig{}, tiny_vit());
  EXPECT_EQ(planner->name(), "static");
  EXPECT_FALSE(planner->active());
}

TEST(PlannerRegistry, CoscheduleRefusesASecondPlanner) {
  RunConfig config;
  config.coschedule.planner.mode = "joint";
  config.gate.kind = "pld";
  try {
    make_planner(config, tiny_vit());
    FAIL() << "expected an error";
  } catch (const ConfigError& error) {
    EXPECT_THAT(error.what(), HasSubstr("two planners for one model"));
  }
}

}  // namespace
}  // namespace winnow::launch
