// The trainer's metrics lines (metrics.jsonl, one JSON object per event) and progress messages
// (stdout), built from what a step or an evaluation measured. The formats are documented in
// docs/training.md; scripts and tests read them, so keys and wording are stable.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "compression/planner.h"
#include "compression/token_evolution_monitor.h"
#include "train/evaluate.h"
#include "train/inference_speed.h"
#include "train/metrics.h"
#include "train/model.h"
#include "train/trainer.h"

namespace winnow::train {

// {"event":"step"}: loss, lr, timing, FLOPs and tokens of step `step` (0-based; logged as
// step + 1), with the planner's capacities and the monitor's per-layer EMAs when there are any.
// Either may be null.
JsonLine step_metrics_line(int64_t step, const StepResult& result, double lr,
                           double samples_per_second, const compression::Planner* planner,
                           const compression::TokenEvolutionMonitor* monitor);

// {"event":"capacity"}: one decision of a closed-loop planner after step `step` (0-based).
JsonLine capacity_metrics_line(int64_t step, const compression::PlannerDecision& decision);
// "step N: capacities k0 k1 ... (budget b, cost c)": the capacities after the decisions of a
// step, with the budget and cost of the first decision.
std::string capacity_progress_line(int64_t step, const std::vector<double>& capacities,
                                   const compression::PlannerDecision& decision);

// {"event":"eval"}: an evaluation after step `step` (0-based), accuracy under the model's key and
// perplexity for language models.
JsonLine eval_metrics_line(int64_t step, const EvalResult& eval, const TaskUnits& units);
// "eval @ step N: loss L  accuracy A%" (or "  perplexity P" for language models).
std::string eval_progress_line(int64_t step, const EvalResult& eval, const TaskUnits& units);

// "step N: non-finite loss on some rank; update skipped".
std::string skipped_step_progress_line(int64_t step);

// Adds the fields of an inference measurement (docs/training.md, "Measurements"):
// inference_samples_per_second (median over rounds) with _min and _max, the same for
// dense_inference_samples_per_second, inference_speedup, inference_batch, inference_rounds, and
// per layer (per sample) kept_tokens_per_layer, attention_flops_per_layer,
// attention_core_flops_per_layer, attention_seconds_per_layer, attention_core_seconds_per_layer,
// each but the first also as dense_<name> for the dense passes, dense_tokens (the tokens of a
// layer without reduction), and kept_position_fraction
// (layers × positions, row-major) with kept_position_shape and, for images, patch_grid.
void add_inference_fields(JsonLine& line, const InferenceSpeed& speed);
// {"event":"inference"}: the measurement after step `step` (0-based), add_inference_fields.
JsonLine inference_metrics_line(int64_t step, const InferenceSpeed& speed);
// The measurements of a finished run for summary.json: peak_activation_bytes, the FLOPs speedup
// of the evaluation plan (inference_flops_speedup, with an evaluation) and, when measured,
// add_inference_fields.
void add_run_measurements(JsonLine& line, const TrainSummary& summary);

}  // namespace winnow::train
