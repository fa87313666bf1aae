// Inference throughput, plan against dense in alternating rounds, and per-layer attention costs.
#include "train/inference_speed.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <sstream>

#include "train/plan_hooks.h"

namespace winnow::train {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Sums over the timed passes of one contender, on this rank, per layer.
struct LayerSums {
  explicit LayerSums(int64_t depth)
      : tokens(depth, 0.0),
        attention_flops(depth, 0.0),
        attention_core_flops(depth, 0.0),
        measurements(static_cast<size_t>(depth)) {}
  void add(const ModelOutput& output) {
    for (size_t l = 0; l < output.tokens_per_layer.size() && l < tokens.size(); ++l) {
      tokens[l] += static_cast<double>(output.tokens_per_layer[l]);
      attention_flops[l] += output.attention_flops_per_layer[l];
      attention_core_flops[l] += output.attention_core_flops_per_layer[l];
    }
  }
  std::vector<double> tokens, attention_flops, attention_core_flops;
  std::vector<BlockMeasurement> measurements;  // attention times, filled by the blocks
};

// All-reduces the sums of every rank and divides them by `samples`.
LayerProfile reduce_profile(const LayerSums& sums, dist::Communicator& comm, double samples) {
  const size_t depth = sums.tokens.size();
  std::vector<double> packed;
  for (const auto* field : {&sums.tokens, &sums.attention_flops, &sums.attention_core_flops})
    packed.insert(packed.end(), field->begin(), field->end());
  for (const auto& m : sums.measurements) packed.push_back(m.attention_seconds);
  for (const auto& m : sums.measurements) packed.push_back(m.attention_core_seconds);
  auto tensor = torch::tensor(packed, torch::kFloat64);
  comm.all_reduce(tensor, dist::ReduceOp::kSum);
  tensor = tensor / samples;
  const double* data = tensor.data_ptr<double>();
  auto field = [&](size_t index) {
    return std::vector<double>(data + index * depth, data + (index + 1) * depth);
  };
  return {field(0), field(1), field(2), field(3), field(4)};
}

}  // namespace

void InferenceSpeedOptions::validate() const {
  TORCH_CHECK(batch >= 1, "train.inference_batch: expected >= 1, got ", batch);
  TORCH_CHECK(rounds >= 0, "train.inference_rounds: expected >= 0 (0 = off), got ", rounds);
}

double median_of(std::vector<double> values) {
  if (values.empty()) return 0.0;
  std::sort(values.begin(), values.end());
  const size_t middle = values.size() / 2;
  return values.size() % 2 == 1 ? values[middle] : 0.5 * (values[middle - 1] + values[middle]);
}

ThroughputRounds throughput_of(const std::vector<double>& seconds, double samples) {
  ThroughputRounds result;
  for (double s : seconds) result.samples_per_second.push_back(s > 0 ? samples / s : 0.0);
  if (seconds.empty()) return result;
  result.median = median_of(result.samples_per_second);
  const auto [low, high] =
      std::minmax_element(result.samples_per_second.begin(), result.samples_per_second.end());
  result.min = *low;
  result.max = *high;
  return result;
}

std::vector<std::vector<double>> time_alternating(
    const std::vector<std::function<double(bool timed)>>& passes, int64_t rounds) {
  TORCH_CHECK(rounds >= 1, "time_alternating: expected at least one timed round, got ", rounds);
  std::vector<std::vector<double>> seconds(passes.size());
  for (const auto& pass : passes) pass(/*timed=*/false);  // warm-up: caches, allocator, threads
  for (int64_t round = 0; round < rounds; ++round) {
    for (size_t i = 0; i < passes.size(); ++i) {
      const size_t which = round % 2 == 0 ? i : passes.size() - 1 - i;
      seconds[which].push_back(passes[which](/*timed=*/true));
    }
  }
  return seconds;
}

InferenceSpeed measure_inference_speed(TransformerModel& model, const data::Dataset& dataset,
                                       dist::Communicator& comm,
                                       const InferenceSpeedOptions& options) {
  options.validate();
  InferenceSpeed result;
  if (options.rounds == 0) return result;
  torch::NoGradGuard no_grad;
  model.eval();
  const int64_t batch = std::min(options.batch, dataset.size());
  TORCH_CHECK(batch >= 1, "inference speed: the dataset ", dataset.describe(), " is empty");
  const int64_t rank = comm.rank(), world = comm.world_size();
  const int64_t begin = batch * rank / world, end = batch * (rank + 1) / world;
  std::vector<int64_t> ids;
  for (int64_t i = begin; i < end; ++i) ids.push_back(i);
  const data::Batch samples = ids.empty() ? data::Batch{} : dataset.fetch(ids);
  const compression::Plan plan = options.planner
                                     ? options.planner->plan(options.step, /*training=*/false)
                                     : compression::Plan{};
  const int64_t depth = model.depth();
  TransformerModel& dense_model = options.dense_model ? *options.dense_model : model;
  dense_model.eval();

  // One forward pass of this rank's slice; returns the slowest rank's seconds.
  auto pass = [&](bool with_plan, std::vector<BlockMeasurement>* measurements) {
    comm.barrier();
    const auto start = Clock::now();
    ModelOutput output;
    if (!ids.empty()) {
      ForwardContext context;
      context.step = options.step;
      context.seed = options.seed;
      context.sample_ids = samples.sample_ids;
      context.block_measurements = measurements;
      std::unique_ptr<PlanHooks> hooks;
      if (with_plan && !plan.layers.empty()) {
        hooks = std::make_unique<PlanHooks>(plan, options.seed, samples.sample_ids, nullptr,
                                            token_ids_of(samples.inputs));
        if (hooks->any()) context.hook_for = [&hooks](int64_t layer) { return (*hooks)(layer); };
      }
      output = with_plan ? model.forward(samples.inputs, context)
                         : dense_model.forward(samples.inputs, context);
    }
    auto seconds = torch::tensor({seconds_since(start)}, torch::kFloat64);
    comm.all_reduce(seconds, dist::ReduceOp::kMax);
    return std::make_pair(seconds.item<double>(), std::move(output));
  };

  LayerSums plan_sums(depth), dense_sums(dense_model.depth());
  auto contender = [&](bool with_plan, LayerSums& sums) {
    return [&, with_plan](bool timed) {
      auto [seconds, output] = pass(with_plan, timed ? &sums.measurements : nullptr);
      if (timed && !ids.empty()) sums.add(output);
      return seconds;
    };
  };
  const auto seconds =
      time_alternating({contender(true, plan_sums), contender(false, dense_sums)}, options.rounds);

  result.batch = batch;
  result.rounds = options.rounds;
  result.dense_depth = dense_model.depth();
  result.plan = throughput_of(seconds[0], static_cast<double>(batch));
  result.dense = throughput_of(seconds[1], static_cast<double>(batch));
  std::vector<double> ratios;
  for (int64_t r = 0; r < options.rounds; ++r)
    ratios.push_back(seconds[0][r] > 0 ? seconds[1][r] / seconds[0][r] : 0.0);
  result.speedup = median_of(ratios);
  const double measured = static_cast<double>(batch * options.rounds);
  result.plan_layers = reduce_profile(plan_sums, comm, measured);
  result.dense_layers = reduce_profile(dense_sums, comm, measured);

  // Which positions the plan keeps, from one more (untimed) pass that counts them.
  result.positions = model.dense_tokens();
  result.patch_grid = model.patch_grid();
  std::vector<BlockMeasurement> counting(static_cast<size_t>(depth));
  for (auto& m : counting) m.position_counts = torch::zeros({result.positions}, torch::kFloat64);
  pass(/*with_plan=*/true, &counting);
  std::vector<torch::Tensor> rows;
  for (const auto& m : counting) rows.push_back(m.position_counts);
  auto kept = torch::stack(rows);  // [L, positions]
  comm.all_reduce(kept, dist::ReduceOp::kSum);
  kept = (kept / static_cast<double>(batch)).contiguous();
  result.kept_position_fraction.assign(kept.data_ptr<double>(),
                                       kept.data_ptr<double>() + kept.numel());
  return result;
}

std::string inference_speed_line(const InferenceSpeed& speed, const TaskUnits& units,
                                 double flops_ratio) {
  const double items = static_cast<double>(units.throughput_items_per_sample);
  // Rates as whole numbers from 100 on, with 3 significant digits below; ratios to 2 decimals.
  auto rate = [items](double samples_per_second) {
    char text[32];
    const double value = items * samples_per_second;
    std::snprintf(text, sizeof text, value >= 100 ? "%.0f" : "%.3g", value);
    return std::string(text);
  };
  auto ratio = [](double value) {
    char text[32];
    std::snprintf(text, sizeof text, "%.2f", value);
    return std::string(text);
  };
  // A deeper reference (the configured model of a run that removed blocks) is named.
  const bool deeper = speed.dense_depth > static_cast<int64_t>(speed.plan_layers.tokens.size());
  const std::string reference =
      deeper ? "dense with " + std::to_string(speed.dense_depth) + " blocks" : "dense";
  std::ostringstream line;
  line << "inference: " << rate(speed.plan.median) << " " << units.throughput_unit << " (median of "
       << speed.rounds << " rounds of " << speed.batch << " samples, range " << rate(speed.plan.min)
       << "-" << rate(speed.plan.max) << ") vs " << reference << " " << rate(speed.dense.median)
       << " " << units.throughput_unit << " (range " << rate(speed.dense.min) << "-"
       << rate(speed.dense.max) << "): " << ratio(speed.speedup) << "x";
  if (std::isfinite(flops_ratio)) line << " (FLOPs " << ratio(flops_ratio) << "x)";
  return line.str();
}

}  // namespace winnow::train
