// The trainer's metrics lines and progress messages.
#include "train/metrics_lines.h"

#include <sstream>

#include "compression/flops.h"

namespace winnow::train {

JsonLine step_metrics_line(int64_t step, const StepResult& r, double lr, double samples_per_second,
                           const compression::Planner* planner,
                           const compression::TokenEvolutionMonitor* monitor) {
  JsonLine line;
  line.add("event", "step")
      .add("step", step + 1)
      .add("loss", r.loss)
      .add("lr", lr)
      .add("skipped", r.skipped)
      .add("step_seconds", r.seconds)
      .add("comm_seconds", r.comm_seconds)
      .add("samples_per_second", samples_per_second)
      .add("train_flops", r.training_flops())
      .add("tokens_per_layer", r.tokens_per_layer)
      .add("peak_activation_bytes", r.peak_activation_bytes);
  if (!r.layers_run.empty()) {
    std::vector<int64_t> gates(r.layers_run.begin(), r.layers_run.end());
    line.add("layers_run", gates);
  }
  for (const auto& [name, value] : r.aux_losses) line.add("aux_" + name, value);
  for (const auto& [name, value] : r.metrics) line.add(name, value);
  if (planner) {
    const auto capacities = planner->capacities();
    if (!capacities.empty()) line.add("capacity", capacities);
  }
  if (monitor && monitor->updates() > 0) {
    // EMAs of the token-evolution statistics per layer (null for layers never observed).
    std::vector<double> bi, relative, uniformity, taylor;
    for (int64_t l = 0; l < monitor->depth(); ++l) {
      const auto ema = monitor->ema(l);
      bi.push_back(ema.block_influence);
      relative.push_back(ema.relative_update);
      uniformity.push_back(ema.uniformity);
      taylor.push_back(ema.taylor);
    }
    line.add("evolution_bi", bi)
        .add("evolution_relative_update", relative)
        .add("evolution_uniformity", uniformity);
    if (monitor->options().taylor) line.add("evolution_taylor", taylor);
  }
  return line;
}

JsonLine capacity_metrics_line(int64_t step, const compression::PlannerDecision& d) {
  JsonLine line;
  line.add("event", "capacity")
      .add("step", step + 1)
      .add("layer", d.layer)
      .add("from", d.from)
      .add("to", d.to)
      .add("reason", d.reason)
      .add("budget", d.budget)
      .add("cost", d.cost)
      .add("cost_model", d.cost_model);
  return line;
}

std::string capacity_progress_line(int64_t step, const std::vector<double>& capacities,
                                   const compression::PlannerDecision& decision) {
  std::ostringstream text;
  text.precision(3);
  text << "step " << step + 1 << ": capacities";
  for (double k : capacities) text << " " << k;
  text << " (" << decision.cost_model << " budget " << decision.budget << ", cost " << decision.cost
       << ")";
  return text.str();
}

JsonLine eval_metrics_line(int64_t step, const EvalResult& eval, const TaskUnits& units) {
  JsonLine line;
  line.add("event", "eval")
      .add("step", step + 1)
      .add("loss", eval.loss)
      .add("samples", eval.samples);
  line.add(units.accuracy_metric, eval.accuracy);
  if (units.perplexity) line.add("perplexity", eval.perplexity);
  for (const auto& [name, value] : eval.metrics) line.add(name, value);
  line.add("eval_seconds", eval.seconds);
  return line;
}

std::string eval_progress_line(int64_t step, const EvalResult& eval, const TaskUnits& units) {
  std::ostringstream text;
  text.precision(4);
  text << "eval @ step " << step + 1 << ": loss " << eval.loss;
  if (units.perplexity)
    text << "  perplexity " << eval.perplexity;
  else
    text << "  accuracy " << 100.0 * eval.accuracy << "%";
  for (const auto& [name, value] : eval.metrics) text << "  " << name << " " << value;
  return text.str();
}

std::string skipped_step_progress_line(int64_t step) {
  return "step " + std::to_string(step + 1) + ": non-finite loss on some rank; update skipped";
}

void add_inference_fields(JsonLine& line, const InferenceSpeed& speed) {
  line.add("inference_samples_per_second", speed.plan.median)
      .add("inference_samples_per_second_min", speed.plan.min)
      .add("inference_samples_per_second_max", speed.plan.max)
      .add("dense_inference_samples_per_second", speed.dense.median)
      .add("dense_inference_samples_per_second_min", speed.dense.min)
      .add("dense_inference_samples_per_second_max", speed.dense.max)
      .add("inference_speedup", speed.speedup)
      .add("dense_inference_blocks", speed.dense_depth)
      .add("inference_batch", speed.batch)
      .add("inference_rounds", speed.rounds);
  for (const auto& [prefix, layers] :
       {std::make_pair(std::string(), &speed.plan_layers),
        std::make_pair(std::string("dense_"), &speed.dense_layers)}) {
    line.add(prefix + "attention_flops_per_layer", layers->attention_flops)
        .add(prefix + "attention_core_flops_per_layer", layers->attention_core_flops)
        .add(prefix + "attention_seconds_per_layer", layers->attention_seconds)
        .add(prefix + "attention_core_seconds_per_layer", layers->attention_core_seconds);
  }
  const int64_t depth = static_cast<int64_t>(speed.plan_layers.tokens.size());
  line.add("kept_tokens_per_layer", speed.plan_layers.tokens)
      .add("dense_tokens", speed.positions)
      .add("kept_position_fraction", speed.kept_position_fraction)
      .add("kept_position_shape", std::vector<int64_t>{depth, speed.positions});
  if (speed.patch_grid.first > 0)
    line.add("patch_grid", std::vector<int64_t>{speed.patch_grid.first, speed.patch_grid.second});
}

JsonLine inference_metrics_line(int64_t step, const InferenceSpeed& speed) {
  JsonLine line;
  line.add("event", "inference").add("step", step + 1);
  add_inference_fields(line, speed);
  return line;
}

void add_run_measurements(JsonLine& line, const TrainSummary& summary) {
  line.add("peak_activation_bytes", summary.peak_activation_bytes);
  if (summary.eval.samples > 0) line.add("inference_flops_speedup", summary.eval.flops_speedup());
  if (summary.inference.measured()) add_inference_fields(line, summary.inference);
}

}  // namespace winnow::train
