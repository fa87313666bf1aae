// Shared option parsing of the benchmark subcommands.
#include "launch/bench_options.h"

#include <algorithm>
#include <iostream>

namespace winnow::launch {
namespace po = boost::program_options;

void add_bench_steps(po::options_description& extra, BenchSteps& steps, const std::string& unit) {
  const std::string timed = "timed " + unit + " (>= 1)";
  const std::string untimed = "untimed " + unit + " first (>= 0)";
  extra.add_options()("bench.steps", po::value(&steps.timed)->default_value(steps.timed),
                      timed.c_str())(
      "bench.warmup", po::value(&steps.warmup)->default_value(steps.warmup), untimed.c_str());
}

bool parse_bench_config(const Args& args, po::options_description& extra, const BenchSteps& steps,
                        RunConfig& config, const std::string& usage, const std::string& command) {
  config.data.synthetic = "images";  // benchmarks need no files unless data.train is given
  bool help = false;
  parse_run_config(args, extra, config, help);
  if (help) {
    std::cout << usage << "\n\n" << extra << run_options(config) << std::endl;
    return false;
  }
  if (!config.data.train.empty()) config.data.synthetic = "none";
  if (steps.timed < 1 || steps.warmup < 0)
    throw ConfigError(command + ": expected bench.steps >= 1 and bench.warmup >= 0, got " +
                      std::to_string(steps.timed) + " and " + std::to_string(steps.warmup));
  config.train.steps = steps.warmup + steps.timed;
  config.train.warmup_steps = std::min(config.train.warmup_steps, config.train.steps);
  return true;
}

}  // namespace winnow::launch
