// BudgetSchedule: ρ(t), the fraction of the dense model's block FLOPs (or time) that a training
// step may spend — dense warmup (statistics only), a ramp to the target (cosine, linear,
// exponential or step), a hold, and an optional heal phase at the end in which the structure is
// frozen. Formulas: ../shared/research/co_compression.md §7.4 (cosine: EViT's keep-rate ramp
// applied to the cost fraction; exponential: PLD's θ(t)).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace winnow::compression {

struct BudgetScheduleConfig {
  double target = 0.6;          // ρ*, in (0, 1]
  int64_t warmup_steps = 0;     // T_w: ρ = 1, statistics only
  int64_t ramp_steps = 0;       // T_r: ρ goes from 1 to ρ* (0 = at once after warmup)
  std::string ramp = "cosine";  // cosine | linear | exponential | step
  double gamma = 0.001;         // exponential: ρ = (1 − ρ*)·e^(−γ(t − T_w)) + ρ*
  int64_t heal_steps = 0;       // T_h: the last T_h of total_steps freeze the structure
  int64_t total_steps = 0;      // the run's length (needed when heal_steps > 0)
};

const std::vector<std::string>& budget_ramps();

class BudgetSchedule {
 public:
  BudgetSchedule() = default;
  // Validates; errors name `prefix`.* options.
  explicit BudgetSchedule(const BudgetScheduleConfig& config,
                          const std::string& prefix = "coschedule");

  // ρ(t) at optimizer step `step`: 1 in warmup, then the ramp, then ρ*. Never increases with t.
  double at(int64_t step) const;
  double target() const { return config_.target; }
  bool in_warmup(int64_t step) const { return step < config_.warmup_steps; }
  // Whether `step` is in the heal phase (structure frozen).
  bool healing(int64_t step) const;
  // The first step at which ρ(t) <= rho (the ramp's inverse; warmup end for rho >= 1).
  int64_t first_step_at_or_below(double rho) const;
  const BudgetScheduleConfig& config() const { return config_; }
  std::string describe() const;

 private:
  BudgetScheduleConfig config_;
};

}  // namespace winnow::compression
