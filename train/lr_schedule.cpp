// Linear-warmup cosine learning-rate schedule.
#include "train/lr_schedule.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

namespace winnow::train {

void LrSchedule::validate() const {
  TORCH_CHECK(peak_lr > 0, "lr: expected a peak learning rate > 0, got ", peak_lr);
  TORCH_CHECK(total_steps > 0, "train.steps: expected > 0, got ", total_steps);
  TORCH_CHECK(warmup_steps >= 0 && warmup_steps <= total_steps,
              "optim.warmup_steps: expected in [0, ", total_steps, "], got ", warmup_steps);
  TORCH_CHECK(min_lr_ratio >= 0 && min_lr_ratio <= 1,
              "optim.min_lr_ratio: expected in [0, 1], got ", min_lr_ratio);
}

double LrSchedule::at(int64_t step) const {
  if (step < warmup_steps)
    return peak_lr * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
  const double min_lr = peak_lr * min_lr_ratio;
  const int64_t decay_steps = std::max<int64_t>(1, total_steps - warmup_steps);
  const double progress =
      std::min(1.0, static_cast<double>(step - warmup_steps) / static_cast<double>(decay_steps));
  return min_lr + (peak_lr - min_lr) * 0.5 * (1.0 + std::cos(M_PI * progress));
}

}  // namespace winnow::train
