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

}  // namespace winnow::train
