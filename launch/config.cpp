// Run configuration: parsing, validation and INI output, generated from the option table
// (launch/run_option_table.h), and the conversions to the planners' configurations.
#include "launch/config.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include "launch/run_option_table.h"

namespace winnow::launch {
namespace po = boost::program_options;

namespace {

// Names in a comma-separated list, spaces trimmed, empty items dropped.
std::vector<std::string> split_names(const std::string& text) {
  std::vector<std::string> names;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    const auto first = item.find_first_not_of(" \t");
    if (first == std::string::npos) continue;
    names.push_back(item.substr(first, item.find_last_not_of(" \t") - first + 1));
  }
  return names;
}

}  // namespace

po::options_description run_options(RunConfig& config) {
  po::options_description all;
  for (const auto& section : run_option_sections()) {
    po::options_description group(section.title);
    section.options.describe(section.name, config, group);
    if (section.name != "compress") {
      all.add(group);
      continue;
    }
    // [compress] holds one stage's keys too; each named stage has a section of its own.
    stage_options().describe("compress", config.compress, group);
    all.add(group);
    for (auto& [name, stage] : config.compress.stage) {
      po::options_description stage_group("Stage [stage." + name + "]");
      stage_options().describe("stage." + name, stage, stage_group);
      all.add(stage_group);
    }
  }
  return all;
}

void parse_run_config(const std::vector<std::string>& args, po::options_description& extra,
                      RunConfig& config, bool& help, const std::string& base_ini) {
  std::string config_file;
  // First pass: the stage names (command line, then the config file, then the base), so that
  // the [stage.NAME] options exist before the real parse.
  try {
    po::options_description peek;
    peek.add_options()("config", po::value<std::string>())("compress.stages",
                                                           po::value<std::string>());
    po::variables_map found;
    po::store(po::command_line_parser(args).options(peek).allow_unregistered().run(), found);
    if (found.count("config")) {
      std::ifstream in(found["config"].as<std::string>());
      if (in) po::store(po::parse_config_file(in, peek, /*allow_unregistered=*/true), found);
    }
    if (!base_ini.empty()) {
      std::istringstream in(base_ini);
      po::store(po::parse_config_file(in, peek, /*allow_unregistered=*/true), found);
    }
    if (found.count("compress.stages"))
      for (const auto& name : split_names(found["compress.stages"].as<std::string>()))
        config.compress.stage[name];
  } catch (const po::error& e) {
    throw ConfigError(std::string(e.what()));
  }
  po::options_description general("General");
  general.add_options()("help,h", "show this help")(
      "config", po::value(&config_file)->value_name("FILE"),
      "INI file; [section] key=value sets section.key; the command line overrides it");
  auto options = run_options(config);
  po::options_description everything;
  everything.add(general).add(extra).add(options);

  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(everything).run(), vm);
    if (vm.count("config")) {
      config_file = vm["config"].as<std::string>();
      std::ifstream in(config_file);
      if (!in) throw ConfigError("--config: cannot read the config file '" + config_file + "'");
      po::options_description in_file;
      in_file.add(extra).add(options);
      po::store(po::parse_config_file(in, in_file), vm);
    }
    if (!base_ini.empty()) {
      std::istringstream in(base_ini);
      po::store(po::parse_config_file(in, options, /*allow_unregistered=*/true), vm);
    }
    help = vm.count("help") > 0;
    if (!help) po::notify(vm);
  } catch (const po::error& e) {
    std::string where = config_file.empty() ? "" : " (command line or " + config_file + ")";
    throw ConfigError(std::string(e.what()) + where);
  }
}

namespace {

void require(bool ok, const std::string& message) {
  if (!ok) throw ConfigError(message);
}

template <typename T>
std::string str(T value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

template <typename T>
std::vector<T> parse_list(const std::string& text, const std::string& option) {
  std::vector<T> values;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    std::istringstream one(item);
    T value;
    if (!(one >> value) || !(one >> std::ws).eof())
      throw ConfigError(option + ": expected a comma-separated list of numbers, got '" + text +
                        "'");
    values.push_back(value);
  }
  return values;
}

}  // namespace

namespace {

compression::ReductionConfig stage_config(const StageSection& stage, const std::string& prefix) {
  compression::ReductionConfig r = stage.reduction;
  r.layers = parse_list<int64_t>(stage.layers, prefix + ".layers");
  r.keep = parse_list<double>(stage.keep, prefix + ".keep");
  if (r.keep.empty()) throw ConfigError(prefix + ".keep: expected at least one value");
  return r;
}

}  // namespace

compression::StaticPlannerConfig planner_config(const RunConfig& c) {
  compression::StaticPlannerConfig planner;
  const auto names = split_names(c.compress.stages);
  if (!names.empty() && c.compress.reduction.criterion != "none")
    throw ConfigError(
        "compress.stages and compress.criterion: give one method in [compress] or named stages "
        "in compress.stages, not both (make the [compress] method a stage of its own)");
  if (names.empty() && c.compress.reduction.criterion != "none")
    planner.stages.push_back({"compress", stage_config(c.compress, "compress")});
  for (const auto& name : names) {
    const auto it = c.compress.stage.find(name);
    if (it == c.compress.stage.end())
      throw ConfigError("compress.stages: stage '" + name + "' has no [stage." + name +
                        "] options");
    planner.stages.push_back({name, stage_config(it->second, "stage." + name)});
  }
  planner.gate = c.gate;
  planner.gate.layers = parse_list<int64_t>(c.gate_layers, "gate.layers");
  planner.statistics = c.monitor.statistics;
  return planner;
}

compression::TokenEvolutionOptions monitor_options(const RunConfig& c) {
  compression::TokenEvolutionOptions options;
  options.ema_decay = c.monitor.ema;
  options.taylor = c.monitor.taylor;
  return options;
}

compression::CoSchedulerConfig coscheduler_config(const RunConfig& c, int64_t depth) {
  auto config = c.coschedule.planner;
  config.budget.total_steps = c.train.steps;
  config.seed = c.train.seed;
  const std::string& text = c.coschedule.protected_layers;
  config.allocator.protected_layers.clear();
  if (text == "auto") {
    for (int64_t layer : {int64_t{0}, int64_t{1}, depth - 1})
      if (layer >= 0 && layer < depth &&
          std::find(config.allocator.protected_layers.begin(),
                    config.allocator.protected_layers.end(),
                    layer) == config.allocator.protected_layers.end())
        config.allocator.protected_layers.push_back(layer);
  } else if (text != "none" && !text.empty()) {
    config.allocator.protected_layers = parse_list<int64_t>(text, "coschedule.protected");
  }
  const double k = c.coschedule.min_capacity;
  const double level = k * static_cast<double>(config.allocator.grid);
  if (!(k > 0.0 && k <= 1.0) || std::abs(level - std::round(level)) > 1e-9)
    throw ConfigError(
        "coschedule.min_capacity: expected a capacity in (0, 1] on the grid of "
        "coschedule.grid = " +
        str(config.allocator.grid) + " steps (a multiple of 1/" + str(config.allocator.grid) +
        "), got " + str(k));
  config.allocator.min_protected_level = static_cast<int64_t>(std::llround(level));
  config.capacities = parse_list<double>(c.coschedule.capacities, "coschedule.capacities");
  return config;
}

void validate(const RunConfig& c, int world_size) {
  for (const auto& section : run_option_sections()) {
    const std::string error = section.options.first_error(section.name, c);
    if (!error.empty()) throw ConfigError(error);
  }
  // Checks that relate several options.
  require(c.data.synthetic != "none" || !c.data.train.empty(),
          "data.train: no training data; give --data.train FILE (from `winnow prepare`) or "
          "--data.synthetic");
  require(c.model.dim % c.model.heads == 0, "model.dim: expected a multiple of model.heads (" +
                                                str(c.model.heads) + "), got " + str(c.model.dim));
  try {
    c.optim.validate();
    c.train.validate(world_size);
    c.distill.validate();
    c.compress.flops.validate();
    train::LrSchedule schedule{c.optim.lr, c.train.warmup_steps, c.train.steps,
                               c.train.min_lr_ratio};
    schedule.validate();
  } catch (const c10::Error& e) {
    throw ConfigError(e.msg());
  }
}

std::string to_ini(const RunConfig& c) {
  std::ostringstream out;
  out << "# effective winnow configuration (load with --config)\n";
  for (const auto& section : run_option_sections()) {
    out << "\n[" << section.name << "]\n";
    section.options.write_ini(c, out);
    if (section.name != "compress") continue;
    stage_options().write_ini(c.compress, out);
    for (const auto& name : split_names(c.compress.stages)) {
      const auto it = c.compress.stage.find(name);
      if (it == c.compress.stage.end()) continue;
      out << "\n[stage." << name << "]\n";
      stage_options().write_ini(it->second, out);
    }
  }
  return out.str();
}

}  // namespace winnow::launch
