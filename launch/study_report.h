// The report of a study: each finished cell's summary.json, grouped over seeds (every grid value
// but train.seed), as mean ± std of the final eval quality, training FLOPs, training seconds,
// measured inference throughput and peak activation memory, written as CSV and Markdown, with the
// per-layer kept tokens and kept positions, and plots drawn by launch/studies/plot_study.py.
#pragma once

#include <cstdint>
#include <limits>
#include <ostream>
#include <string>
#include <vector>

#include "launch/study_file.h"

namespace winnow::launch {

// What a report needs of a run's summary.json.
// The measurements are NaN (and the lists empty) in summaries without them (runs before they
// existed, or with train.inference_rounds = 0).
struct RunSummary {
  std::string metric;  // eval_accuracy (images) or eval_loss (text: summary has eval_perplexity)
  double metric_value = 0.0;
  double training_flops = 0.0;
  double train_seconds = 0.0;
  double inference_samples_per_second = kNotMeasured;  // the evaluation plan's, median of rounds
  double dense_inference_samples_per_second = kNotMeasured;
  double inference_speedup = kNotMeasured;      // plan / dense, paired by round
  double peak_activation_bytes = kNotMeasured;  // largest training step
  // Per layer: tokens per sample entering attention over dense_tokens; and the fraction of
  // samples keeping each original position at each layer (layers × dense_tokens, row-major).
  std::vector<double> kept_token_fraction;
  std::vector<double> kept_position_fraction;
  int64_t dense_tokens = 0;
  std::vector<int64_t> patch_grid;  // {rows, columns} for images, empty for sequences

  static constexpr double kNotMeasured = std::numeric_limits<double>::quiet_NaN();
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
  MeanStd inference_samples_per_second, dense_inference_samples_per_second, inference_speedup;
  MeanStd peak_activation_bytes;
  // Means over the seeds of RunSummary's lists (empty unless every seed has them, equally long).
  std::vector<double> kept_token_fraction, kept_position_fraction;
  int64_t dense_tokens = 0;
  std::vector<int64_t> patch_grid;
};

// The group of `cell` and its values: all grid values but train.seed.
CellResult cell_group(const StudyCell& cell, bool has_variants);

// Groups the results in order of first appearance; throws std::runtime_error when the cells
// report different metrics (images and text in one study).
std::vector<StudyGroup> aggregate(const std::vector<CellResult>& results);

// The table: one header line and one line per group. Columns: group, each group value's key,
// seeds, metric, then mean and std (`<name>_mean`, `<name>_std`) of metric, training_flops,
// train_seconds, inference_samples_per_second, dense_inference_samples_per_second,
// inference_speedup and peak_activation_bytes (nan where not measured).
void write_report_csv(const std::vector<StudyGroup>& groups, std::ostream& out);
// The same as a Markdown table, mean ± std (accuracy in %, memory in MiB).
void write_report_markdown(const std::vector<StudyGroup>& groups, std::ostream& out);
// Per group and layer, the mean kept-token fraction: columns group, layer, kept_token_fraction.
void write_layers_csv(const std::vector<StudyGroup>& groups, std::ostream& out);
// Per group, layer and original position, the mean fraction of samples keeping it: columns group,
// layer, position, row, column, kept_fraction; row and column place image patches (positions
// 1.. after the CLS token) on the patch grid and are empty for CLS and for sequences.
void write_positions_csv(const std::vector<StudyGroup>& groups, std::ostream& out);

// `winnow study report DIR`: reads DIR/study.ini and every cell's summary.json, writes
// DIR/report.csv and DIR/report.md (and prints the Markdown), DIR/report_layers.csv and
// DIR/report_positions.csv when the summaries have per-layer measurements, then the plots
// DIR/report_flops.*, report_time.*, report_inference.*, report_kept_tokens.* and
// report_kept_positions.* (PNG and SVG; those whose data exist) when python3 with matplotlib is
// available ($WINNOW_PYTHON, python3, or /usr/bin/python3). Cells without a summary.json are
// listed and left out. Returns 0, or 1 when no cell has finished.
int report_study(const std::string& dir, const std::string& plot_script);

}  // namespace winnow::launch
