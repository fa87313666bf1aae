// The option table over all its entries: every option reaches --help with its default, survives a
// config.ini round trip at a non-default value, and old config.ini spellings still parse; the
// strategy options of a stage reach the strategy.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <sstream>

#include "compression/schedule.h"
#include "launch/config.h"
#include "launch/run_option_table.h"
#include "tests/launch/ini_file.h"

using namespace winnow::launch;
using testing::HasSubstr;

namespace {

using winnow::launch::test_files::write_ini;

RunConfig parse(const std::vector<std::string>& args) {
  RunConfig config;
  bool help = false;
  boost::program_options::options_description extra;
  parse_run_config(args, extra, config, help);
  return config;
}

// A value of the same type as `text` (an option's default) that differs from it: booleans
// flipped, integers moved, doubles (infinite ones too) given a value that needs all 17 digits,
// other text extended.
std::string other_value(const std::string& text) {
  if (text == "true") return "false";
  if (text == "false") return "true";
  char* end = nullptr;
  const long long integer = std::strtoll(text.c_str(), &end, 10);
  if (!text.empty() && *end == '\0') return std::to_string(integer + 3);
  const double real = std::strtod(text.c_str(), &end);
  if (!text.empty() && *end == '\0')
    return real_text(std::isfinite(real) ? real + 1.0 / 3.0 : -1.0 / 3.0);
  return text + "x";
}

// Every option's dotted name with its default text, in table order; the stage options under
// `stage_prefixes`.
struct Named {
  std::string name;
  std::string default_text;
  bool stored;
  bool is_path;
};
std::vector<Named> all_options(const std::vector<std::string>& stage_prefixes) {
  const RunConfig defaults;
  std::vector<Named> named;
  for (const auto& section : run_option_sections())
    for (const auto& option : section.options.options())
      named.push_back({section.name + "." + option.key, option.text(defaults), option.stored,
                       !option.value_name.empty()});
  for (const auto& prefix : stage_prefixes)
    for (const auto& option : stage_options().options())
      named.push_back(
          {prefix + "." + option.key, option.text(defaults.compress), option.stored, false});
  return named;
}

// The value of `name` in `config`, through the table.
std::string text_of(const RunConfig& config, const std::string& name) {
  for (const auto& section : run_option_sections())
    for (const auto& option : section.options.options())
      if (section.name + "." + option.key == name) return option.text(config);
  for (const auto& option : stage_options().options()) {
    const auto dot = name.rfind('.');
    if (name.substr(dot + 1) != option.key) continue;
    const std::string prefix = name.substr(0, dot);
    if (prefix == "compress") return option.text(config.compress);
    return option.text(config.compress.stage.at(prefix.substr(std::string("stage.").size())));
  }
  ADD_FAILURE() << "no option " << name;
  return "";
}

}  // namespace

TEST(OptionTable, HelpListsEveryOptionWithItsDefault) {
  RunConfig config;
  config.compress.stage["pool"];
  std::ostringstream help;
  help << run_options(config);
  for (const auto& option : all_options({"compress", "stage.pool"})) {
    EXPECT_THAT(help.str(), HasSubstr("--" + option.name + " ")) << option.name;
    // Boost shows an empty default as no default at all.
    if (!option.is_path && !option.default_text.empty()) {
      EXPECT_THAT(help.str(), HasSubstr("--" + option.name + " arg (=" + option.default_text + ")"))
          << option.name;
    }
  }
}

// Every option at a value other than its default: config.ini holds it, and --config of that file
// gives the same configuration (the same config.ini, the same value of every stored option).
TEST(OptionTable, EveryOptionRoundTripsThroughConfigIniAtANonDefaultValue) {
  std::vector<std::string> args = {"--compress.stages=alpha, beta"};
  const auto options = all_options({"compress", "stage.alpha", "stage.beta"});
  for (const auto& option : options)
    if (option.name != "compress.stages")
      args.push_back("--" + option.name + "=" + other_value(option.default_text));
  const RunConfig changed = parse(args);
  for (const auto& option : options)
    EXPECT_NE(text_of(changed, option.name), option.default_text) << option.name;

  const std::string ini = to_ini(changed);
  const RunConfig again = parse({"--config", write_ini(ini)});
  EXPECT_EQ(to_ini(again), ini);
  for (const auto& option : options) {
    if (option.stored)
      EXPECT_EQ(text_of(again, option.name), text_of(changed, option.name)) << option.name;
    else  // per-invocation options are not stored: they come back at their defaults
      EXPECT_EQ(text_of(again, option.name), option.default_text) << option.name;
  }
}

// config.ini files written before the table: booleans as 1/0, doubles with 10 digits.
TEST(OptionTable, OldConfigIniSpellingsStillParse) {
  const auto c = parse({"--config", write_ini("[model]\nmlp_ratio = 3.333333333\n"
                                              "[checkpoint]\nat_end = 0\n"
                                              "[monitor]\nstatistics = 1\nema = 0.99\n"
                                              "[compress]\nfuse = 1\ntemperature = 0.5\n")});
  EXPECT_DOUBLE_EQ(c.model.mlp_ratio, 3.333333333);
  EXPECT_FALSE(c.checkpoint.at_end);
  EXPECT_TRUE(c.monitor.statistics);
  EXPECT_TRUE(c.compress.reduction.fuse);
  EXPECT_DOUBLE_EQ(c.compress.reduction.temperature, 0.5);
}

TEST(OptionTable, ChecksNameTheOption) {
  auto error_of = [](const std::vector<std::string>& args) {
    try {
      validate(parse(args), 1);
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_THAT(error_of({"--data.synthetic=images", "--monitor.ema=1"}),
              HasSubstr("monitor.ema: expected a decay in [0, 1), got 1"));
  EXPECT_THAT(error_of({"--data.synthetic=images", "--checkpoint.keep=-1"}),
              HasSubstr("checkpoint.keep: expected >= 0 (0 = all), got -1"));
  EXPECT_THAT(error_of({"--data.synthetic=images", "--checkpoint.kill_stage=late"}),
              HasSubstr("checkpoint.kill_stage: expected one of none, writing, before_rename, "
                        "before_pointer; got 'late'"));
  EXPECT_THAT(error_of({"--data.synthetic=images", "--dist.timeout=-1"}),
              HasSubstr("dist.timeout: expected >= 0 seconds (0 = no timeout), got -1"));
}

// keep_order, window, straight_through and temperature (compression::StrategyOptions) set in an
// INI file reach the strategy a stage builds.
TEST(OptionTable, StrategyOptionsFromIniReachTheStrategy) {
  const auto c =
      parse({"--config", write_ini("[compress]\nstages = tome, pool, mask, policy\n"
                                   "[stage.tome]\ncriterion = similarity\nstrategy = merge\n"
                                   "keep_order = true\n"
                                   "[stage.pool]\ncriterion = uniform\nstrategy = pool\n"
                                   "layers = 0\nkeep = 0.25\nwindow = 2\n"
                                   "[stage.mask]\ncriterion = random\nstrategy = mask\n"
                                   "straight_through = true\ntemperature = 0.25\n"
                                   "[stage.policy]\ncriterion = predictor\nstrategy = policy\n"
                                   "temperature = 0.5\n")});
  const auto planner = planner_config(c);
  ASSERT_EQ(planner.stages.size(), 4u);
  auto strategy_options = [&](size_t stage) {
    const winnow::compression::ReductionSchedule schedule(planner.stages[stage].reduction,
                                                          /*depth=*/4, /*grid_height=*/4,
                                                          /*grid_width=*/4,
                                                          "stage." + planner.stages[stage].name);
    return schedule.method().strategy().options();
  };
  EXPECT_TRUE(strategy_options(0).keep_order());
  EXPECT_EQ(strategy_options(1).window(), 2);
  EXPECT_TRUE(strategy_options(2).straight_through());
  EXPECT_DOUBLE_EQ(strategy_options(2).temperature(), 0.25);
  EXPECT_DOUBLE_EQ(strategy_options(3).temperature(), 0.5);
  // Their defaults: ToMe's order, an automatic window, a hard mask at τ = 1.
  const auto defaults = parse({});
  EXPECT_FALSE(defaults.compress.reduction.keep_order);
  EXPECT_EQ(defaults.compress.reduction.window, 0);
  EXPECT_FALSE(defaults.compress.reduction.straight_through);
  EXPECT_DOUBLE_EQ(defaults.compress.reduction.temperature, 1.0);
}
