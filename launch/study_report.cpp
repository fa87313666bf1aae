// The report of a study: summaries read with nlohmann::json, grouped over seeds, written as CSV
// and Markdown, plotted by a Python script when matplotlib is there.
#include "launch/study_report.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <limits>
#include <map>
#include <sstream>
#include <stdexcept>

#include "data/atomic_file.h"

namespace winnow::launch {

namespace fs = std::filesystem;

namespace {

double number_of(const nlohmann::json& summary, const std::string& key, const std::string& path) {
  if (!summary.contains(key))
    throw std::runtime_error(path + ": expected a number '" + key + "', got none");
  const auto& value = summary.at(key);
  if (value.is_null()) return std::numeric_limits<double>::quiet_NaN();  // NaN is written as null
  if (!value.is_number())
    throw std::runtime_error(path + ": expected '" + key + "' to be a number, got " + value.dump());
  return value.get<double>();
}

// A number that older summaries (or unmeasured runs) lack: NaN when absent.
double optional_number(const nlohmann::json& summary, const std::string& key,
                       const std::string& path) {
  return summary.contains(key) ? number_of(summary, key, path)
                               : std::numeric_limits<double>::quiet_NaN();
}

// A list of numbers (null = NaN), empty when absent.
std::vector<double> optional_numbers(const nlohmann::json& summary, const std::string& key,
                                     const std::string& path) {
  std::vector<double> values;
  if (!summary.contains(key)) return values;
  const auto& list = summary.at(key);
  if (!list.is_array())
    throw std::runtime_error(path + ": expected '" + key + "' to be a list of numbers, got " +
                             list.dump());
  for (const auto& value : list) {
    if (value.is_null()) {
      values.push_back(std::numeric_limits<double>::quiet_NaN());
    } else if (value.is_number()) {
      values.push_back(value.get<double>());
    } else {
      throw std::runtime_error(path + ": expected '" + key + "' to hold numbers, got " +
                               value.dump());
    }
  }
  return values;
}

// The elementwise mean of equally long lists; empty unless every list has the same length > 0.
std::vector<double> mean_of_lists(const std::vector<const std::vector<double>*>& lists) {
  if (lists.empty() || lists.front()->empty()) return {};
  std::vector<double> mean(lists.front()->size(), 0.0);
  for (const auto* list : lists) {
    if (list->size() != mean.size()) return {};
    for (size_t i = 0; i < mean.size(); ++i) mean[i] += (*list)[i];
  }
  for (double& value : mean) value /= static_cast<double>(lists.size());
  return mean;
}

std::string number_text(double value) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", value);
  return buf;
}

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\n") == std::string::npos) return text;
  std::string out = "\"";
  for (char c : text) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

}  // namespace

RunSummary read_run_summary(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path);
  nlohmann::json summary;
  try {
    summary = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(path + ": expected a JSON object (a winnow train summary), got a " +
                             "parse error: " + e.what());
  }
  if (!summary.is_object())
    throw std::runtime_error(path + ": expected a JSON object, got " + summary.dump());
  RunSummary run;
  run.metric = summary.contains("eval_perplexity") ? "eval_loss" : "eval_accuracy";
  run.metric_value = number_of(summary, run.metric, path);
  run.training_flops = number_of(summary, "training_flops", path);
  run.train_seconds = number_of(summary, "train_seconds", path);
  run.inference_samples_per_second = optional_number(summary, "inference_samples_per_second", path);
  run.dense_inference_samples_per_second =
      optional_number(summary, "dense_inference_samples_per_second", path);
  run.inference_speedup = optional_number(summary, "inference_speedup", path);
  run.peak_activation_bytes = optional_number(summary, "peak_activation_bytes", path);
  const double dense_tokens = optional_number(summary, "dense_tokens", path);
  if (dense_tokens > 0) {
    run.dense_tokens = static_cast<int64_t>(dense_tokens);
    for (double tokens : optional_numbers(summary, "kept_tokens_per_layer", path))
      run.kept_token_fraction.push_back(tokens / dense_tokens);
    run.kept_position_fraction = optional_numbers(summary, "kept_position_fraction", path);
    for (double side : optional_numbers(summary, "patch_grid", path))
      run.patch_grid.push_back(static_cast<int64_t>(side));
  }
  return run;
}

MeanStd mean_std(const std::vector<double>& values) {
  MeanStd result;
  if (values.empty()) return result;
  double sum = 0.0;
  for (double v : values) sum += v;
  result.mean = sum / static_cast<double>(values.size());
  if (values.size() < 2) return result;
  double squares = 0.0;
  for (double v : values) squares += (v - result.mean) * (v - result.mean);
  result.std = std::sqrt(squares / static_cast<double>(values.size() - 1));
  return result;
}

CellResult cell_group(const StudyCell& cell, bool has_variants) {
  CellResult result;
  if (has_variants) result.group_values.emplace_back("variant", cell.variant);
  // The cell name's components, one per group value (the variant, then key=value).
  std::vector<std::string> parts;
  std::stringstream name(cell.name);
  std::string part;
  while (std::getline(name, part, ',')) parts.push_back(part);
  size_t index = has_variants ? 1 : 0;
  if (has_variants) result.group = parts[0];
  for (const auto& [key, value] : cell.grid) {
    const std::string& shown = parts[index++];
    if (key == kSeedOption) continue;
    result.group_values.emplace_back(key, value);
    result.group += (result.group.empty() ? "" : ",") + shown;
  }
  if (result.group.empty()) result.group = "all";
  return result;
}

std::vector<StudyGroup> aggregate(const std::vector<CellResult>& results) {
  std::vector<std::string> order;
  std::map<std::string, std::vector<const CellResult*>> members;
  for (const auto& r : results) {
    if (r.summary.metric != results.front().summary.metric)
      throw std::runtime_error("expected one metric for the whole study, got " +
                               results.front().summary.metric + " and " + r.summary.metric +
                               " (images and text in one study)");
    if (members[r.group].empty()) order.push_back(r.group);
    members[r.group].push_back(&r);
  }
  std::vector<StudyGroup> groups;
  for (const auto& name : order) {
    const auto& cells = members[name];
    std::vector<double> metric, flops, seconds, inference, dense_inference, speedup, peak;
    std::vector<const std::vector<double>*> kept_tokens, kept_positions;
    for (const auto* c : cells) {
      const RunSummary& run = c->summary;
      metric.push_back(run.metric_value);
      flops.push_back(run.training_flops);
      seconds.push_back(run.train_seconds);
      inference.push_back(run.inference_samples_per_second);
      dense_inference.push_back(run.dense_inference_samples_per_second);
      speedup.push_back(run.inference_speedup);
      peak.push_back(run.peak_activation_bytes);
      kept_tokens.push_back(&run.kept_token_fraction);
      kept_positions.push_back(&run.kept_position_fraction);
    }
    StudyGroup group;
    group.name = name;
    group.values = cells.front()->group_values;
    group.seeds = static_cast<int>(cells.size());
    group.metric = cells.front()->summary.metric;
    group.metric_value = mean_std(metric);
    group.training_flops = mean_std(flops);
    group.train_seconds = mean_std(seconds);
    group.inference_samples_per_second = mean_std(inference);
    group.dense_inference_samples_per_second = mean_std(dense_inference);
    group.inference_speedup = mean_std(speedup);
    group.peak_activation_bytes = mean_std(peak);
    group.kept_token_fraction = mean_of_lists(kept_tokens);
    group.kept_position_fraction = mean_of_lists(kept_positions);
    group.dense_tokens = cells.front()->summary.dense_tokens;
    group.patch_grid = cells.front()->summary.patch_grid;
    groups.push_back(std::move(group));
  }
  return groups;
}

void write_report_csv(const std::vector<StudyGroup>& groups, std::ostream& out) {
  out << "group";
  if (!groups.empty())
    for (const auto& [key, value] : groups.front().values) out << "," << csv_field(key);
  out << ",seeds,metric";
  for (const char* name :
       {"metric", "training_flops", "train_seconds", "inference_samples_per_second",
        "dense_inference_samples_per_second", "inference_speedup", "peak_activation_bytes"})
    out << "," << name << "_mean," << name << "_std";
  out << "\n";
  for (const auto& g : groups) {
    out << csv_field(g.name);
    for (const auto& [key, value] : g.values) out << "," << csv_field(value);
    out << "," << g.seeds << "," << g.metric;
    for (const MeanStd& m :
         {g.metric_value, g.training_flops, g.train_seconds, g.inference_samples_per_second,
          g.dense_inference_samples_per_second, g.inference_speedup, g.peak_activation_bytes})
      out << "," << number_text(m.mean) << "," << number_text(m.std);
    out << "\n";
  }
}

void write_report_markdown(const std::vector<StudyGroup>& groups, std::ostream& out) {
  if (groups.empty()) return;
  const bool accuracy = groups.front().metric == "eval_accuracy";
  const double scale = accuracy ? 100.0 : 1.0;
  // mean ± std with `digits` decimals (fixed), or n/a where not measured.
  auto fixed = [&out](const MeanStd& m, double scale, int digits) {
    if (std::isnan(m.mean)) {
      out << "n/a";
      return;
    }
    out << std::fixed << std::setprecision(digits) << scale * m.mean << " ± " << scale * m.std;
  };
  out << "| group | seeds | " << (accuracy ? "eval accuracy (%)" : "eval loss")
      << " | training FLOPs | training seconds | inference samples/s | dense samples/s "
         "| inference speedup | peak activations (MiB) |\n|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& g : groups) {
    out << "| " << g.name << " | " << g.seeds << " | " << std::fixed
        << std::setprecision(accuracy ? 2 : 4) << scale * g.metric_value.mean << " ± "
        << scale * g.metric_value.std << " | " << std::scientific << std::setprecision(3)
        << g.training_flops.mean << " ± " << std::setprecision(1) << g.training_flops.std << " | "
        << std::fixed << g.train_seconds.mean << " ± " << g.train_seconds.std << " | ";
    fixed(g.inference_samples_per_second, 1.0, 1);
    out << " | ";
    fixed(g.dense_inference_samples_per_second, 1.0, 1);
    out << " | ";
    fixed(g.inference_speedup, 1.0, 2);
    out << " | ";
    fixed(g.peak_activation_bytes, 1.0 / (1024.0 * 1024.0), 2);
    out << " |\n";
  }
  out << std::defaultfloat << std::setprecision(6);
}

void write_layers_csv(const std::vector<StudyGroup>& groups, std::ostream& out) {
  out << "group,layer,kept_token_fraction\n";
  for (const auto& g : groups)
    for (size_t l = 0; l < g.kept_token_fraction.size(); ++l)
      out << csv_field(g.name) << "," << l << "," << number_text(g.kept_token_fraction[l]) << "\n";
}

void write_positions_csv(const std::vector<StudyGroup>& groups, std::ostream& out) {
  out << "group,layer,position,row,column,kept_fraction\n";
  for (const auto& g : groups) {
    const int64_t positions = g.dense_tokens;
    if (positions <= 0 || g.kept_position_fraction.size() % static_cast<size_t>(positions) != 0)
      continue;
    const bool grid =
        g.patch_grid.size() == 2 && g.patch_grid[0] * g.patch_grid[1] + 1 == positions;
    for (size_t i = 0; i < g.kept_position_fraction.size(); ++i) {
      const int64_t layer = static_cast<int64_t>(i) / positions;
      const int64_t position = static_cast<int64_t>(i) % positions;
      out << csv_field(g.name) << "," << layer << "," << position << ",";
      if (grid && position > 0)
        out << (position - 1) / g.patch_grid[1] << "," << (position - 1) % g.patch_grid[1];
      else
        out << ",";
      out << "," << number_text(g.kept_position_fraction[i]) << "\n";
    }
  }
}

int report_study(const std::string& dir, const std::string& plot_script) {
  const std::string study_ini = dir + "/study.ini";
  if (!fs::exists(study_ini))
    throw std::runtime_error(
        "expected a study directory (with study.ini, written by `winnow "
        "study run`), got '" +
        dir + "'");
  std::ifstream in(study_ini);
  std::stringstream text;
  text << in.rdbuf();
  StudyFile study = parse_study_file(text.str(), study_ini);
  const auto cells = expand_cells(study);
  std::vector<CellResult> results;
  std::vector<std::string> missing;
  for (const auto& cell : cells) {
    const std::string summary = dir + "/" + cell.name + "/summary.json";
    if (!fs::exists(summary)) {
      missing.push_back(cell.name);
      continue;
    }
    CellResult result = cell_group(cell, !study.variants.empty());
    result.summary = read_run_summary(summary);
    results.push_back(std::move(result));
  }
  if (!missing.empty()) {
    std::cout << "winnow study report: " << missing.size() << " of " << cells.size()
              << " cell(s) have no summary.json and are left out:";
    for (const auto& name : missing) std::cout << " " << name;
    std::cout << "\n";
  }
  if (results.empty()) {
    std::cout << "winnow study report: no finished cell in " << dir << "; nothing to report"
              << std::endl;
    return 1;
  }
  const auto groups = aggregate(results);
  std::ostringstream csv, markdown;
  write_report_csv(groups, csv);
  write_report_markdown(groups, markdown);
  data::write_file_atomically(dir + "/report.csv", csv.str());
  data::write_file_atomically(dir + "/report.md", markdown.str());
  std::cout << markdown.str() << "\nwrote " << dir << "/report.csv, " << dir << "/report.md";
  // Per-layer data (summaries with inference measurements); stale files of an earlier report go.
  bool layers = false, positions = false;
  for (const auto& g : groups) {
    layers = layers || !g.kept_token_fraction.empty();
    positions = positions || !g.kept_position_fraction.empty();
  }
  for (const auto& [name, present] : {std::make_pair(std::string("layers"), layers),
                                      std::make_pair(std::string("positions"), positions)}) {
    const std::string path = dir + "/report_" + name + ".csv";
    if (!present) {
      fs::remove(path);
      continue;
    }
    std::ostringstream table;
    if (name == "layers")
      write_layers_csv(groups, table);
    else
      write_positions_csv(groups, table);
    data::write_file_atomically(path, table.str());
    std::cout << ", " << path;
  }
  std::cout << std::endl;

  // Plots: only with a python3 that has matplotlib (Debian's /usr/bin/python3 with
  // python3-matplotlib, when the python3 on PATH is another one).
  std::string python;
  const char* const candidates[] = {std::getenv("WINNOW_PYTHON"), "python3", "/usr/bin/python3"};
  for (const char* candidate : candidates) {
    if (candidate == nullptr) continue;
    const std::string probe = std::string(candidate) + " -c 'import matplotlib' >/dev/null 2>&1";
    if (std::system(probe.c_str()) == 0) {
      python = candidate;
      break;
    }
  }
  if (python.empty()) {
    std::cout << "plots skipped: python3 with matplotlib is not available (apt-get install "
                 "python3-matplotlib, or launch/setup.sh)"
              << std::endl;
    return 0;
  }
  const std::string command =
      python + " '" + plot_script + "' '" + dir + "/report.csv' '" + dir + "/report'";
  if (std::system(command.c_str()) != 0)
    std::cout << "plots failed: `" << command << "` exited non-zero (the tables are written)"
              << std::endl;
  return 0;
}

}  // namespace winnow::launch
