// Learning-rate schedule: linear warmup, then cosine decay to a floor.
#pragma once

#include <cstdint>

namespace winnow::train {

struct LrSchedule {
  double peak_lr = 1e-3;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;
  double min_lr_ratio = 0.0;  // final lr = peak_lr * min_lr_ratio

  void validate() const;
  // Step s (0-based): warmup (s+1)/W·peak for s < W; then
  // min + (peak - min)·½(1 + cos(π·(s - W)/(S - W))).
  double at(int64_t step) const;
};

}  // namespace winnow::train
