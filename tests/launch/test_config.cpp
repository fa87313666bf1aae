// Configuration parsing: INI sections map to dotted options, the command line wins, and every
// bad input is a ConfigError that names the option.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "launch/config.h"
#include "tests/launch/ini_file.h"

using namespace winnow::launch;
using testing::HasSubstr;

namespace {

using winnow::launch::test_files::write_ini;

RunConfig parse(const std::vector<std::string>& args, const std::string& base = {}) {
  RunConfig config;
  bool help = false;
  boost::program_options::options_description extra;
  parse_run_config(args, extra, config, help, base);
  return config;
}

std::string error_of(const std::vector<std::string>& args) {
  try {
    auto config = parse(args);
    validate(config, 1);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST(Config, DefaultsAreValid) {
  auto c = parse({"--data.synthetic", "images"});
  EXPECT_EQ(c.model.kind, "vit");
  EXPECT_EQ(c.model.dim, 192);
  EXPECT_NO_THROW(validate(c, 1));
}

TEST(Config, IniSectionsBecomeDottedOptionsAndCommandLineWins) {
  auto path = write_ini("[model]\ndim = 64\ndepth = 3\n[train]\nsteps = 77\n[optim]\nlr = 0.01\n");
  auto c = parse({"--config", path, "--model.dim=96", "--data.synthetic", "images"});
  EXPECT_EQ(c.model.dim, 96);  // command line overrides the file
  EXPECT_EQ(c.model.depth, 3);
  EXPECT_EQ(c.train.steps, 77);
  EXPECT_DOUBLE_EQ(c.optim.lr, 0.01);
}

TEST(Config, BaseIniHasTheLowestPriority) {
  auto path = write_ini("[model]\ndepth = 5\n");
  auto c =
      parse({"--config", path, "--model.heads=4"}, "[model]\ndepth = 9\nheads = 2\ndim = 32\n");
  EXPECT_EQ(c.model.depth, 5);
  EXPECT_EQ(c.model.heads, 4);
  EXPECT_EQ(c.model.dim, 32);
}

TEST(Config, EffectiveIniRoundTrips) {
  auto c = parse({"--model.dim=48", "--model.heads=4", "--train.steps=12", "--optim.lr=0.0025",
                  "--data.synthetic=text", "--model.kind=gpt", "--train.run_dir=/tmp/x"});
  auto again = parse({"--config", write_ini(to_ini(c))});
  EXPECT_EQ(to_ini(again), to_ini(c));
  EXPECT_EQ(again.model.dim, 48);
  EXPECT_DOUBLE_EQ(again.optim.lr, 0.0025);
}

TEST(Config, ErrorsNameTheOption) {
  EXPECT_THAT(error_of({"--model.dim=abc"}), HasSubstr("--model.dim"));
  EXPECT_THAT(error_of({"--no.such=1"}), HasSubstr("--no.such"));
  EXPECT_THAT(error_of({"--data.synthetic=images", "--model.dim=0"}),
              HasSubstr("model.dim: expected >= 1"));
  EXPECT_THAT(error_of({"--data.synthetic=images", "--model.dim=10", "--model.heads=3"}),
              HasSubstr("multiple of model.heads"));
  EXPECT_THAT(error_of({"--data.synthetic=images", "--optim.lr=-1"}),
              HasSubstr("optim.lr: expected > 0"));
  EXPECT_THAT(error_of({"--data.synthetic=images", "--train.steps=10", "--optim.warmup_steps=11"}),
              HasSubstr("optim.warmup_steps: expected in [0, 10]"));
  EXPECT_THAT(error_of({"--data.synthetic=images", "--dist.backend=gloo"}),
              HasSubstr("dist.backend: expected one of local, mpi, nccl, auto"));
  EXPECT_THAT(error_of({"--data.synthetic=images", "--model.kind=resnet"}),
              HasSubstr("model.kind: expected one of"));
  EXPECT_THAT(error_of({}), HasSubstr("data.train: no training data"));
  EXPECT_THAT(error_of({"--config", "/nonexistent/x.ini"}),
              HasSubstr("cannot read the config file"));
  EXPECT_THAT(error_of({"--config", write_ini("[model]\nwidth = 3\n")}), HasSubstr("model.width"));
}

// Several methods in one model: compress.stages names [stage.NAME] sections, which take the same
// keys as [compress]; the command line reaches them as --stage.NAME.key.
TEST(Config, StagesGatesAndMonitorFromIniAndCommandLine) {
  auto path = write_ini(
      "[compress]\nstages = pool, tome\n[stage.pool]\ncriterion = uniform\nstrategy = pool\n"
      "layers = 0\nkeep = 0.25\n[stage.tome]\ncriterion = similarity\nstrategy = merge\n"
      "layers = 3,4,5,6,7\nkeep = 0.9\n[gate]\nkind = pld\ntheta_bar = 0.6\n"
      "[monitor]\nstatistics = true\n");
  auto c = parse({"--config", path, "--stage.tome.keep_order=true", "--data.synthetic=images"});
  const auto planner = planner_config(c);
  ASSERT_EQ(planner.stages.size(), 2u);
  EXPECT_EQ(planner.stages[0].name, "pool");
  EXPECT_EQ(planner.stages[0].reduction.strategy, "pool");
  EXPECT_EQ(planner.stages[0].reduction.layers, (std::vector<int64_t>{0}));
  EXPECT_EQ(planner.stages[1].reduction.keep, (std::vector<double>{0.9}));
  EXPECT_TRUE(planner.stages[1].reduction.keep_order);
  EXPECT_EQ(planner.gate.kind, "pld");
  EXPECT_DOUBLE_EQ(planner.gate.theta_bar, 0.6);
  EXPECT_TRUE(planner.statistics);
  // The effective configuration round-trips with its stages.
  auto again = parse({"--config", write_ini(to_ini(c))});
  EXPECT_EQ(to_ini(again), to_ini(c));
  EXPECT_EQ(planner_config(again).stages.size(), 2u);
  // The single [compress] method is one stage named "compress".
  auto single = parse({"--compress.criterion=random", "--compress.keep=0.5"});
  ASSERT_EQ(planner_config(single).stages.size(), 1u);
  EXPECT_EQ(planner_config(single).stages[0].name, "compress");
}

TEST(Config, StageErrorsNameTheOption) {
  auto error = [](const std::vector<std::string>& args) {
    try {
      planner_config(parse(args));
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_THAT(error({"--stage.x.criterion=random"}), HasSubstr("--stage.x.criterion"));
  EXPECT_THAT(error({"--compress.stages=a", "--stage.a.keep=x"}),
              HasSubstr("stage.a.keep: expected a comma-separated list"));
  EXPECT_THAT(error({"--compress.stages=a", "--compress.criterion=random"}),
              HasSubstr("give one method in [compress] or named stages"));
  EXPECT_THAT(error({"--gate.layers=1,x"}), HasSubstr("gate.layers"));
}
