// The co-scheduler's overhead by components: a dense training step and, right after it in the
// same round, the co-scheduler's own work for one step — every block's token-evolution statistics,
// their all-reduce and EMA update, and one allocator decision — so each component is a ratio to a
// step measured seconds apart. On a machine whose speed drifts this resolves overheads of a few
// tenths of a percent that a difference of whole-step medians cannot (`winnow bench-plans`).
#pragma once

#include <cstdint>
#include <vector>

#include "compression/planner.h"
#include "compression/token_evolution_monitor.h"
#include "dist/communicator.h"
#include "launch/interleaved_steps.h"

namespace winnow::launch {

// Seconds per round (one entry per timed round) of each component.
struct CoscheduleOverheadRounds {
  std::vector<double> step;  // one dense training step (the slowest rank's)
  std::vector<double>
      statistics;                // monitor.observe of every block on a [batch, tokens, width] pair
  std::vector<double> update;    // the step sums' clone, all-reduce and EMA update
  std::vector<double> decision;  // planner.observe at a deciding step (the allocator)
};

struct CoscheduleOverheadOptions {
  int64_t batch = 1;              // samples per rank (the per-rank micro-batch)
  compression::ModelShape shape;  // its tokens (dense), width and protected tokens are used
  int64_t rounds = 10;            // timed rounds, after one untimed round
  int64_t step = 0;  // the optimizer step of the first round's decision (past the warmup)
};

// Collective. Per round: one training step of `dense`, then on `monitor` (of the model's depth)
// every block's statistics on a fixed [batch, shape.tokens, shape.width] input pair (x and a
// perturbed copy: every δ bin is used), the all-reduce and update, then planner.observe(step) —
// which must decide at every step (coschedule.interval = 1). The planner and monitor are the
// bench's own, not the dense variant's.
CoscheduleOverheadRounds time_coschedule_overhead(TimedVariant& dense,
                                                  compression::Planner& planner,
                                                  compression::TokenEvolutionMonitor& monitor,
                                                  dist::Communicator& comm,
                                                  const CoscheduleOverheadOptions& options);

}  // namespace winnow::launch
