// `winnow prune`: writes the physically smaller model — the blocks a co-scheduled run pruned
// (capacity 0), the layers given, or ShortGPT's n lowest-influence blocks on calibration data —
// removed, with the configuration that rebuilds it, so `winnow eval` and `train --init-from`
// take it like any weights file.
#include <algorithm>
#include <iostream>
#include <sstream>

#include "launch/commands.h"
#include "launch/config.h"
#include "launch/pruned_config.h"
#include "launch/run_setup.h"
#include "train/checkpoint.h"
#include "train/layer_removal.h"
#include "train/model_registry.h"
#include "train/model_weights.h"

namespace winnow::launch {
namespace po = boost::program_options;
namespace {

std::string joined(const std::vector<int64_t>& values) {
  std::ostringstream out;
  for (size_t i = 0; i < values.size(); ++i) out << (i ? "," : "") << values[i];
  return out.str();
}

}  // namespace

int prune_command(const Args& all_args) {
  auto [weights, args] = split_positional(all_args, "prune");
  std::string out, layers_text;
  int64_t shortgpt = 0, calibration = 512;
  po::options_description extra("Pruning");
  extra.add_options()("out", po::value(&out)->value_name("FILE"),
                      "where to write the smaller model (HDF5 weights, like model.h5)")(
      "layers", po::value(&layers_text)->value_name("LIST"),
      "remove these blocks (e.g. 2,5) instead of the run's pruned ones")(
      "shortgpt", po::value(&shortgpt)->value_name("N"),
      "ShortGPT one-shot: remove the N blocks of lowest Block Influence on calibration data")(
      "calibration_samples", po::value(&calibration)->default_value(calibration),
      "--shortgpt: samples of data.eval (else data.train) to measure the influence on");
  std::string base;
  if (!weights.empty()) base = train::read_weights_config(weights);
  RunConfig config;
  bool help = false;
  parse_run_config(args, extra, config, help, base);
  if (help) {
    std::cout << "usage: winnow prune RUN_DIR/model.h5|CHECKPOINT --out SMALLER.h5 "
                 "[--layers LIST | --shortgpt N] [options]\n\n"
                 "Removes blocks physically: by default those a co-scheduled run pruned "
                 "(capacity 0, from\nthe checkpoint's planner state or model.h5's "
                 "coschedule.capacities); the rest of the\nco-scheduled structure "
                 "(thinned layers) is kept in the written configuration.\n\n"
              << extra << std::endl;
    return 0;
  }
  if (weights.empty()) throw ConfigError("prune: give the weights or checkpoint to prune");
  if (out.empty()) throw ConfigError("--out: required (the smaller model's file)");
  if (!layers_text.empty() && shortgpt > 0)
    throw ConfigError("--layers and --shortgpt: give one way of choosing the blocks");
  validate(config, 1);
  auto data = open_run_data(config);
  auto model = train::make_model(data.model);
  auto compression = make_compression(config, data.model, *model);
  const auto meta = train::read_checkpoint(weights, *model, /*optimizer=*/nullptr);
  const int64_t depth = model->depth();

  // The capacities of a co-scheduled run: the checkpoint's planner state, else model.h5's config.
  std::vector<double> capacities = compression.planner->capacities();
  if (meta.compression.count("planner.level")) {
    compression.planner->load_state([&] {
      std::map<std::string, torch::Tensor> state;
      for (const auto& [name, tensor] : meta.compression)
        if (name.rfind("planner.", 0) == 0) state[name.substr(8)] = tensor;
      return state;
    }());
    capacities = compression.planner->capacities();
  }
  std::vector<int64_t> removed;
  std::string how;
  if (shortgpt > 0) {
    const auto& calibration_data = data.eval ? data.eval : data.train;
    const auto influence = train::calibration_block_influence(
        *model, *calibration_data, calibration, config.train.eval_batch, config.train.seed);
    removed = train::lowest_influence_layers(influence, shortgpt);
    std::ostringstream text;
    text << "ShortGPT: Block Influence on " << std::min(calibration, calibration_data->size())
         << " samples of " << calibration_data->describe() << ":";
    for (size_t l = 0; l < influence.size(); ++l) text << " " << l << ":" << influence[l];
    how = text.str();
  } else if (!layers_text.empty()) {
    std::stringstream in(layers_text);
    std::string item;
    while (std::getline(in, item, ',')) {
      try {
        removed.push_back(std::stoll(item));
      } catch (const std::exception&) {
        throw ConfigError("--layers: expected block indices such as 2,5, got '" + layers_text +
                          "'");
      }
    }
    std::sort(removed.begin(), removed.end());
    removed.erase(std::unique(removed.begin(), removed.end()), removed.end());
    how = "the blocks given with --layers";
  } else {
    if (capacities.empty())
      throw ConfigError("prune: '" + weights +
                        "' is not from a co-scheduled run (no capacities); choose blocks with "
                        "--layers or --shortgpt N");
    std::ostringstream list;
    for (int64_t l = 0; l < depth; ++l) {
      list << (l ? "," : "") << capacities[static_cast<size_t>(l)];
      if (capacities[static_cast<size_t>(l)] == 0.0) removed.push_back(l);
    }
    if (removed.empty())
      throw ConfigError("prune: the co-scheduled run pruned no block (capacities " + list.str() +
                        "); choose blocks with --layers or --shortgpt N");
    how = "the co-scheduled run's pruned blocks (capacities " + list.str() + ")";
  }
  for (int64_t l : removed)
    if (l < 0 || l >= depth)
      throw ConfigError("--layers: block " + std::to_string(l) + " is outside the model's 0.." +
                        std::to_string(depth - 1));
  if (static_cast<int64_t>(removed.size()) >= depth)
    throw ConfigError("prune: removing every block leaves no model");
  const std::vector<int64_t> kept = train::kept_layers(depth, removed);

  // The smaller configuration: fewer blocks; a co-scheduled structure keeps its thinned layers.
  std::vector<double> kept_capacities;
  for (int64_t l : kept)
    if (!capacities.empty()) kept_capacities.push_back(capacities[static_cast<size_t>(l)]);
  const RunConfig smaller = config_without_layers(config, depth, kept, kept_capacities);
  auto spec = data.model;
  spec.depth = smaller.model.depth;
  auto small = train::make_model(spec);
  auto small_compression = make_compression(smaller, spec, *small);
  train::copy_kept_blocks(*model, *small, kept);
  train::save_model_weights(*small, out, to_ini(smaller));

  std::cout << "prune " << weights << "\n  chose       " << how << "\n  removed     "
            << (removed.empty() ? "none" : joined(removed)) << " (" << removed.size() << " of "
            << depth << " blocks)\n  parameters  " << train::parameter_count(*model) << " -> "
            << train::parameter_count(*small) << "\n  forward FLOPs per sample (dense) "
            << si(model->dense_forward_flops_per_sample()) << " -> "
            << si(small->dense_forward_flops_per_sample()) << "\n  plan        "
            << small_compression.planner->plan(0, /*training=*/false).describe()
            << "\n  wrote       " << out << " (model.depth = " << spec.depth << ")" << std::endl;
  return 0;
}

}  // namespace winnow::launch
