// Running a study: its cells one after another, each a `winnow train` process (through
// launch/winnow-mpirun on several ranks) whose output goes to the cell's log, resumable.
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
// --config BASE --train.run_dir DIR [--resume DIR] --key=value...
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

}  // namespace winnow::launch
