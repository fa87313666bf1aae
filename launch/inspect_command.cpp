// `winnow inspect`: what a checkpoint holds — step, config, world size, parameter table, totals,
// optimizer and compression state — as text or JSON, checksums verified on request.
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "data/error_text.h"
#include "launch/commands.h"
#include "launch/config.h"
#include "train/checkpoint.h"
#include "train/checkpoint_directory.h"
#include "train/metrics.h"

namespace winnow::launch {
namespace po = boost::program_options;
namespace {

std::string shape_text(const std::vector<int64_t>& shape) {
  std::ostringstream s;
  s << "[";
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
  s << "]";
  return s.str();
}

// A directory (run dir or checkpoints/) means its newest step file.
std::string resolve_path(const std::string& path) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(path)) return path;
  std::string dir = path;
  if (fs::is_directory(fs::path(dir) / "checkpoints"))
    dir = (fs::path(dir) / "checkpoints").string();
  const auto files = train::CheckpointDirectory(dir, 0).checkpoints();
  if (files.empty()) throw ConfigError("inspect: no checkpoint (step-*.h5) in '" + dir + "'");
  return files.front();
}

// Elements over the parameters of compression components (compress.*), not the backbone.
int64_t compression_parameters(const train::CheckpointSummary& s) {
  int64_t count = 0;
  for (const auto& t : s.tensors)
    if (!t.buffer && train::TransformerModel::is_compression_parameter(t.name)) count += t.count;
  return count;
}

void print_json(const std::string& path, const train::CheckpointSummary& s, bool verified) {
  const auto& m = s.meta;
  std::ostringstream out;
  out << "{\"file\":\"" << train::json_escape(path) << "\",\"file_bytes\":" << s.file_bytes
      << ",\"schema_version\":" << m.schema_version << ",\"step\":" << m.step
      << ",\"epoch\":" << m.epoch << ",\"samples_consumed\":" << m.samples_consumed
      << ",\"global_batch\":" << m.global_batch << ",\"world_size\":" << m.world_size
      << ",\"seed\":" << m.seed << ",\"reason\":\"" << train::json_escape(m.reason)
      << "\",\"winnow_version\":\"" << train::json_escape(m.winnow_version)
      << "\",\"model_kind\":\"" << train::json_escape(m.model_kind)
      << "\",\"parameters\":" << s.parameters
      << ",\"optimizer\":" << (s.has_optimizer ? "true" : "false")
      << ",\"optimizer_entries\":" << s.optimizer_entries
      << ",\"checksums_verified\":" << (verified ? "true" : "false")
      << ",\"lr_schedule\":{\"peak_lr\":" << m.lr_schedule.peak_lr
      << ",\"warmup_steps\":" << m.lr_schedule.warmup_steps
      << ",\"total_steps\":" << m.lr_schedule.total_steps
      << ",\"min_lr_ratio\":" << m.lr_schedule.min_lr_ratio << "}"
      << ",\"compression\":{\"token_schedule\":\"" << train::json_escape(m.token_schedule)
      << "\",\"parameters\":" << compression_parameters(s) << ",\"state\":[";
  for (size_t i = 0; i < s.compression.size(); ++i)
    out << (i ? "," : "") << "\"" << train::json_escape(s.compression[i].name) << "\"";
  out << "]}"
      << ",\"config\":\"" << train::json_escape(m.config_ini) << "\",\"tensors\":[";
  for (size_t i = 0; i < s.tensors.size(); ++i) {
    const auto& t = s.tensors[i];
    out << (i ? "," : "") << "{\"name\":\"" << train::json_escape(t.name) << "\",\"shape\":[";
    for (size_t d = 0; d < t.shape.size(); ++d) out << (d ? "," : "") << t.shape[d];
    out << "],\"dtype\":\"" << t.dtype << "\",\"count\":" << t.count
        << ",\"buffer\":" << (t.buffer ? "true" : "false") << ",\"component\":"
        << (train::TransformerModel::is_compression_parameter(t.name) ? "true" : "false") << "}";
  }
  out << "]}";
  std::cout << out.str() << std::endl;
}

void print_text(const std::string& path, const train::CheckpointSummary& s, bool verified,
                bool show_config) {
  const auto& m = s.meta;
  std::cout << path << "  (" << s.file_bytes / 1e6 << " MB, schema " << m.schema_version
            << ", winnow " << m.winnow_version << ")\n";
  if (m.reason == "weights") {
    std::cout << "  kind          weights file (model only: eval, --init-from, export)\n";
  } else {
    std::cout << "  step          " << m.step << " of " << m.lr_schedule.total_steps << " ("
              << m.reason << ")\n"
              << "  data          global sample " << m.samples_consumed << ", epoch " << m.epoch
              << ", global batch " << m.global_batch << ", seed " << m.seed << "\n"
              << "  world size    " << m.world_size << " at save\n"
              << "  lr schedule   peak " << m.lr_schedule.peak_lr << ", warmup "
              << m.lr_schedule.warmup_steps << ", min ratio " << m.lr_schedule.min_lr_ratio
              << ", lr at this step "
              << m.lr_schedule.at(std::min(m.step, m.lr_schedule.total_steps - 1)) << "\n";
  }
  std::cout << "  model         " << m.model_kind << "\n"
            << "  compression   " << (m.token_schedule.empty() ? "none" : m.token_schedule) << "\n"
            << "  optimizer     "
            << (s.has_optimizer
                    ? "AdamW state for " + std::to_string(s.optimizer_entries) + " parameters"
                    : std::string("none (weights only)"))
            << "\n"
            << "  checksums     " << (verified ? "all verified" : "not checked (--verify)")
            << "\n\n";
  size_t width = 4;
  for (const auto& t : s.tensors) width = std::max(width, data::escaped_bytes(t.name, 200).size());
  std::cout << "  " << std::left << std::setw(static_cast<int>(width)) << "name"
            << "  " << std::setw(18) << "shape" << std::setw(9) << "dtype" << std::right
            << std::setw(12) << "count"
            << "\n";
  // The backbone first, then the learned compression components (Δθ) under their own heading.
  const auto print_rows = [&](bool components) {
    for (const auto& t : s.tensors) {
      if (train::TransformerModel::is_compression_parameter(t.name) != components) continue;
      std::cout << "  " << std::left << std::setw(static_cast<int>(width))
                << data::escaped_bytes(t.name, 200) << "  " << std::setw(18) << shape_text(t.shape)
                << std::setw(9) << t.dtype << std::right << std::setw(12) << t.count
                << (t.buffer ? "  (buffer)" : "") << "\n";
    }
  };
  print_rows(false);
  if (compression_parameters(s) > 0) {
    std::cout << "\n  compression components (compress.<stage>.<layer>.*: learned scorers, Δθ)\n";
    print_rows(true);
    std::cout << "\n";
  }
  std::cout << "  " << std::left << std::setw(static_cast<int>(width)) << "total parameters"
            << "  " << std::right << std::setw(39) << s.parameters << "\n";
  const int64_t components = compression_parameters(s);
  if (components > 0)
    std::cout << "  " << std::left << std::setw(static_cast<int>(width))
              << "  of which compression components (compress.*)"
              << "  " << std::right << std::setw(39) << components << " (backbone "
              << s.parameters - components << ")\n";
  if (!s.compression.empty()) {
    std::cout << "\n  compression state (/compression)\n";
    for (const auto& t : s.compression)
      std::cout << "  " << std::left << std::setw(static_cast<int>(width))
                << data::escaped_bytes(t.name, 200) << "  " << std::setw(18) << shape_text(t.shape)
                << std::setw(9) << t.dtype << std::right << std::setw(12) << t.count << "\n";
  }
  if (show_config) std::cout << "\n---- stored configuration ----\n" << m.config_ini;
  std::cout << std::flush;
}

}  // namespace

int inspect_command(const Args& args) {
  std::string file;
  bool json = false, verify = false, config = false, help = false;
  po::options_description options("Options");
  options.add_options()("help,h", "show this help")(
      "json", po::bool_switch(&json), "one JSON object (for scripts) instead of the text report")(
      "verify", po::bool_switch(&verify), "read every dataset and check its CRC-32")(
      "config", po::bool_switch(&config), "also print the stored configuration (text report)")(
      "file", po::value(&file)->value_name("FILE|DIR"),
      "a checkpoint or weights file, or a run/checkpoint directory (its newest checkpoint)");
  po::positional_options_description positional;
  positional.add("file", 1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(options).positional(positional).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw ConfigError(std::string("inspect: ") + e.what());
  }
  help = vm.count("help") > 0;
  if (help) {
    std::cout << "usage: winnow inspect FILE|DIR [--json] [--verify] [--config]\n\n"
                 "Shows what a checkpoint holds: step, data position, world size at save, LR and\n"
                 "token schedules, optimizer state, the parameter table (name, shape, dtype,\n"
                 "count) and total parameters. The file is plain HDF5: h5ls -r and h5dump read it\n"
                 "too (docs/checkpoint-format.md).\n\n"
              << options << std::endl;
    return 0;
  }
  if (file.empty()) throw ConfigError("inspect: expected a checkpoint file or directory");
  const std::string path = resolve_path(file);
  const auto summary = train::summarize_checkpoint(path, verify);
  if (json)
    print_json(path, summary, verify);
  else
    print_text(path, summary, verify, config);
  return 0;
}

}  // namespace winnow::launch
