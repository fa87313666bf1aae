// The greedy capacity allocator of the co-scheduler.
#include "compression/capacity_allocator.h"

#include <torch/torch.h>

#include <algorithm>
#include <limits>

namespace winnow::compression {

namespace {

constexpr int64_t kDown = -1, kUp = 1;

bool dwell_blocked(const LayerCapacity& layer, int64_t direction, int64_t dwell) {
  return layer.direction == -direction && layer.since_change < dwell;
}

// Budget comparisons tolerate rounding in the cost sums.
bool within(double cost, double budget) {
  return cost <= budget * (1.0 + 1e-12) + 1e-300;
}

}  // namespace

CapacityAllocator::CapacityAllocator(const AllocatorOptions& options, int64_t depth,
                                     const std::string& prefix)
    : options_(options), protected_(static_cast<size_t>(depth), false) {
  TORCH_CHECK(options.grid >= 1 && options.grid <= 64, prefix,
              ".grid: expected 1..64 capacity steps (8 gives {0, 1/8, ..., 1}), got ",
              options.grid);
  TORCH_CHECK(options.min_protected_level >= 1 && options.min_protected_level <= options.grid,
              prefix, ".min_capacity: expected a capacity in (0, 1] on the grid, got level ",
              options.min_protected_level, " of ", options.grid);
  TORCH_CHECK(options.hysteresis >= 0.0, prefix, ".hysteresis: expected >= 0, got ",
              options.hysteresis);
  TORCH_CHECK(options.dwell >= 0, prefix, ".dwell: expected >= 0 decisions, got ", options.dwell);
  TORCH_CHECK(options.fade >= 0, prefix, ".fade: expected >= 0 decisions, got ", options.fade);
  for (int64_t layer : options.protected_layers) {
    TORCH_CHECK(layer >= 0 && layer < depth, prefix, ".protected: layer ", layer,
                " is outside the model's 0..", depth - 1);
    protected_[static_cast<size_t>(layer)] = true;
  }
}

int64_t CapacityAllocator::floor_level(int64_t layer, const MoveRules& rules) const {
  if (is_protected(layer)) return rules.thin ? options_.min_protected_level : options_.grid;
  if (rules.drop) return 0;
  return rules.thin ? 1 : options_.grid;
}

int64_t CapacityAllocator::lower(int64_t layer, int64_t level, const MoveRules& rules) const {
  if (level == 0) return -1;
  const int64_t floor = floor_level(layer, rules);
  if (!rules.thin) {
    // Layer axis only: a dense layer drops at once; a thinned one stays unless drop_thinned.
    return (level == options_.grid || rules.drop_thinned) && floor == 0 ? 0 : -1;
  }
  if (level == options_.grid && !rules.new_thinning) return -1;
  const int64_t to = level - 1;
  return to >= floor ? to : -1;
}

int64_t CapacityAllocator::upper(int64_t layer, int64_t level, const MoveRules& rules) const {
  (void)layer;
  if (level >= options_.grid) return -1;
  if (level == 0 && !rules.revive) return -1;
  if (!rules.thin) return level == 0 ? options_.grid : -1;
  return level + 1;
}

double CapacityAllocator::damage(const AllocationProblem& problem, int64_t layer,
                                 int64_t level) const {
  const double w = problem.influence[static_cast<size_t>(layer)];
  if (level >= options_.grid) return 0.0;
  if (level <= 0) return w;
  const double kept = problem.kept_mass(layer, static_cast<double>(level) / options_.grid);
  return w * (1.0 - std::clamp(kept, 0.0, 1.0));
}

AllocationResult CapacityAllocator::decide(const AllocationProblem& problem, const MoveRules& rules,
                                           std::vector<LayerCapacity>& layers) const {
  const auto depth = static_cast<int64_t>(layers.size());
  TORCH_CHECK(static_cast<int64_t>(protected_.size()) == depth, "CapacityAllocator: ", depth,
              " layer states for a model of ", protected_.size(), " layers");
  TORCH_CHECK(static_cast<int64_t>(problem.influence.size()) == depth,
              "CapacityAllocator: expected ", depth, " influences, got ", problem.influence.size());
  TORCH_CHECK(problem.movable.empty() || static_cast<int64_t>(problem.movable.size()) == depth,
              "CapacityAllocator: expected ", depth, " movable flags");
  for (auto& layer : layers) {
    TORCH_CHECK(layer.level >= 0 && layer.level <= options_.grid, "CapacityAllocator: level ",
                layer.level, " outside 0..", options_.grid);
    ++layer.since_change;
    layer.at_lowest = layer.level == 1 ? layer.at_lowest + 1 : 0;
    layer.at_zero = layer.level == 0 ? layer.at_zero + 1 : 0;
  }
  auto levels = [&] {
    std::vector<int64_t> out;
    for (const auto& layer : layers) out.push_back(layer.level);
    return out;
  };
  auto cost_with = [&](int64_t layer, int64_t level) {
    auto l = levels();
    l[static_cast<size_t>(layer)] = level;
    return problem.cost(l);
  };
  auto movable = [&](int64_t layer) {
    return problem.movable.empty() || problem.movable[static_cast<size_t>(layer)];
  };
  AllocationResult result;
  double cost = problem.cost(levels());
  auto apply = [&](int64_t layer, int64_t to, double new_cost, const std::string& reason) {
    auto& state = layers[static_cast<size_t>(layer)];
    CapacityMove move;
    move.layer = layer;
    move.from = state.level;
    move.to = to;
    move.damage = damage(problem, layer, to) - damage(problem, layer, state.level);
    move.cost = new_cost - cost;
    move.reason = reason;
    state.direction = to < state.level ? kDown : kUp;
    state.level = to;
    state.since_change = 0;
    if (to != 1) state.at_lowest = 0;
    if (to != 0) state.at_zero = 0;
    cost = new_cost;
    result.moves.push_back(move);
  };

  // A candidate down move of `layer`: its ratio damage added / cost saved, or none.
  struct Candidate {
    int64_t layer = -1, to = -1;
    double ratio = 0.0, cost = 0.0, damage = 0.0;
    bool blocked = false;  // by dwell or fade-out
  };
  auto down_move = [&](int64_t layer) {
    Candidate c;
    const auto& state = layers[static_cast<size_t>(layer)];
    if (!movable(layer)) return c;
    const int64_t to = lower(layer, state.level, rules);
    if (to < 0) return c;
    const double new_cost = cost_with(layer, to);
    const double saved = cost - new_cost;
    if (!(saved > 0.0)) return c;
    c.layer = layer;
    c.to = to;
    c.cost = new_cost;
    c.damage = damage(problem, layer, to) - damage(problem, layer, state.level);
    c.ratio = c.damage / saved;
    c.blocked = dwell_blocked(state, kDown, options_.dwell) ||
                (rules.thin && to == 0 && state.at_lowest < options_.fade);
    return c;
  };
  auto up_move = [&](int64_t layer) {
    Candidate c;
    const auto& state = layers[static_cast<size_t>(layer)];
    if (!movable(layer)) return c;
    const int64_t to = upper(layer, state.level, rules);
    if (to < 0) return c;
    const double new_cost = cost_with(layer, to);
    const double added = new_cost - cost;
    c.layer = layer;
    c.to = to;
    c.cost = new_cost;
    c.damage = damage(problem, layer, state.level) - damage(problem, layer, to);  // removed
    c.ratio = added > 0.0 ? c.damage / added : std::numeric_limits<double>::infinity();
    c.blocked = dwell_blocked(state, kUp, options_.dwell);
    return c;
  };

  // 1. Meet the budget.
  while (!within(cost, problem.budget)) {
    Candidate best, forced;
    for (int64_t l = 0; l < depth; ++l) {
      const auto c = down_move(l);
      if (c.layer < 0) continue;
      auto& slot = c.blocked ? forced : best;
      if (slot.layer < 0 || c.ratio < slot.ratio) slot = c;
    }
    if (best.layer >= 0) {
      apply(best.layer, best.to, best.cost, "budget");
    } else if (forced.layer >= 0) {
      apply(forced.layer, forced.to, forced.cost, "forced");
    } else {
      result.feasible = false;
      break;
    }
  }
  // 2. Spend slack on the moves up that remove the most damage per cost.
  while (true) {
    Candidate best;
    for (int64_t l = 0; l < depth; ++l) {
      const auto c = up_move(l);
      if (c.layer < 0 || c.blocked || !(c.damage > 0.0) || !within(c.cost, problem.budget))
        continue;
      if (best.layer < 0 || c.ratio > best.ratio) best = c;
    }
    if (best.layer < 0) break;
    apply(best.layer, best.to, best.cost, "slack");
  }
  // 3. Swaps, each paying for itself with hysteresis.
  for (int64_t swaps = 0; swaps < depth * options_.grid; ++swaps) {
    Candidate up;
    for (int64_t l = 0; l < depth; ++l) {
      const auto c = up_move(l);
      if (c.layer < 0 || c.blocked || !(c.damage > 0.0)) continue;
      if (up.layer < 0 || c.ratio > up.ratio) up = c;
    }
    if (up.layer < 0) break;
    Candidate down;
    for (int64_t l = 0; l < depth; ++l) {
      if (l == up.layer) continue;
      const auto c = down_move(l);
      if (c.layer < 0 || c.blocked) continue;
      if (down.layer < 0 || c.ratio < down.ratio) down = c;
    }
    if (down.layer < 0) break;
    if (!(up.ratio > (1.0 + options_.hysteresis) * down.ratio) || !(up.damage > down.damage)) break;
    auto both = levels();
    both[static_cast<size_t>(up.layer)] = up.to;
    both[static_cast<size_t>(down.layer)] = down.to;
    const double both_cost = problem.cost(both);
    if (!within(both_cost, problem.budget)) break;
    apply(down.layer, down.to, down.cost, "swap");
    apply(up.layer, up.to, both_cost, "swap");
  }
  result.cost = cost;
  return result;
}

}  // namespace winnow::compression
