// The report of a study: each finished cell's summary.json, grouped over seeds (every grid value
// but train.seed), as mean ± std of the final eval quality, training FLOPs and training seconds,
// written as CSV and Markdown, with plots drawn by launch/studies/plot_study.py.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "launch/study_file.h"

namespace winnow::launch {

// What a report needs of a run's summary.json.
struct RunSummary {
  std::string metric;  // eval_accuracy (images) or eval_loss (text: summary has eval_perplexity)
  double metric_value = 0.0;
  double training_flops = 0.0;
  double train_seconds = 0.0;
};

// Reads `path` (a summary.json written by winnow train) with a JSON parser; throws
// std::runtime_error naming the file and what was expected.
RunSummary read_run_summary(const std::string& path);

// A finished cell: its group's name and values, and its summary.
struct CellResult {
  std::string group;                      // cell name without the seed ("all" if nothing else)
  std::vector<OptionValue> group_values;  // variant (when there are variants) and grid values
  RunSummary summary;
};

struct MeanStd {
  double mean = 0.0;
  double std = 0.0;  // sample standard deviation (n - 1); 0 for one value
};
MeanStd mean_std(const std::vector<double>& values);

// One row of the report: a group of cells that differ only in their seed.
struct StudyGroup {
  std::string name;
  std::vector<OptionValue> values;
  int seeds = 0;
  std::string metric;
  MeanStd metric_value, training_flops, train_seconds;
};

// The group of `cell` and its values: all grid values but train.seed.
CellResult cell_group(const StudyCell& cell, bool has_variants);

// Groups the results in order of first appearance; throws std::runtime_error when the cells
// report different metrics (images and text in one study).
std::vector<StudyGroup> aggregate(const std::vector<CellResult>& results);

// The table: one header line and one line per group. Columns: group, each group value's key,
// seeds, metric, metric_mean, metric_std, training_flops_mean, training_flops_std,
// train_seconds_mean, train_seconds_std.
void write_report_csv(const std::vector<StudyGroup>& groups, std::ostream& out);
// The same as a Markdown table, mean ± std (accuracy in %).
void write_report_markdown(const std::vector<StudyGroup>& groups, std::ostream& out);

// `winnow study report DIR`: reads DIR/study.ini and every cell's summary.json, writes
// DIR/report.csv and DIR/report.md (and prints the Markdown), then the plots DIR/report_flops.*
// and DIR/report_time.* (PNG and SVG) when python3 with matplotlib is available ($WINNOW_PYTHON,
// python3, or /usr/bin/python3). Cells without a
// summary.json are listed and left out. Returns 0, or 1 when no cell has finished.
int report_study(const std::string& dir, const std::string& plot_script);

}  // namespace winnow::launch
