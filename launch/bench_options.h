// What the benchmark subcommands (bench, bench-tokens, bench-dist) parse the same way: timed and
// untimed step counts, and a run configuration on synthetic images unless data.train is given.
#pragma once

#include <boost/program_options.hpp>

#include <cstdint>
#include <string>

#include "launch/commands.h"
#include "launch/config.h"

namespace winnow::launch {

struct BenchSteps {
  int64_t timed = 10;  // bench.steps
  int64_t warmup = 3;  // bench.warmup
};

// Adds bench.steps and bench.warmup to `extra`; `unit` names what is counted ("steps", "rounds").
void add_bench_steps(boost::program_options::options_description& extra, BenchSteps& steps,
                     const std::string& unit);

// Parses `args` into `config` (synthetic images unless data.train is set). With --help, prints
// `usage`, `extra` and every run option and returns false; otherwise checks bench.steps >= 1 and
// bench.warmup >= 0 (ConfigError naming `command`), sets train.steps to warmup + timed steps
// (the LR schedule's length) and returns true.
bool parse_bench_config(const Args& args, boost::program_options::options_description& extra,
                        const BenchSteps& steps, RunConfig& config, const std::string& usage,
                        const std::string& command);

}  // namespace winnow::launch
