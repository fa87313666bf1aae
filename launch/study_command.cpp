// `winnow study run FILE` and `winnow study report DIR`: experiments (a model under many methods,
// budgets and seeds) as one study file, run resumably and tabulated over seeds.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "launch/commands.h"
#include "launch/config.h"
#include "launch/study_file.h"
#include "launch/study_report.h"
#include "launch/study_run.h"

namespace winnow::launch {
namespace po = boost::program_options;

namespace {

const char* const kStudyHelp =
    R"HELP(usage: winnow study run FILE [--ranks N] [--dry-run] [--dir DIR]
       winnow study run FILE --slurm [--wait] [--sbatch ARG]... [--ranks N] [--dry-run]
       winnow study report DIR

Runs an experiment (one model under several methods, budgets and seeds) from one study file:
every combination of the [grid] values, for each [variant.NAME], is a cell, trained by
`winnow train --config BASE --train.run_dir DIR/CELL --key=value ...` one after another.

Study file (INI):
  [study]
  config = launch/configs/demo.ini   # base config of every cell (paths: from the current dir)
  dir = runs/pld-fashion-mnist        # study directory (default runs/<file name>)
  ranks = 2                           # MPI ranks per cell (default 1; --ranks wins)
  init_from = runs/dense/model.h5     # optional: every new cell starts from these weights
                                      #   (train --init-from; a resumed cell from its checkpoint)
  [options]                           # options of every cell
  train.eval_every = 0
  [grid]                              # every combination; the last option varies fastest
  train.seed = 0 1 2                  # values separated by spaces or commas; a value that is
  compress.keep = "0.9,0.7" 0.5       #   itself a list in double quotes
  [variant.dense]                     # named variants: options set together (may be empty)
  [variant.pld]
  gate.kind = pld
  gate.theta_bar = 0.5

Precedence: [grid] over the variant over [options] over the base config. A cell's directory is
its variant, then key=value per grid option (the key's last component), e.g.
runs/pld-fashion-mnist/pld,seed=1. Before anything runs, every cell's options are parsed and
validated as `winnow train` would; a bad one is refused naming the cell and the option.

Resuming: a cell with summary.json is done and skipped; one with checkpoints but no summary.json
(interrupted) continues with --resume; others start afresh. A failed cell is reported with the
end of its log (DIR/CELL/train.log, kept and appended to) and the study goes on; the exit code is
then 1. SIGINT/SIGTERM stop the running cell with a checkpoint and end the study (exit 128 + the
signal): run the same command again to continue.

Slurm (--slurm): every cell that is not done goes to Slurm as one job array through the batch
template launch/slurm/winnow.sbatch: array task i trains cell i of DIR/slurm-cells.txt (every
cell, one a line) on N tasks (--ntasks=N) with its arguments from DIR/CELL/train.args, appends
its output to DIR/CELL/train.log, resumes an interrupted cell from its checkpoints, and on
preemption checkpoints and requeues itself (docs/launching.md). Run the same command again to
submit the cells that failed or were cancelled; `study report` once the array has ended.

report: one row per group of cells that differ only in train.seed: seeds, mean ± std of the
final eval accuracy (images) or eval loss (text), training FLOPs and training seconds, written to
DIR/report.csv and DIR/report.md; with python3-matplotlib also DIR/report_flops.{png,svg} and
DIR/report_time.{png,svg} (quality vs training FLOPs and time, error bars over seeds).

options of run:
  --ranks N      MPI ranks per cell: N > 1 runs each cell through launch/winnow-mpirun
  --dry-run      validate, then print each cell's state and command; run nothing
  --dir DIR      study directory (overrides [study] dir)
  --launcher P   the mpirun wrapper (default: $WINNOW_MPIRUN_WRAPPER, else launch/winnow-mpirun
                 of this source tree)
  --slurm        submit the cells to Slurm as one job array instead of running them here
  --wait         with --slurm: wait until the array has ended (sbatch --wait), then say which
                 cells finished (exit 1 when one did not)
  --sbatch ARG   with --slurm: one more sbatch option, repeatable, after winnow's own (the job
                 name, --ntasks, --array, --output), e.g. --sbatch=--time=2:00:00
                 --sbatch=--cpus-per-task=2 --sbatch=--partition=gpu; not --array or --ntasks
  --template P   with --slurm: the batch template (default: launch/slurm/winnow.sbatch of
                 this source tree)
)HELP";

std::string this_executable() {
  std::error_code error;
  const auto path = std::filesystem::read_symlink("/proc/self/exe", error);
  if (error) throw std::runtime_error("cannot find the winnow executable (/proc/self/exe)");
  return path.string();
}

std::string default_launcher() {
  if (const char* env = std::getenv("WINNOW_MPIRUN_WRAPPER")) return env;
  return WINNOW_SOURCE_DIR "/launch/winnow-mpirun";
}

int study_run(const Args& args) {
  std::string file, dir, launcher = default_launcher();
  int ranks = 0;
  bool dry_run = false, to_slurm = false;
  StudySlurmOptions slurm;
  slurm.batch_template = WINNOW_SOURCE_DIR "/launch/slurm/winnow.sbatch";
  po::options_description options;
  options.add_options()("file", po::value(&file))("ranks", po::value(&ranks))(
      "dry-run", po::bool_switch(&dry_run))("dir", po::value(&dir))(
      "launcher", po::value(&launcher))("slurm", po::bool_switch(&to_slurm))(
      "wait", po::bool_switch(&slurm.wait))("sbatch", po::value(&slurm.sbatch_args)->composing())(
      "template", po::value(&slurm.batch_template))("help,h", "");
  po::positional_options_description positional;
  positional.add("file", 1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(options).positional(positional).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw ConfigError(std::string("study run: ") + e.what() +
                      " (expected FILE [--ranks N] [--dry-run] [--dir DIR] [--launcher PATH] "
                      "[--slurm [--wait] [--sbatch ARG]... [--template PATH]])");
  }
  if (vm.count("help")) {
    std::cout << kStudyHelp;
    return 0;
  }
  if (file.empty()) throw ConfigError("study run: expected a study file, got none");
  StudyFile study = read_study_file(file);
  if (!dir.empty()) study.dir = dir;
  if (vm.count("ranks")) {
    if (ranks < 1)
      throw ConfigError("study run: --ranks: expected >= 1, got " + std::to_string(ranks));
    study.ranks = ranks;
  }
  const auto cells = expand_cells(study);
  validate_cells(study, cells, study.ranks);
  StudyRunOptions run;
  run.ranks = study.ranks;
  run.dry_run = dry_run;
  run.winnow = this_executable();
  run.launcher = launcher;
  if (!to_slurm && (slurm.wait || !slurm.sbatch_args.empty() || vm.count("template")))
    throw ConfigError("study run: --wait, --sbatch and --template go with --slurm");
  if (to_slurm) {
    for (const auto& arg : slurm.sbatch_args)
      if (arg.rfind("--array", 0) == 0 || arg.rfind("-a", 0) == 0 || arg.rfind("--ntasks=", 0) == 0)
        throw ConfigError("study run --slurm: --sbatch " + arg +
                          ": expected an option other than --array (the array is the study's "
                          "cells) and --ntasks (give --ranks N)");
    if (access(slurm.batch_template.c_str(), R_OK) != 0)
      throw ConfigError("study run --slurm: expected the batch template at '" +
                        slurm.batch_template + "' (give --template PATH)");
    return submit_study_to_slurm(study, cells, run, slurm);
  }
  if (run.ranks > 1 && access(run.launcher.c_str(), X_OK) != 0)
    throw ConfigError("study run: --ranks " + std::to_string(run.ranks) +
                      " needs the mpirun wrapper, expected an executable at '" + run.launcher +
                      "' (give --launcher PATH)");
  return run_study(study, cells, run);
}

}  // namespace

int study_command(const Args& args) {
  const std::string action = args.empty() ? "" : args[0];
  const Args rest(args.begin() + (args.empty() ? 0 : 1), args.end());
  if (action == "--help" || action == "-h") {
    std::cout << kStudyHelp;
    return 0;
  }
  if (action == "run") return study_run(rest);
  if (action == "report") {
    if (rest.size() == 1 && (rest[0] == "--help" || rest[0] == "-h")) {
      std::cout << kStudyHelp;
      return 0;
    }
    if (rest.size() != 1 || rest[0].rfind("-", 0) == 0)
      throw ConfigError("study report: expected one study directory (study report DIR), got " +
                        std::to_string(rest.size()) + " argument(s)");
    return report_study(rest[0], WINNOW_SOURCE_DIR "/launch/studies/plot_study.py");
  }
  throw ConfigError("study: expected `run FILE` or `report DIR` (see winnow study --help), got '" +
                    action + "'");
}

}  // namespace winnow::launch
