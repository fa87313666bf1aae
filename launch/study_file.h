// Study files: an experiment as one INI file (a base config, fixed options, a grid over options,
// named variants), its expansion into cells (one training run each, with a stable directory
// name), and the check of every cell's options with winnow's own config parsing.
//
//   [study]
//   config = launch/configs/demo.ini   # the base config of every cell (--config)
//   dir = runs/pld-fashion-mnist        # the study directory (default runs/<file name>)
//   ranks = 2                           # MPI ranks per cell (default 1; --ranks wins)
//   init_from = runs/dense/model.h5     # weights every cell starts from (train --init-from)
//   [options]                           # options every cell gets
//   train.steps = 700
//   [grid]                              # every combination; the last key varies fastest
//   train.seed = 0 1 2                  # values separated by spaces or commas;
//   compress.keep = "0.9,0.7" 0.5       # quote a value that is itself a list
//   [variant.dense]                     # named variants: options set together
//   [variant.pld]
//   gate.kind = pld
//
// Cells are variants x grid, variants outermost; an option in [grid] overrides a variant's, a
// variant's overrides [options]. A cell's name is its variant, then key=value for every grid
// option (the key's last component, the whole dotted key where two would clash), e.g.
// `pld,keep=0.5,seed=1`; characters other than letters, digits and ._+- become '_'.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace winnow::launch {

// An option and its value, as in a config file: {"train.seed", "1"}.
using OptionValue = std::pair<std::string, std::string>;

// One [grid] option and the values it takes, in file order.
struct GridAxis {
  std::string key;
  std::vector<std::string> values;
};

// A [variant.NAME] section: options set together.
struct StudyVariant {
  std::string name;
  std::vector<OptionValue> options;
};

struct StudyFile {
  std::string source;       // the file it was read from (for messages)
  std::string text;         // its text, copied into the study directory
  std::string base_config;  // [study] config
  std::string dir;          // [study] dir
  int ranks = 1;            // [study] ranks
  std::string init_from;    // [study] init_from: `--init-from` of every cell that starts afresh
  std::vector<OptionValue> options;
  std::vector<GridAxis> grid;
  std::vector<StudyVariant> variants;
};

// One training run of a study.
struct StudyCell {
  std::string name;                  // its directory under the study directory
  std::string variant;               // "" when the study has no variants
  std::vector<OptionValue> grid;     // its value of each grid option, in grid order
  std::vector<OptionValue> options;  // every option it sets ([options] < variant < grid)
};

// The grid option whose values are seeds: the report averages over it.
inline const char* const kSeedOption = "train.seed";

// Parses a study file's text; `source` names it in errors. Throws ConfigError for an unknown
// section or [study] key, a line that is not `key = value`, an option given twice in one section,
// a grid option without values or with a value twice, or a study with neither grid nor variants.
StudyFile parse_study_file(const std::string& text, const std::string& source);
// Reads and parses a study file; the default study directory is runs/<file name without .ini>.
StudyFile read_study_file(const std::string& path);

// The cells of a study, variants outermost, then the grid with its last option fastest. Throws
// ConfigError when two cells would share a directory name.
std::vector<StudyCell> expand_cells(const StudyFile& study);

// The command-line options of a cell's `winnow train`, after the base config and the run
// directory: --key=value for each of the cell's options.
std::vector<std::string> cell_train_options(const StudyCell& cell);

// Parses and validates every cell's full option set as `winnow train` would on `ranks` ranks
// (unknown option, bad value, failed check, unknown token criterion or strategy), before any run
// starts. Throws ConfigError naming the study file, the cell and the option.
void validate_cells(const StudyFile& study, const std::vector<StudyCell>& cells, int ranks);

}  // namespace winnow::launch
