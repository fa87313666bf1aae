// Per-step token-evolution sums of every block, their EMAs, and the state that carries over.
#include "compression/token_evolution_monitor.h"

#include <cmath>
#include <vector>

namespace winnow::compression {

namespace {

// Groups of statistics that are observed (and so update their EMAs) independently.
constexpr int64_t kEvolutionGroup = 0;   // BI, relative update, δ histogram: kTokenCount > 0
constexpr int64_t kUniformityGroup = 1;  // kUniformitySamples > 0
constexpr int64_t kTaylorGroup = 2;      // kTaylorCount > 0
constexpr int64_t kGroups = 3;

const char* const kGroupNames[kGroups] = {"block influence / relative update / δ histogram",
                                          "uniformity", "Taylor saliency"};

bool all_finite(const std::vector<double>& values) {
  for (const double v : values) {
    if (!std::isfinite(v)) return false;
  }
  return true;
}

torch::Tensor cpu_doubles(std::vector<int64_t> shape) {
  return torch::zeros(shape, torch::TensorOptions().dtype(torch::kFloat64));
}

}  // namespace

TokenEvolutionMonitor::TokenEvolutionMonitor(int64_t depth, TokenEvolutionOptions options,
                                             torch::Device device)
    : depth_(depth), options_(options), device_(device) {
  TORCH_CHECK(depth > 0, "token evolution: expected a model depth > 0, got ", depth);
  TORCH_CHECK(options.ema_decay >= 0 && options.ema_decay < 1,
              "token evolution: expected an EMA decay in [0, 1), got ", options.ema_decay);
  block_influence_ = cpu_doubles({depth});
  relative_update_ = cpu_doubles({depth});
  uniformity_ = cpu_doubles({depth});
  taylor_ = cpu_doubles({depth});
  taylor_per_token_ = cpu_doubles({depth});
  delta_share_ = cpu_doubles({depth, kDeltaBins});
  delta_mass_ = cpu_doubles({depth, kDeltaBins});
  observations_ = torch::zeros({depth, kGroups}, torch::kInt64);
  non_finite_ = torch::zeros({depth}, torch::kInt64);
  last_sums_ = cpu_doubles({depth, kEvolutionFields});
  start_step();
}

void TokenEvolutionMonitor::start_step() {
  // A fresh tensor rather than zero_(): hooks of a dropped graph, or a caller still holding the
  // previous sums, never touch the new step.
  step_sums_ = torch::zeros({depth_, kEvolutionFields},
                            torch::TensorOptions().dtype(torch::kFloat64).device(device_));
}

void TokenEvolutionMonitor::check_layer(int64_t layer) const {
  TORCH_CHECK(layer >= 0 && layer < depth_, "token evolution: expected a layer in [0, ", depth_,
              "), got ", layer);
}

void TokenEvolutionMonitor::observe(int64_t layer, const torch::Tensor& x, const torch::Tensor& y,
                                    const torch::Tensor& keep, int64_t protected_count) {
  check_layer(layer);
  TORCH_CHECK(x.defined() && x.device() == device_, "token evolution: the monitor is on ", device_,
              ", layer ", layer, "'s tokens on ",
              x.defined() ? x.device() : torch::Device(torch::kCPU));
  auto row = step_sums_.select(0, layer);  // [kEvolutionFields]
  row.add_(block_evolution_sums(x, y, keep, protected_count));
  if (options_.taylor && torch::GradMode::is_enabled()) {
    add_taylor_saliency_hook(x, y, keep, protected_count, row);
  }
}

void TokenEvolutionMonitor::discard_step() {
  start_step();
}

void TokenEvolutionMonitor::update(const torch::Tensor& reduced, int64_t step) {
  TORCH_CHECK(reduced.defined() && reduced.dim() == 2 && reduced.size(0) == depth_ &&
                  reduced.size(1) == kEvolutionFields,
              "token evolution: expected reduced sums [", depth_, ", ", kEvolutionFields, "], got ",
              reduced.defined() ? reduced.sizes() : torch::IntArrayRef{});
  TORCH_CHECK(step > last_step_, "token evolution: update for step ", step, " after step ",
              last_step_, " (one update per step, steps increasing)");
  const auto sums = reduced.detach().to(torch::kCPU, torch::kFloat64).contiguous().clone();
  const double decay = options_.ema_decay;
  auto observations = observations_.accessor<int64_t, 2>();
  auto non_finite = non_finite_.accessor<int64_t, 1>();
  // ema ← value on a group's first observation, else β·ema + (1 − β)·value.
  auto blend = [decay](double& ema, double value, bool first) {
    ema = first ? value : decay * ema + (1 - decay) * value;
  };
  auto bi = block_influence_.accessor<double, 1>();
  auto rel = relative_update_.accessor<double, 1>();
  auto unif = uniformity_.accessor<double, 1>();
  auto tay = taylor_.accessor<double, 1>();
  auto tay_token = taylor_per_token_.accessor<double, 1>();
  auto share = delta_share_.accessor<double, 2>();
  auto mass = delta_mass_.accessor<double, 2>();
  for (int64_t l = 0; l < depth_; ++l) {
    const EvolutionStats stats = evolution_stats(sums[l]);
    bool skipped_non_finite = false;
    if (stats.tokens > 0) {
      std::vector<double> values = {stats.block_influence, stats.relative_update};
      values.insert(values.end(), stats.delta_share.begin(), stats.delta_share.end());
      values.insert(values.end(), stats.delta_mass.begin(), stats.delta_mass.end());
      if (all_finite(values)) {
        const bool first = observations[l][kEvolutionGroup] == 0;
        blend(bi[l], stats.block_influence, first);
        blend(rel[l], stats.relative_update, first);
        for (int64_t b = 0; b < kDeltaBins; ++b) {
          blend(share[l][b], stats.delta_share[b], first);
          blend(mass[l][b], stats.delta_mass[b], first);
        }
        ++observations[l][kEvolutionGroup];
      } else {
        skipped_non_finite = true;
      }
    }
    if (stats.uniformity_samples > 0) {
      if (std::isfinite(stats.uniformity)) {
        blend(unif[l], stats.uniformity, observations[l][kUniformityGroup] == 0);
        ++observations[l][kUniformityGroup];
      } else {
        skipped_non_finite = true;
      }
    }
    if (stats.taylor_tokens > 0) {
      if (std::isfinite(stats.taylor) && std::isfinite(stats.taylor_per_token)) {
        const bool first = observations[l][kTaylorGroup] == 0;
        blend(tay[l], stats.taylor, first);
        blend(tay_token[l], stats.taylor_per_token, first);
        ++observations[l][kTaylorGroup];
      } else {
        skipped_non_finite = true;
      }
    }
    if (skipped_non_finite) ++non_finite[l];
  }
  last_sums_ = sums;
  last_step_ = step;
  ++updates_;
  start_step();
}

bool TokenEvolutionMonitor::observed(int64_t layer) const {
  check_layer(layer);
  return observations_[layer][kEvolutionGroup].item<int64_t>() > 0;
}

bool TokenEvolutionMonitor::uniformity_observed(int64_t layer) const {
  check_layer(layer);
  return observations_[layer][kUniformityGroup].item<int64_t>() > 0;
}

bool TokenEvolutionMonitor::taylor_observed(int64_t layer) const {
  check_layer(layer);
  return observations_[layer][kTaylorGroup].item<int64_t>() > 0;
}

void TokenEvolutionMonitor::check_observed(int64_t layer, int64_t group,
                                           const char* statistic) const {
  check_layer(layer);
  TORCH_CHECK(observations_[layer][group].item<int64_t>() > 0, "token evolution: no ", statistic,
              " for layer ", layer, " yet: its ", kGroupNames[group],
              " statistics were never observed",
              group == kTaylorGroup ? " (is the Taylor saliency enabled?)" : "");
}

double TokenEvolutionMonitor::block_influence(int64_t layer) const {
  check_observed(layer, kEvolutionGroup, "block influence");
  return block_influence_[layer].item<double>();
}

double TokenEvolutionMonitor::relative_update(int64_t layer) const {
  check_observed(layer, kEvolutionGroup, "relative update");
  return relative_update_[layer].item<double>();
}

double TokenEvolutionMonitor::uniformity(int64_t layer) const {
  check_observed(layer, kUniformityGroup, "uniformity");
  return uniformity_[layer].item<double>();
}

double TokenEvolutionMonitor::taylor(int64_t layer) const {
  check_observed(layer, kTaylorGroup, "Taylor saliency");
  return taylor_[layer].item<double>();
}

double TokenEvolutionMonitor::taylor_per_token(int64_t layer) const {
  check_observed(layer, kTaylorGroup, "Taylor saliency");
  return taylor_per_token_[layer].item<double>();
}

double TokenEvolutionMonitor::evolution_mass(int64_t layer, double capacity) const {
  check_observed(layer, kEvolutionGroup, "evolution mass");
  return ema(layer).evolution_mass(capacity);
}

EvolutionStats TokenEvolutionMonitor::ema(int64_t layer) const {
  check_layer(layer);
  EvolutionStats stats;
  if (observed(layer)) {
    stats.block_influence = block_influence_[layer].item<double>();
    stats.relative_update = relative_update_[layer].item<double>();
    auto share = delta_share_.accessor<double, 2>();
    auto mass = delta_mass_.accessor<double, 2>();
    for (int64_t b = 0; b < kDeltaBins; ++b) {
      stats.delta_share[b] = share[layer][b];
      stats.delta_mass[b] = mass[layer][b];
    }
  }
  if (uniformity_observed(layer)) stats.uniformity = uniformity_[layer].item<double>();
  if (taylor_observed(layer)) {
    stats.taylor = taylor_[layer].item<double>();
    stats.taylor_per_token = taylor_per_token_[layer].item<double>();
  }
  // tokens stays 0: an EMA has no token count, so evolution_mass(k) reads the share k itself.
  return stats;
}

EvolutionStats TokenEvolutionMonitor::last(int64_t layer) const {
  check_layer(layer);
  return evolution_stats(last_sums_[layer]);
}

int64_t TokenEvolutionMonitor::non_finite(int64_t layer) const {
  check_layer(layer);
  return non_finite_[layer].item<int64_t>();
}

std::map<std::string, torch::Tensor> TokenEvolutionMonitor::state() const {
  return {
      {"block_influence", block_influence_.clone()},
      {"relative_update", relative_update_.clone()},
      {"uniformity", uniformity_.clone()},
      {"taylor", taylor_.clone()},
      {"taylor_per_token", taylor_per_token_.clone()},
      {"delta_share", delta_share_.clone()},
      {"delta_mass", delta_mass_.clone()},
      {"observations", observations_.clone()},
      {"non_finite", non_finite_.clone()},
      {"last_sums", last_sums_.clone()},
      {"last_step", torch::tensor(last_step_, torch::kInt64)},
      {"updates", torch::tensor(updates_, torch::kInt64)},
  };
}

void TokenEvolutionMonitor::load_state(const std::map<std::string, torch::Tensor>& state) {
  const auto expected = this->state();  // names, shapes and dtypes
  for (const auto& [name, tensor] : state) {
    TORCH_CHECK(expected.count(name), "token evolution: unknown state entry '", name,
                "' (expected the entries of TokenEvolutionMonitor::state())");
  }
  std::map<std::string, torch::Tensor> loaded;
  for (const auto& [name, like] : expected) {
    const auto found = state.find(name);
    TORCH_CHECK(found != state.end(), "token evolution: state entry '", name, "' is missing");
    const auto& tensor = found->second;
    TORCH_CHECK(tensor.defined() && tensor.sizes() == like.sizes(),
                "token evolution: state entry '", name, "' has shape ",
                tensor.defined() ? tensor.sizes() : torch::IntArrayRef{}, ", expected ",
                like.sizes(), " (a model of depth ", depth_, ")");
    TORCH_CHECK(tensor.scalar_type() == like.scalar_type(), "token evolution: state entry '", name,
                "' has type ", tensor.scalar_type(), ", expected ", like.scalar_type());
    loaded[name] = tensor.detach().to(torch::kCPU).contiguous().clone();
  }
  TORCH_CHECK(
      loaded["observations"].ge(0).all().item<bool>() && loaded["updates"].item<int64_t>() >= 0,
      "token evolution: state has negative observation or update counts");
  block_influence_ = loaded["block_influence"];
  relative_update_ = loaded["relative_update"];
  uniformity_ = loaded["uniformity"];
  taylor_ = loaded["taylor"];
  taylor_per_token_ = loaded["taylor_per_token"];
  delta_share_ = loaded["delta_share"];
  delta_mass_ = loaded["delta_mass"];
  observations_ = loaded["observations"];
  non_finite_ = loaded["non_finite"];
  last_sums_ = loaded["last_sums"];
  last_step_ = loaded["last_step"].item<int64_t>();
  updates_ = loaded["updates"].item<int64_t>();
  start_step();
}

std::shared_ptr<TokenEvolutionMonitor> TokenEvolutionMonitor::without_layers(
    const std::vector<int64_t>& kept) const {
  for (int64_t layer : kept) check_layer(layer);
  auto smaller =
      std::make_shared<TokenEvolutionMonitor>(static_cast<int64_t>(kept.size()), options_, device_);
  const auto rows = torch::tensor(kept, torch::kInt64);
  auto state = this->state();
  for (auto& [name, tensor] : state)
    if (tensor.dim() >= 1) tensor = tensor.index_select(0, rows);  // per-layer entries: [L, ...]
  smaller->load_state(state);
  return smaller;
}

}  // namespace winnow::compression
