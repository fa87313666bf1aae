// The co-scheduler planner.
#include "compression/co_scheduler.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "compression/flops.h"
#include "compression/strategy.h"
#include "compression/token_evolution_monitor.h"
#include "data/keyed_random.h"

namespace winnow::compression {

namespace {

bool one_of(const std::string& value, const std::vector<std::string>& values) {
  return std::find(values.begin(), values.end(), value) != values.end();
}

std::string joined(const std::vector<std::string>& values) {
  std::string out;
  for (const auto& v : values) out += (out.empty() ? "" : ", ") + v;
  return out;
}

torch::Tensor int_tensor(const std::vector<int64_t>& values) {
  return torch::tensor(values, torch::kInt64);
}

}  // namespace

const std::vector<std::string>& coschedule_modes() {
  static const std::vector<std::string> modes = {
      "none", "joint", "token_only", "layer_only", "staged_lt", "staged_tl", "open_loop"};
  return modes;
}

CoScheduler::CoScheduler(const CoSchedulerConfig& config, const ModelShape& model)
    : config_(config),
      shape_(model),
      budget_(config.budget),
      allocator_(config.allocator, model.depth) {
  const auto& c = config;
  TORCH_CHECK(one_of(c.mode, coschedule_modes()) && c.mode != "none",
              "coschedule.mode: expected one of ", joined(coschedule_modes()), " (not none), got '",
              c.mode, "'");
  TORCH_CHECK(model.depth >= 1, "coschedule: the model has no blocks");
  TORCH_CHECK(model.tokens >= 1 && model.width >= 1 && model.mlp_hidden >= 1,
              "coschedule: the model's token count, width and MLP width are needed for the FLOPs "
              "budget, got tokens ",
              model.tokens, ", width ", model.width, ", MLP ", model.mlp_hidden);
  TORCH_CHECK(model.protected_tokens >= 0 && model.protected_tokens < model.tokens,
              "coschedule: ", model.protected_tokens, " protected tokens of ", model.tokens);
  TORCH_CHECK(c.interval >= 1, "coschedule.interval: expected >= 1 step between decisions, got ",
              c.interval);
  TORCH_CHECK(c.probe_every >= 0, "coschedule.probe_every: expected >= 0 (0 = no probes), got ",
              c.probe_every);
  TORCH_CHECK(c.statistics_every >= 1,
              "coschedule.statistics_every: expected >= 1 (1 = statistics at every step), got ",
              c.statistics_every);
  TORCH_CHECK(c.budget.warmup_steps >= 1,
              "coschedule.warmup_steps: expected >= 1: the first decision needs the statistics of "
              "at least one dense step");
  TORCH_CHECK(one_of(c.influence, {"bi", "relative_update", "taylor", "random"}),
              "coschedule.influence: expected bi, relative_update, taylor or random, got '",
              c.influence, "'");
  TORCH_CHECK(one_of(c.execution, {"auto", "skip", "drop"}),
              "coschedule.execution: expected auto, skip or drop, got '", c.execution, "'");
  TORCH_CHECK(one_of(c.profile, {"pld", "cosine"}),
              "coschedule.profile: expected pld or cosine, got '", c.profile, "'");
  TORCH_CHECK(one_of(c.eval, {"same", "dense", "structure"}),
              "coschedule.eval: expected same, dense or structure, got '", c.eval, "'");
  TORCH_CHECK(one_of(c.cost, {"flops", "time"}),
              "coschedule.cost: expected flops (analytic block FLOPs) or time (measured block "
              "times), got '",
              c.cost, "'");
  const double target = c.budget.target;
  staged_split_ = c.staged_split > 0.0 ? c.staged_split : 1.0 - 0.5 * (1.0 - target);
  TORCH_CHECK(c.staged_split == 0.0 || (c.staged_split > target && c.staged_split < 1.0),
              "coschedule.staged_split: expected a budget between coschedule.target (", target,
              ") and 1, or 0 for the midpoint; got ", c.staged_split);

  drop_mode_ = c.execution == "drop" || (c.execution == "auto" && model.grid_height > 0);
  std::string criterion = c.criterion;
  if (criterion == "auto")
    // The learned MoD router needs a route that scales the block's update by the router weight
    // (issue 10); until then skip mode selects by token norm.
    criterion = drop_mode_ && model.protected_tokens > 0 ? "cls_attention" : "norm";
  ReductionConfig reduction;
  reduction.criterion = criterion;
  reduction.strategy = drop_mode_ ? "prune" : "route";
  reduction.site = "auto";
  reduction.keep = {0.5};
  reduction.z_loss = c.z_loss;
  reduction.eval = "same";
  for (int64_t l = 0; l < model.depth; ++l) reduction.layers.push_back(l);
  ReductionSchedule schedule(reduction, model.depth, model.grid_height, model.grid_width,
                             "coschedule");
  auto module = std::make_shared<torch::nn::Module>();
  if (schedule.create_parameters(*module, model.width)) {
    parameters_ = std::make_shared<torch::nn::Module>();
    parameters_->register_module("coschedule", module);
  }
  TORCH_CHECK(!schedule.method().criterion().saliency_table(),
              "coschedule.criterion: saliency needs its τ table updated after every step, which "
              "the co-scheduler does not do; use it in a [compress] or [stage.NAME] section");
  method_ = schedule.shared_method();
  site_ = schedule.site();
  layers_.assign(static_cast<size_t>(model.depth), LayerCapacity{});
  for (auto& layer : layers_) layer.level = config_.allocator.grid;
  TORCH_CHECK(c.capacities.empty() || static_cast<int64_t>(c.capacities.size()) == model.depth,
              "coschedule.capacities: expected one capacity per layer (", model.depth, "), got ",
              c.capacities.size());
  for (size_t l = 0; l < c.capacities.size(); ++l) {
    const double level = c.capacities[l] * static_cast<double>(grid());
    TORCH_CHECK(c.capacities[l] >= 0.0 && c.capacities[l] <= 1.0 &&
                    std::abs(level - std::round(level)) < 1e-6,
                "coschedule.capacities: layer ", l, "'s capacity ", c.capacities[l],
                " is not on the grid of coschedule.grid = ", grid(), " steps");
    layers_[l].level = std::llround(level);
    TORCH_CHECK(!allocator_.is_protected(static_cast<int64_t>(l)) ||
                    layers_[l].level >= config_.allocator.min_protected_level,
                "coschedule.capacities: layer ", l, " is protected and cannot run below ",
                config_.allocator.min_protected_level, "/", grid());
  }
  dense_flops_ = block_flops(std::vector<int64_t>(static_cast<size_t>(model.depth), grid()));
}

double CoScheduler::sum_over_layers(
    const std::vector<int64_t>& levels,
    const std::function<double(int64_t, int64_t, int64_t)>& layer_cost) const {
  TORCH_CHECK(static_cast<int64_t>(levels.size()) == shape_.depth, "coschedule: ", levels.size(),
              " capacities for ", shape_.depth, " layers");
  const int64_t protect = shape_.protected_tokens;
  int64_t entering = shape_.tokens;
  double total = 0.0;
  for (int64_t l = 0; l < shape_.depth; ++l) {
    const int64_t level = levels[static_cast<size_t>(l)];
    if (level <= 0) continue;  // pruned: the tokens pass unchanged
    if (level >= grid()) {
      total += layer_cost(l, entering, entering);
      continue;
    }
    const double k = static_cast<double>(level) / static_cast<double>(grid());
    const int64_t kept = protect + keep_count_for_rate(k, entering - protect);
    if (drop_mode_ && site_ == Site::kPostAttention)
      total += layer_cost(l, entering, kept);
    else
      total += layer_cost(l, kept, kept);
    if (drop_mode_) entering = kept;
  }
  return total;
}

double CoScheduler::block_flops(const std::vector<int64_t>& levels) const {
  const BlockShape block{shape_.width, shape_.mlp_hidden};
  return sum_over_layers(levels, [&block](int64_t, int64_t attention, int64_t mlp) {
    const auto n = static_cast<double>(attention);
    return attention_forward_flops(block, n, n) +
           mlp_forward_flops(block, static_cast<double>(mlp));
  });
}

std::vector<int64_t> CoScheduler::timing_token_counts() const {
  if (!timed()) return {};
  const int64_t protect = shape_.protected_tokens, reducible = shape_.tokens - protect;
  std::vector<int64_t> counts;
  if (drop_mode_) counts.push_back(protect + 1);
  for (int64_t level = 1; level <= grid(); ++level)
    counts.push_back(
        protect +
        keep_count_for_rate(static_cast<double>(level) / static_cast<double>(grid()), reducible));
  std::sort(counts.begin(), counts.end());
  counts.erase(std::unique(counts.begin(), counts.end()), counts.end());
  return counts;
}

void CoScheduler::set_timing(LayerTimingTable table) {
  TORCH_CHECK(timed(), "coschedule: a timing table was given with coschedule.cost=", config_.cost,
              " (expected coschedule.cost=time)");
  const auto wanted = timing_token_counts();
  TORCH_CHECK(!table.empty() && table.depth() == shape_.depth &&
                  table.token_counts().front() <= wanted.front() &&
                  table.token_counts().back() >= wanted.back(),
              "coschedule.cost=time: expected a timing table of ", shape_.depth,
              " layers measured at ", wanted.front(), "..", wanted.back(), " tokens, got ",
              table.depth(), " layers at ",
              table.empty() ? std::string("no counts")
                            : std::to_string(table.token_counts().front()) + ".." +
                                  std::to_string(table.token_counts().back()));
  timing_ = std::move(table);
}

double CoScheduler::block_cost(const std::vector<int64_t>& levels) const {
  if (!timed()) return block_flops(levels);
  TORCH_CHECK(!timing_.empty(),
              "coschedule.cost=time: the blocks' times were not measured (the run measures them "
              "before its first step; a resumed run reads them from its checkpoint)");
  return sum_over_layers(levels, [this](int64_t layer, int64_t attention, int64_t mlp) {
    return timing_.attention(layer, attention) + timing_.mlp(layer, mlp);
  });
}

double CoScheduler::dense_block_cost() const {
  return block_cost(std::vector<int64_t>(static_cast<size_t>(shape_.depth), grid()));
}

bool CoScheduler::is_probe(int64_t step) const {
  const int64_t every = config_.probe_every;
  if (every <= 0 || budget_.in_warmup(step) || budget_.healing(step)) return false;
  return (step + 1 - config_.budget.warmup_steps) % every == 0;
}

bool CoScheduler::decides_after(int64_t step) const {
  const int64_t next = step + 1;
  if (next < config_.budget.warmup_steps || budget_.healing(next)) return false;
  return (next - config_.budget.warmup_steps) % config_.interval == 0;
}

bool CoScheduler::observes(int64_t step) const {
  const int64_t every = config_.statistics_every;
  return every <= 1 || (step + 1) % every == 0 || is_probe(step) || decides_after(step);
}

Plan CoScheduler::plan(int64_t step, bool training) const {
  Plan plan;
  plan.step = step;
  plan.training = training;
  plan.statistics = training && observes(step);
  plan.layers.resize(layers_.size());
  const bool full = training ? is_probe(step) : config_.eval == "dense";
  if (full) return plan;
  for (size_t l = 0; l < layers_.size(); ++l) {
    const int64_t level = layers_[l].level;
    auto& layer_plan = plan.layers[l];
    if (level <= 0) {
      layer_plan.gate.mode = LayerGate::Mode::kSkip;
    } else if (level < grid() && (training || config_.eval != "structure")) {
      PlannedReduction reduction;
      reduction.stage = "coschedule";
      reduction.method = method_;
      reduction.site = site_;
      reduction.keep = static_cast<double>(level) / static_cast<double>(grid());
      layer_plan.reductions.push_back(std::move(reduction));
    }
  }
  return plan;
}

MoveRules CoScheduler::rules_for(double budget) const {
  MoveRules rules;
  const std::string& mode = config_.mode;
  const bool first_phase = budget >= staged_split_;
  if (mode == "token_only" || (mode == "staged_tl" && first_phase)) {
    rules.drop = false;
    rules.revive = false;
  } else if (mode == "layer_only" || (mode == "staged_lt" && first_phase)) {
    rules.thin = false;
  } else if (mode == "staged_lt") {  // second phase: thin the remaining layers
    rules.drop = false;
    rules.revive = false;
  } else if (mode == "staged_tl") {  // second phase: drop whole layers, thinned or not
    rules.thin = false;
    rules.revive = false;
    rules.drop_thinned = true;
  }
  return rules;
}

std::vector<int64_t> CoScheduler::open_loop_levels(double budget) const {
  const int64_t depth = shape_.depth;
  const MoveRules token_rules = [] {
    MoveRules r;
    r.drop = false;
    return r;
  }();
  auto levels_at = [&](double theta) {
    std::vector<int64_t> levels;
    for (int64_t l = 0; l < depth; ++l) {
      const double position = static_cast<double>(l + 1) / static_cast<double>(depth);
      const double shape =
          config_.profile == "pld" ? position : 0.5 * (1.0 - std::cos(M_PI * position));
      const double k = 1.0 - shape * (1.0 - theta);
      const auto level = static_cast<int64_t>(std::floor(k * grid() + 1e-9));
      levels.push_back(std::clamp(level, allocator_.floor_level(l, token_rules), grid()));
    }
    return levels;
  };
  // The largest θ in [0, 1] whose profile fits the budget (cost falls as θ falls).
  double low = 0.0, high = 1.0;
  const double allowed = budget * dense_block_cost();
  if (block_cost(levels_at(high)) <= allowed) return levels_at(high);
  for (int i = 0; i < 50; ++i) {
    const double mid = 0.5 * (low + high);
    (block_cost(levels_at(mid)) <= allowed ? low : high) = mid;
  }
  return levels_at(low);
}

std::vector<PlannerDecision> CoScheduler::observe(int64_t step,
                                                  const TokenEvolutionMonitor* monitor) {
  if (!decides_after(step)) return {};
  // Meet the lowest budget of the coming interval (ρ never rises), so every step meets its own.
  const double budget = budget_.at(step + config_.interval);
  std::vector<int64_t> before;
  for (const auto& layer : layers_) before.push_back(layer.level);
  std::vector<std::string> reasons(layers_.size());

  if (config_.mode == "open_loop") {
    const auto levels = open_loop_levels(budget);
    for (size_t l = 0; l < layers_.size(); ++l) {
      auto& layer = layers_[l];
      ++layer.since_change;
      if (levels[l] != layer.level) {
        layer.direction = levels[l] < layer.level ? -1 : 1;
        layer.level = levels[l];
        layer.since_change = 0;
        reasons[l] = "open_loop";
      }
    }
    if (block_cost(levels) > budget * dense_block_cost() * (1.0 + 1e-12)) ++infeasible_;
  } else {
    const bool random = config_.influence == "random";
    TORCH_CHECK(random || monitor != nullptr,
                "coschedule: a closed-loop decision needs the token-evolution monitor");
    const int64_t depth = shape_.depth;
    AllocationProblem problem;
    problem.influence.assign(static_cast<size_t>(depth), 0.0);
    problem.movable.assign(static_cast<size_t>(depth), random);
    double total = 0.0;
    for (int64_t l = 0; l < depth && random; ++l) {
      // The control: a fresh uniform weight per layer and decision, keyed (every rank draws the
      // same), and no knowledge of which tokens carry the change.
      const uint64_t bits = data::hash_keys(
          {config_.seed, static_cast<uint64_t>(decisions_), static_cast<uint64_t>(l)});
      problem.influence[static_cast<size_t>(l)] = static_cast<double>(bits >> 11) * 0x1.0p-53;
      total += problem.influence[static_cast<size_t>(l)];
    }
    for (int64_t l = 0; l < depth && !random; ++l) {
      const bool seen =
          config_.influence == "taylor" ? monitor->taylor_observed(l) : monitor->observed(l);
      if (!seen || !monitor->observed(l)) continue;
      double w = config_.influence == "bi"                ? monitor->block_influence(l)
                 : config_.influence == "relative_update" ? monitor->relative_update(l)
                                                          : monitor->taylor(l);
      w = std::isfinite(w) ? std::max(w, 0.0) : 0.0;
      problem.influence[static_cast<size_t>(l)] = w;
      problem.movable[static_cast<size_t>(l)] = true;
      total += w;
    }
    if (total > 0.0)
      for (auto& w : problem.influence) w /= total;
    if (random)
      problem.kept_mass = [](int64_t, double capacity) { return capacity; };
    else
      problem.kept_mass = [monitor](int64_t layer, double capacity) {
        return monitor->evolution_mass(layer, capacity);
      };
    problem.cost = [this](const std::vector<int64_t>& levels) { return block_cost(levels); };
    const bool staged = config_.mode == "staged_lt" || config_.mode == "staged_tl";
    problem.budget =
        (staged && budget >= staged_split_ ? std::max(budget, staged_split_) : budget) *
        dense_block_cost();
    const auto result = allocator_.decide(problem, rules_for(budget), layers_);
    if (!result.feasible) ++infeasible_;
    for (const auto& move : result.moves) reasons[static_cast<size_t>(move.layer)] = move.reason;
  }
  ++decisions_;
  std::vector<int64_t> after;
  for (const auto& layer : layers_) after.push_back(layer.level);
  const double cost = block_cost(after) / dense_block_cost();
  std::vector<PlannerDecision> decisions;
  for (size_t l = 0; l < layers_.size(); ++l) {
    if (after[l] == before[l]) continue;
    PlannerDecision d;
    d.step = step;
    d.layer = static_cast<int64_t>(l);
    d.from = static_cast<double>(before[l]) / static_cast<double>(grid());
    d.to = static_cast<double>(after[l]) / static_cast<double>(grid());
    d.reason = reasons[l];
    d.budget = budget;
    d.cost = cost;
    d.cost_model = config_.cost;
    decisions.push_back(d);
  }
  return decisions;
}

std::vector<int64_t> CoScheduler::layers_to_remove(int64_t step) const {
  if (!config_.heal_remove || !budget_.healing(step)) return {};
  std::vector<int64_t> pruned;
  for (size_t l = 0; l < layers_.size(); ++l)
    if (layers_[l].level <= 0) pruned.push_back(static_cast<int64_t>(l));
  return pruned;
}

std::shared_ptr<Planner> CoScheduler::without_layers(const std::vector<int64_t>& kept) const {
  TORCH_CHECK(!kept.empty() && std::is_sorted(kept.begin(), kept.end()) &&
                  std::adjacent_find(kept.begin(), kept.end()) == kept.end() && kept.front() >= 0 &&
                  kept.back() < shape_.depth,
              "coschedule: the kept layers must be ascending and distinct in 0..",
              shape_.depth - 1);
  // The configuration that builds the smaller structure (as `winnow prune` writes it): the kept
  // layers' capacities, and the protected ones that remain, renumbered.
  CoSchedulerConfig config = config_;
  ModelShape shape = shape_;
  shape.depth = static_cast<int64_t>(kept.size());
  config.capacities.clear();
  config.allocator.protected_layers.clear();
  const std::vector<double> capacity = capacities();
  for (size_t j = 0; j < kept.size(); ++j) {
    const int64_t layer = kept[j];
    config.capacities.push_back(capacity[static_cast<size_t>(layer)]);
    if (allocator_.is_protected(layer))
      config.allocator.protected_layers.push_back(static_cast<int64_t>(j));
  }
  auto smaller = std::make_shared<CoScheduler>(config, shape);
  for (size_t j = 0; j < kept.size(); ++j)
    smaller->layers_[j] = layers_[static_cast<size_t>(kept[j])];
  smaller->decisions_ = decisions_;
  smaller->infeasible_ = infeasible_;
  if (!timing_.empty()) {  // the kept layers' rows of the measured table
    const auto rows = torch::tensor(kept, torch::kInt64);
    smaller->timing_ =
        LayerTimingTable(timing_.token_counts(), timing_.attention_seconds().index_select(0, rows),
                         timing_.mlp_seconds().index_select(0, rows));
  }
  return smaller;
}

std::vector<double> CoScheduler::capacities() const {
  std::vector<double> out;
  for (const auto& layer : layers_)
    out.push_back(static_cast<double>(layer.level) / static_cast<double>(grid()));
  return out;
}

std::map<std::string, torch::Tensor> CoScheduler::state() const {
  std::vector<int64_t> level, direction, since, lowest, zero;
  for (const auto& layer : layers_) {
    level.push_back(layer.level);
    direction.push_back(layer.direction);
    since.push_back(layer.since_change);
    lowest.push_back(layer.at_lowest);
    zero.push_back(layer.at_zero);
  }
  std::map<std::string, torch::Tensor> state = {
      {"level", int_tensor(level)},        {"direction", int_tensor(direction)},
      {"since_change", int_tensor(since)}, {"at_lowest", int_tensor(lowest)},
      {"at_zero", int_tensor(zero)},       {"counters", int_tensor({decisions_, infeasible_})}};
  if (timed())
    for (auto& [name, tensor] : timing_.state()) state[name] = tensor;
  return state;
}

void CoScheduler::load_state(const std::map<std::string, torch::Tensor>& state) {
  auto read = [&](const std::string& name, int64_t size) {
    auto it = state.find(name);
    TORCH_CHECK(it != state.end(), "coschedule: the checkpoint's planner state has no '", name,
                "' (was it written by another planner?)");
    const auto t = it->second.to(torch::kInt64).contiguous();
    TORCH_CHECK(t.numel() == size, "coschedule: planner state '", name, "' has ", t.numel(),
                " values, expected ", size, " (a model of another depth?)");
    return std::vector<int64_t>(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + size);
  };
  const int64_t depth = shape_.depth;
  const auto level = read("level", depth), direction = read("direction", depth),
             since = read("since_change", depth), lowest = read("at_lowest", depth),
             zero = read("at_zero", depth), counters = read("counters", 2);
  for (int64_t l = 0; l < depth; ++l) {
    TORCH_CHECK(level[l] >= 0 && level[l] <= grid(), "coschedule: checkpoint capacity level ",
                level[l], " of layer ", l, " is outside 0..", grid(),
                " (was it trained with another coschedule.grid?)");
    layers_[l] = LayerCapacity{level[l], direction[l], since[l], lowest[l], zero[l]};
  }
  decisions_ = counters[0];
  infeasible_ = counters[1];
  // The decisions after the resume point use the table the run measured at its start, never a
  // new measurement (times differ between runs, decisions must not).
  auto table = LayerTimingTable::from_state(state, "coschedule");
  if (timed()) {
    TORCH_CHECK(!table.empty(),
                "coschedule.cost=time: the checkpoint holds no timing table (it was trained with "
                "coschedule.cost=flops); resume with --coschedule.cost flops");
    set_timing(std::move(table));
  }
}

std::string CoScheduler::describe() const {
  std::ostringstream out;
  out << "coschedule " << config_.mode << ": " << budget_.describe() << "; capacities on 1/"
      << grid() << " steps, decided every " << config_.interval << " steps";
  if (config_.probe_every > 0) out << ", probes every " << config_.probe_every;
  if (config_.eval != "same") out << ", evaluated " << config_.eval;
  if (config_.statistics_every > 1 && needs_statistics())
    out << ", statistics every " << config_.statistics_every;
  if (config_.mode != "open_loop")
    out << ", influence " << config_.influence;
  else
    out << ", profile " << config_.profile;
  out << "; " << (drop_mode_ ? "drop" : "skip") << " mode (" << method_->name() << " at "
      << site_name(site_) << "); budget on "
      << (timed() ? "measured block time (coschedule.cost=time)"
                  : "analytic block FLOPs (coschedule.cost=flops)");
  if (!config_.allocator.protected_layers.empty()) {
    out << ", protected layers";
    for (auto l : config_.allocator.protected_layers) out << " " << l;
    out << " >= " << config_.allocator.min_protected_level << "/" << grid();
  }
  return out.str();
}

}  // namespace winnow::compression
