// Layer removal and ShortGPT's calibration statistic.
#include "train/layer_removal.h"

#include <algorithm>
#include <map>
#include <numeric>
#include <sstream>

#include "compression/token_evolution_monitor.h"
#include "train/optimizer.h"
#include "train/plan_hooks.h"

namespace winnow::train {

namespace {

// "blocks.3.attn.qkv.weight" with index 1 → ("blocks.", 3, ".attn.qkv.weight"); the layer index
// sits after the first dot for blocks.* and after the second for compress.<stage>.*.
bool split_layer(const std::string& name, std::string& head, int64_t& layer, std::string& tail) {
  size_t segment_start;
  if (name.rfind("blocks.", 0) == 0) {
    segment_start = 7;
  } else if (name.rfind("compress.", 0) == 0) {
    const size_t dot = name.find('.', 9);
    if (dot == std::string::npos) return false;
    segment_start = dot + 1;
  } else {
    return false;
  }
  const size_t end = name.find('.', segment_start);
  if (end == std::string::npos || end == segment_start) return false;
  const std::string digits = name.substr(segment_start, end - segment_start);
  if (!std::all_of(digits.begin(), digits.end(), ::isdigit)) return false;
  head = name.substr(0, segment_start);
  layer = std::stoll(digits);
  tail = name.substr(end);
  return true;
}

std::map<std::string, torch::Tensor> named_tensors(const torch::nn::Module& model) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& item : model.named_parameters()) out[item.key()] = item.value();
  for (const auto& item : model.named_buffers()) out[item.key()] = item.value();
  return out;
}

}  // namespace

int64_t parameter_count(const TransformerModel& model) {
  int64_t count = 0;
  for (const auto& p : model.parameters()) count += p.numel();
  return count;
}

std::vector<int64_t> kept_layers(int64_t depth, const std::vector<int64_t>& removed) {
  for (int64_t layer : removed)
    TORCH_CHECK(layer >= 0 && layer < depth, "layer removal: block ", layer,
                " is outside the model's 0..", depth - 1);
  std::vector<int64_t> kept;
  for (int64_t l = 0; l < depth; ++l)
    if (std::find(removed.begin(), removed.end(), l) == removed.end()) kept.push_back(l);
  TORCH_CHECK(!kept.empty(), "layer removal: removing every one of the ", depth,
              " blocks leaves no model");
  return kept;
}

std::string kept_block_source(const std::string& name, const std::vector<int64_t>& kept) {
  std::string head, tail;
  int64_t layer = 0;
  if (!split_layer(name, head, layer, tail)) return name;
  TORCH_CHECK(layer < static_cast<int64_t>(kept.size()), "layer removal: tensor '", name,
              "' names a layer beyond the ", kept.size(), " kept blocks");
  return head + std::to_string(kept[static_cast<size_t>(layer)]) + tail;
}

void copy_kept_blocks(const TransformerModel& source, TransformerModel& target,
                      const std::vector<int64_t>& kept) {
  TORCH_CHECK(std::is_sorted(kept.begin(), kept.end()) &&
                  std::adjacent_find(kept.begin(), kept.end()) == kept.end(),
              "copy_kept_blocks: the kept blocks must be ascending and distinct");
  TORCH_CHECK(static_cast<int64_t>(kept.size()) == target.depth(),
              "copy_kept_blocks: ", kept.size(), " kept blocks for a target of ", target.depth());
  for (int64_t layer : kept)
    TORCH_CHECK(layer >= 0 && layer < source.depth(), "copy_kept_blocks: block ", layer,
                " is outside the source's 0..", source.depth() - 1);
  const auto from = named_tensors(source);
  const auto to = named_tensors(target);
  std::vector<std::string> missing, misshaped;
  torch::NoGradGuard no_grad;
  for (const auto& [name, tensor] : to) {
    const std::string source_name = kept_block_source(name, kept);
    const auto it = from.find(source_name);
    if (it == from.end()) {
      missing.push_back(name + " <- " + source_name);
    } else if (it->second.sizes() != tensor.sizes()) {
      misshaped.push_back(name);
    } else {
      tensor.copy_(it->second);
    }
  }
  if (!missing.empty() || !misshaped.empty()) {
    std::ostringstream message;
    message << "copy_kept_blocks: the smaller model does not fit the source:";
    for (const auto& m : missing) message << "\n  no source for " << m;
    for (const auto& m : misshaped) message << "\n  shapes differ: " << m;
    TORCH_CHECK(false, message.str());
  }
}

void carry_optimizer_state(const TransformerModel& source, const torch::optim::AdamW& from,
                           const TransformerModel& target, torch::optim::AdamW& to,
                           const std::vector<int64_t>& kept) {
  const auto sources = source.named_parameters();
  for (const auto& item : target.named_parameters()) {
    const std::string source_name = kept_block_source(item.key(), kept);
    const torch::Tensor* source_parameter = sources.find(source_name);
    TORCH_CHECK(source_parameter != nullptr, "carry_optimizer_state: parameter '", item.key(),
                "' has no source '", source_name, "'");
    const auto it = from.state().find(optimizer_state_key(*source_parameter));
    if (it == from.state().end()) continue;  // never updated (or frozen): no state
    const auto& state = static_cast<const torch::optim::AdamWParamState&>(*it->second);
    to.state()[optimizer_state_key(item.value())] =
        std::make_unique<torch::optim::AdamWParamState>(state);
  }
}

std::vector<double> calibration_block_influence(TransformerModel& model, const data::Dataset& data,
                                                int64_t samples, int64_t batch, uint64_t seed) {
  TORCH_CHECK(samples >= 1 && batch >= 1, "calibration: expected >= 1 samples and batch, got ",
              samples, " and ", batch);
  const int64_t total = std::min(samples, data.size());
  TORCH_CHECK(total >= 1, "calibration: the data set is empty");
  torch::NoGradGuard no_grad;
  model.eval();
  compression::TokenEvolutionOptions options;
  options.ema_decay = 0.0;  // one update over all calibration tokens: the plain mean
  compression::TokenEvolutionMonitor monitor(model.depth(), options);
  compression::Plan plan;
  plan.training = false;
  plan.statistics = true;
  plan.layers.resize(static_cast<size_t>(model.depth()));
  for (int64_t start = 0; start < total; start += batch) {
    std::vector<int64_t> ids(static_cast<size_t>(std::min(batch, total - start)));
    std::iota(ids.begin(), ids.end(), start);
    auto fetched = data.fetch(ids);
    ForwardContext context;
    context.seed = seed;
    context.sample_ids = fetched.sample_ids;
    PlanHooks hooks(plan, seed, fetched.sample_ids, &monitor);
    context.hook_for = [&hooks](int64_t layer) { return hooks(layer); };
    model.forward(fetched.inputs, context);
  }
  monitor.update(monitor.step_sums(), 0);
  std::vector<double> influence;
  for (int64_t l = 0; l < model.depth(); ++l) influence.push_back(monitor.block_influence(l));
  return influence;
}

std::vector<int64_t> lowest_influence_layers(const std::vector<double>& influence, int64_t count) {
  TORCH_CHECK(count >= 0 && count < static_cast<int64_t>(influence.size()),
              "expected to remove 0..", influence.size() - 1, " of ", influence.size(),
              " layers, got ", count);
  std::vector<int64_t> order(influence.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return influence[static_cast<size_t>(a)] < influence[static_cast<size_t>(b)];
  });
  std::vector<int64_t> lowest(order.begin(), order.begin() + count);
  std::sort(lowest.begin(), lowest.end());
  return lowest;
}

}  // namespace winnow::train
