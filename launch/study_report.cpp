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
    std::vector<double> metric, flops, seconds;
    for (const auto* c : cells) {
      metric.push_back(c->summary.metric_value);
      flops.push_back(c->summary.training_flops);
      seconds.push_back(c->summary.train_seconds);
    }
    StudyGroup group;
    group.name = name;
    group.values = cells.front()->group_values;
    group.seeds = static_cast<int>(cells.size());
    group.metric = cells.front()->summary.metric;
    group.metric_value = mean_std(metric);
    group.training_flops = mean_std(flops);
    group.train_seconds = mean_std(seconds);
    groups.push_back(std::move(group));
  }
  return groups;
}

void write_report_csv(const std::vector<StudyGroup>& groups, std::ostream& out) {
  out << "group";
  if (!groups.empty())
    for (const auto& [key, value] : groups.front().values) out << "," << csv_field(key);
  out << ",seeds,metric,metric_mean,metric_std,training_flops_mean,training_flops_std,"
         "train_seconds_mean,train_seconds_std\n";
  for (const auto& g : groups) {
    out << csv_field(g.name);
    for (const auto& [key, value] : g.values) out << "," << csv_field(value);
    out << "," << g.seeds << "," << g.metric;
    for (const MeanStd& m : {g.metric_value, g.training_flops, g.train_seconds})
      out << "," << number_text(m.mean) << "," << number_text(m.std);
    out << "\n";
  }
}

void write_report_markdown(const std::vector<StudyGroup>& groups, std::ostream& out) {
  if (groups.empty()) return;
  const bool accuracy = groups.front().metric == "eval_accuracy";
  const double scale = accuracy ? 100.0 : 1.0;
  out << "| group | seeds | " << (accuracy ? "eval accuracy (%)" : "eval loss")
      << " | training FLOPs | training seconds |\n|---|---|---|---|---|\n";
  for (const auto& g : groups) {
    out << "| " << g.name << " | " << g.seeds << " | " << std::fixed
        << std::setprecision(accuracy ? 2 : 4) << scale * g.metric_value.mean << " ± "
        << scale * g.metric_value.std << " | " << std::scientific << std::setprecision(3)
        << g.training_flops.mean << " ± " << std::setprecision(1) << g.training_flops.std << " | "
        << std::fixed << g.train_seconds.mean << " ± " << g.train_seconds.std << " |\n";
  }
  out << std::defaultfloat << std::setprecision(6);
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
  std::cout << markdown.str() << "\nwrote " << dir << "/report.csv, " << dir << "/report.md"
            << std::endl;

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
