// Running a study: its cells one after another, each a `winnow train` process (through
// launch/winnow-mpirun on several ranks) whose output goes to the cell's log, resumable; or
// submitted to Slurm as one job array through the batch template (launch/slurm/winnow.sbatch).
#pragma once

#include <string>
#include <vector>

#include "launch/study_file.h"

namespace winnow::launch {

struct StudyRunOptions {
  int ranks = 1;         // MPI ranks per cell; 1 runs the winnow executable directly
  bool dry_run = false;  // print each cell's state and command, run nothing
  std::string winnow;    // the winnow executable
  std::string launcher;  // launch/winnow-mpirun, used when ranks > 1
};

// What a cell's directory says about it.
enum class CellState {
  kNew,          // no summary.json, no checkpoint: train from the start
  kInterrupted,  // checkpoints but no summary.json: train --resume
  kDone,         // summary.json: skipped
};
CellState cell_state(const std::string& cell_dir);
const char* to_string(CellState state);

// The command line that trains `cell` in `cell_dir`: [launcher --winnow W -n N --] winnow train
// --config BASE --train.run_dir DIR [--resume DIR | --init-from INIT] --key=value...
std::vector<std::string> cell_command(const StudyFile& study, const StudyCell& cell,
                                      const std::string& cell_dir, CellState state,
                                      const StudyRunOptions& options);

// Runs every cell that is not done, in order, each writing STUDY_DIR/CELL/ with its output in
// STUDY_DIR/CELL/train.log (appended: an interrupted attempt's lines stay), and prints a progress
// line after each cell (done / total, failed, ETA from the mean time of the cells run so far).
// A failed cell is reported with the end of its log and the others go on. SIGINT/SIGTERM are
// passed to the running cell (which checkpoints and stops), then the study stops. Returns 0 when
// every cell has its summary.json, 1 when one failed, 128 + the signal when stopped.
int run_study(const StudyFile& study, const std::vector<StudyCell>& cells,
              const StudyRunOptions& options);

// How a study goes to Slurm.
struct StudySlurmOptions {
  std::string sbatch = "sbatch";  // the sbatch executable (searched on PATH)
  std::string batch_template;     // launch/slurm/winnow.sbatch
  std::vector<std::string>
      sbatch_args;    // passed to sbatch before the template (e.g. --time=2:00:00)
  bool wait = false;  // sbatch --wait: return when every array task has ended
};

// Submits every cell that is not done as one Slurm job array: task i trains cell i of
// STUDY_DIR/slurm-cells.txt (one cell directory a line, every cell of the study, so indices are
// stable across submissions) with the arguments in CELL/train.args (one a line) on `ranks` tasks
// of the batch template, which appends the output to CELL/train.log and resumes an interrupted
// cell from its checkpoints. Returns 0 once submitted (with wait: when every cell has its
// summary.json), 1 when sbatch failed (or, with wait, a cell did not finish).
int submit_study_to_slurm(const StudyFile& study, const std::vector<StudyCell>& cells,
                          const StudyRunOptions& options, const StudySlurmOptions& slurm);

}  // namespace winnow::launch
