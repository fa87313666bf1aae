// The budget schedule ρ(t).
#include "compression/budget_schedule.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <sstream>

namespace winnow::compression {

const std::vector<std::string>& budget_ramps() {
  static const std::vector<std::string> ramps = {"cosine", "linear", "exponential", "step"};
  return ramps;
}

BudgetSchedule::BudgetSchedule(const BudgetScheduleConfig& config, const std::string& prefix)
    : config_(config) {
  const auto& c = config;
  TORCH_CHECK(c.target > 0.0 && c.target <= 1.0, prefix,
              ".target: expected a fraction of the dense cost (FLOPs or time) in (0, 1], got ",
              c.target);
  TORCH_CHECK(c.warmup_steps >= 0, prefix, ".warmup_steps: expected >= 0, got ", c.warmup_steps);
  TORCH_CHECK(c.ramp_steps >= 0, prefix, ".ramp_steps: expected >= 0, got ", c.ramp_steps);
  TORCH_CHECK(c.heal_steps >= 0, prefix, ".heal_steps: expected >= 0, got ", c.heal_steps);
  TORCH_CHECK(
      std::find(budget_ramps().begin(), budget_ramps().end(), c.ramp) != budget_ramps().end(),
      prefix, ".ramp: expected cosine, linear, exponential or step, got '", c.ramp, "'");
  TORCH_CHECK(c.ramp != "exponential" || c.gamma > 0.0, prefix,
              ".gamma: expected > 0 for the exponential ramp, got ", c.gamma);
  TORCH_CHECK(c.heal_steps == 0 || c.total_steps > c.heal_steps, prefix,
              ".heal_steps: ", c.heal_steps,
              " heal steps need a run longer than that (train.steps = ", c.total_steps, ")");
}

double BudgetSchedule::at(int64_t step) const {
  const auto& c = config_;
  if (step < c.warmup_steps) return 1.0;
  const double since = static_cast<double>(step - c.warmup_steps);
  const double drop = 1.0 - c.target;
  if (c.ramp == "exponential") return drop * std::exp(-c.gamma * since) + c.target;
  if (c.ramp_steps == 0) return c.target;
  const double progress = std::min(1.0, since / static_cast<double>(c.ramp_steps));
  if (c.ramp == "step") return progress >= 1.0 ? c.target : 1.0;
  if (c.ramp == "linear") return 1.0 - drop * progress;
  return c.target + drop * 0.5 * (1.0 + std::cos(M_PI * progress));  // cosine
}

bool BudgetSchedule::healing(int64_t step) const {
  return config_.heal_steps > 0 && step >= config_.total_steps - config_.heal_steps;
}

int64_t BudgetSchedule::first_step_at_or_below(double rho) const {
  if (rho >= 1.0) return config_.warmup_steps;
  if (rho < config_.target) return -1;  // never
  // ρ(t) never increases: bisection on the step.
  int64_t low = config_.warmup_steps, high = config_.warmup_steps + 1;
  while (at(high) > rho) {
    low = high;
    high = config_.warmup_steps + 2 * (high - config_.warmup_steps);
    if (high > (int64_t{1} << 40)) return -1;
  }
  while (high - low > 1) {
    const int64_t mid = low + (high - low) / 2;
    (at(mid) > rho ? low : high) = mid;
  }
  return at(low) <= rho ? low : high;
}

std::string BudgetSchedule::describe() const {
  const auto& c = config_;
  std::ostringstream out;
  out << "budget " << c.target << " of the dense cost";
  if (c.warmup_steps > 0) out << ", dense warmup " << c.warmup_steps << " steps";
  if (c.ramp == "exponential")
    out << ", exponential ramp γ=" << c.gamma;
  else if (c.ramp_steps > 0)
    out << ", " << c.ramp << " ramp over " << c.ramp_steps << " steps";
  if (c.heal_steps > 0) out << ", heal the last " << c.heal_steps << " steps";
  return out.str();
}

}  // namespace winnow::compression
