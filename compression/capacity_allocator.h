// CapacityAllocator: the co-scheduler's decision rule. Every layer l has a capacity k_l on the grid
// {0, 1/G, …, 1} (1 dense, 0 < k < 1 a share of the tokens, 0 the layer pruned). Given each layer's
// influence w_l, the share M_l(k) of its token change that capacity k keeps, a cost model and a
// budget, it moves capacities one grid step at a time, greedily, choosing the move with the least
// damage per cost saved (co_compression.md §7.5):
//   damage  D_l(k) = w_l · (1 − M_l(k))         (M_l(0) = 0: dropping the layer costs w_l)
//   down move ratio = (D_l(k') − D_l(k)) / (C(k) − C(k'))
// It is a pure function of its inputs and of the per-layer state it carries across decisions
// (dwell counters, fade-out), so every rank takes the same decisions from the same statistics.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace winnow::compression {

// Which moves are allowed (the co-scheduler's modes restrict them).
struct MoveRules {
  bool thin = true;           // levels strictly between 0 and G (the token axis)
  bool drop = true;           // level 0 (the layer axis)
  bool revive = true;         // a layer at level 0 may come back
  bool new_thinning = true;   // a dense layer may start thinning (staged phases restrict this)
  bool drop_thinned = false;  // without `thin`: a thinned layer may also drop at once
};
// Without `thin`, the levels are {0, G} for dense layers: a down move drops the layer at once
// (layer-only axes) and a thinned layer (left by an earlier phase) stays where it is unless
// `drop_thinned`. With `thin`,
// a layer reaches 0 only from level 1, after `fade` decisions there.

struct AllocatorOptions {
  int64_t grid = 8;                       // G: capacities are level / G
  std::vector<int64_t> protected_layers;  // never below min_protected_level, never 0
  int64_t min_protected_level = 4;        // k_min of protected layers, in grid levels
  double hysteresis = 0.1;                // ε: a swap needs gain ratio > (1 + ε) × loss ratio
  int64_t dwell = 3;                      // decisions a layer waits before reversing direction
  int64_t fade = 1;                       // decisions at the lowest non-zero level before 0
};

// What the allocator remembers of a layer between decisions (saved in checkpoints).
struct LayerCapacity {
  int64_t level = 0;         // k = level / G
  int64_t direction = 0;     // last move: −1 down, +1 up, 0 none yet
  int64_t since_change = 0;  // decisions since the last move
  int64_t at_lowest = 0;     // consecutive decisions spent at level 1 (fade-out)
  int64_t at_zero = 0;       // consecutive decisions spent at level 0
};

struct CapacityMove {
  int64_t layer = 0;
  int64_t from = 0, to = 0;  // levels
  double damage = 0.0;       // D(to) − D(from): > 0 down, < 0 up
  double cost = 0.0;         // C(after) − C(before)
  std::string reason;        // "budget", "slack", "swap", "forced" (dwell or fade overridden)
};

struct AllocationProblem {
  std::vector<double> influence;                            // w_l >= 0, [L]
  std::function<double(int64_t, double)> kept_mass;         // M_l(k) in [0, 1], M_l(1) = 1
  std::function<double(const std::vector<int64_t>&)> cost;  // C(levels), total
  double budget = 0.0;                                      // allowed C
  std::vector<bool> movable;  // [L]; false = keep the layer where it is (e.g. never observed)
};

struct AllocationResult {
  std::vector<CapacityMove> moves;  // in the order applied
  double cost = 0.0;                // C after the moves
  bool feasible = true;             // false: even every allowed move leaves C above the budget
};

class CapacityAllocator {
 public:
  CapacityAllocator() = default;
  // Validates the options for `depth` layers; errors name `prefix`.* options.
  CapacityAllocator(const AllocatorOptions& options, int64_t depth,
                    const std::string& prefix = "coschedule");

  const AllocatorOptions& options() const { return options_; }
  bool is_protected(int64_t layer) const { return protected_[static_cast<size_t>(layer)]; }
  // The lowest level `layer` may take under `rules`.
  int64_t floor_level(int64_t layer, const MoveRules& rules) const;

  // One decision: advances every layer's counters, then
  //   1. while C > budget: the allowed down move with the least damage per cost saved (dwell and
  //      fade-out are overridden, as "forced", only when nothing else meets the budget);
  //   2. while a move up fits the budget: the one with the most damage removed per cost added;
  //   3. swaps: raise the best layer and lower the cheapest other one when the gain ratio beats the
  //      loss ratio by the hysteresis margin and the pair fits the budget.
  // Ties go to the lower layer index.
  AllocationResult decide(const AllocationProblem& problem, const MoveRules& rules,
                          std::vector<LayerCapacity>& layers) const;

  // Damage of `layer` at `level`.
  double damage(const AllocationProblem& problem, int64_t layer, int64_t level) const;

 private:
  int64_t lower(int64_t layer, int64_t level, const MoveRules& rules) const;  // −1: none
  int64_t upper(int64_t layer, int64_t level, const MoveRules& rules) const;  // −1: none

  AllocatorOptions options_;
  std::vector<bool> protected_;
};

}  // namespace winnow::compression
