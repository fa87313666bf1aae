// Run configuration: the options tree of a `winnow train|eval|bench` run, its Boost.Program_options
// description (dotted names = INI sections), parsing, validation and printing; the options
// themselves are declared once in launch/run_option_table.cpp.
#pragma once

#include <boost/program_options.hpp>

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "compression/co_scheduler.h"
#include "compression/planner.h"
#include "compression/token_evolution_monitor.h"
#include "train/distillation.h"
#include "train/model_registry.h"
#include "train/optimizer.h"
#include "train/trainer.h"

namespace winnow::launch {

// A user error in the configuration: printed without a backtrace, exit code 2.
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct DataConfig {
  std::string train;               // HDF5 file (winnow.images or winnow.tokens)
  std::string eval;                // HDF5 file; empty = no evaluation
  std::string synthetic = "none";  // none | images | text: generated data, no files
  int64_t synthetic_samples = 4096;
  int64_t context = 128;  // text: tokens per sample (window length)
  int64_t prefetch = 2;   // batches prepared ahead by the loader thread
};

struct DistConfig {
  std::string backend = "auto";  // local | mpi | nccl | auto
  int64_t threads = 0;           // intra-op threads per rank; 0 = cores / ranks on this node
  double timeout = 600.0;        // seconds a collective may wait before the job ends; 0 = forever
};

// One stage of token reduction (compression::ReductionConfig) with its lists as text: the
// [compress] section, or a [stage.NAME] section. Both take the same keys.
struct StageSection {
  compression::ReductionConfig reduction;
  std::string layers;        // "1,2,5" or "" (default layers)
  std::string keep = "0.7";  // "0.7" or one value per layer: "0.9,0.8,0.7"
};

// [compress]: one method directly (criterion, strategy, ...), or several named stages
// (compress.stages = pool,tome with sections [stage.pool], [stage.tome]), which the static
// planner applies in order.
struct CompressConfig : StageSection {
  std::string stages;                         // "" or stage names, comma-separated
  train::FlopsRegularizerOptions flops;       // target_flops, flops_loss (learned thresholds)
  std::map<std::string, StageSection> stage;  // by name, for each name in `stages`
};

// [monitor]: token-evolution statistics per block (compression::TokenEvolutionMonitor).
struct MonitorConfig {
  bool statistics = false;  // collect them at every training step (logged every log_every)
  bool taylor = false;      // also the Taylor skip saliency from backward
  double ema = 0.99;        // EMA decay across steps
};

// [coschedule]: the co-scheduler (compression::CoScheduler), a closed-loop planner that replaces
// the static [compress]/[gate] plans. Layer lists and capacities are text here, resolved against
// the model by coscheduler_config().
struct CoScheduleConfig {
  compression::CoSchedulerConfig planner;
  std::string protected_layers = "auto";  // auto (first two and last) | none | a list, e.g. 0,5
  double min_capacity = 0.5;              // of protected layers, on the grid
  std::string capacities;                 // starting capacities per layer ("" = dense)
};

// [checkpoint]: when and where checkpoints are written (train::CheckpointOptions), plus fault
// injection for the crash tests.
struct CheckpointConfig {
  std::string dir = "auto";  // auto = <train.run_dir>/checkpoints (none without a run dir); none
  int64_t every = 500;
  double minutes = 30.0;
  int64_t keep = 3;
  bool at_end = true;
  std::string kill_stage = "none";  // testing: none | writing | before_rename | before_pointer
  int64_t kill_step = 0;            // testing: SIGKILL this process while saving this step
};

struct RunConfig {
  DataConfig data;
  CompressConfig compress;
  compression::GateConfig gate;
  std::string gate_layers;  // gate.layers as text
  MonitorConfig monitor;
  CoScheduleConfig coschedule;
  train::ModelSpec model;  // [model]; its data-derived fields are filled by open_run_data
  train::OptimizerOptions optim;
  train::TrainerOptions train;
  train::DistillationOptions distill;
  DistConfig dist;
  CheckpointConfig checkpoint;
};

// All run options with their defaults and meaning (the option table), bound to `config`'s fields;
// one [stage.NAME] group per stage already in config.compress.stage.
boost::program_options::options_description run_options(RunConfig& config);

// Parses `args` (after the subcommand), then the INI file named by --config (command line wins).
// Throws ConfigError for unknown options, bad values or a missing config file.
// `extra` holds subcommand-specific options; `help` is set when --help was given. `base_ini`, when
// given, is an INI text read last (lowest priority), e.g. the config stored with saved weights.
void parse_run_config(const std::vector<std::string>& args,
                      boost::program_options::options_description& extra, RunConfig& config,
                      bool& help, const std::string& base_ini = {});

// Range and consistency checks of everything that does not need the data: every option's own
// check from the table, then the checks that relate several options; throws ConfigError.
void validate(const RunConfig& config, int world_size);

// compress.*, stage.*.*, gate.* and monitor.* as the static planner's configuration (lists
// parsed); throws ConfigError naming the option.
compression::StaticPlannerConfig planner_config(const RunConfig& config);
compression::TokenEvolutionOptions monitor_options(const RunConfig& config);
// coschedule.* for a model of `depth` blocks trained for train.steps (protected layers and the
// minimum capacity resolved); throws ConfigError naming the option.
compression::CoSchedulerConfig coscheduler_config(const RunConfig& config, int64_t depth);

// The effective configuration as an INI file (loadable with --config): every stored option of the
// table, section by section, doubles with enough digits to read back exactly.
std::string to_ini(const RunConfig& config);

}  // namespace winnow::launch
