// Per-token Taylor saliency and its EMA table keyed by position or token id.
#include "compression/token_saliency.h"

#include <cmath>
#include <utility>

namespace winnow::compression {
namespace {

void check_tokens(const torch::Tensor& t, const char* what) {
  TORCH_CHECK(t.defined() && t.dim() == 3 && t.is_floating_point(), "token saliency: expected ",
              what, " [B, N, C] floating point, got ",
              t.defined() ? t.sizes() : torch::IntArrayRef{});
}

torch::Tensor cpu_doubles(std::vector<int64_t> shape) {
  return torch::zeros(shape, torch::TensorOptions().dtype(torch::kFloat64));
}

}  // namespace

torch::Tensor token_taylor_saliency(const torch::Tensor& x, const torch::Tensor& y,
                                    const torch::Tensor& grad) {
  check_tokens(x, "the block input x");
  check_tokens(y, "the block output y");
  check_tokens(grad, "the gradient ∂L/∂y");
  TORCH_CHECK(y.sizes() == x.sizes() && grad.sizes() == x.sizes(),
              "token saliency: expected x, y and ∂L/∂y of one shape, got ", x.sizes(), ", ",
              y.sizes(), " and ", grad.sizes());
  torch::NoGradGuard no_grad;
  const auto update = (y - x).to(torch::kFloat64);           // [B, N, C]
  return (grad.to(torch::kFloat64) * update).sum(-1).abs();  // [B, N]
}

torch::Tensor saliency_top_k_membership(const torch::Tensor& saliency, int64_t protected_count,
                                        int64_t keep_count) {
  TORCH_CHECK(saliency.defined() && saliency.dim() == 2,
              "token saliency: expected saliency [B, N], got ",
              saliency.defined() ? saliency.sizes() : torch::IntArrayRef{});
  TORCH_CHECK(protected_count >= 0 && protected_count <= saliency.size(1),
              "token saliency: expected protected_count in [0, ", saliency.size(1), "], got ",
              protected_count);
  const int64_t reducible = saliency.size(1) - protected_count;
  TORCH_CHECK(keep_count >= 0, "token saliency: expected keep_count >= 0, got ", keep_count);
  const int64_t k = std::min(keep_count, reducible);
  auto membership = torch::zeros_like(saliency);
  if (k == 0) return membership;
  // A stable descending sort: ties go to the lower index, as in every strategy.
  const auto order = std::get<1>(
      saliency.narrow(1, protected_count, reducible).sort(/*stable=*/true, 1, /*descending=*/true));
  membership.narrow(1, protected_count, reducible)
      .scatter_(1, order.narrow(1, 0, k), torch::ones({saliency.size(0), k}, saliency.options()));
  return membership;
}

SaliencyKey saliency_key_from_name(const std::string& name, const std::string& option) {
  if (name == "position") return SaliencyKey::kPosition;
  if (name == "token") return SaliencyKey::kToken;
  TORCH_CHECK(false, option, ": expected position or token, got '", name, "'");
  return SaliencyKey::kPosition;
}

std::string saliency_key_name(SaliencyKey key) {
  return key == SaliencyKey::kToken ? "token" : "position";
}

TokenSaliencyTable::TokenSaliencyTable(SaliencyTableOptions options, std::vector<int64_t> layers)
    : options_(options), layers_(std::move(layers)) {
  TORCH_CHECK(options_.keys >= 0, "token saliency: expected a table size >= 0, got ",
              options_.keys);
  TORCH_CHECK(options_.decay >= 0 && options_.decay < 1,
              "token saliency: expected an EMA decay in [0, 1), got ", options_.decay);
  TORCH_CHECK(!std::isnan(options_.init), "token saliency: expected a non-NaN init value");
  for (size_t i = 0; i < layers_.size(); ++i) {
    TORCH_CHECK(layers_[i] >= 0, "token saliency: expected source layers >= 0, got ", layers_[i]);
    for (size_t j = 0; j < i; ++j)
      TORCH_CHECK(layers_[i] != layers_[j], "token saliency: layer ", layers_[i], " given twice");
  }
  const auto rows = static_cast<int64_t>(layers_.size());
  ema_ = cpu_doubles({rows, options_.keys});
  observations_ = torch::zeros({rows, options_.keys}, torch::kInt64);
  start_step();
}

void TokenSaliencyTable::start_step() {
  // A fresh tensor: hooks of a discarded step write into the old one.
  step_sums_ = cpu_doubles({static_cast<int64_t>(layers_.size()), 2, options_.keys});
}

bool TokenSaliencyTable::has_layer(int64_t layer) const {
  return std::find(layers_.begin(), layers_.end(), layer) != layers_.end();
}

int64_t TokenSaliencyTable::row_of(int64_t layer) const {
  const auto it = std::find(layers_.begin(), layers_.end(), layer);
  if (it != layers_.end()) return it - layers_.begin();
  std::string names;
  for (const auto l : layers_) names += (names.empty() ? "" : ",") + std::to_string(l);
  TORCH_CHECK(false, "token saliency: no table for layer ", layer, " (it has layers ",
              names.empty() ? std::string("none") : names, ")");
  return -1;
}

torch::Tensor TokenSaliencyTable::keys_of(const torch::Tensor& positions,
                                          const torch::Tensor& token_ids) const {
  TORCH_CHECK(positions.defined() && positions.dim() == 2,
              "token saliency: expected positions [B, N], got ",
              positions.defined() ? positions.sizes() : torch::IntArrayRef{});
  const auto pos = positions.to(torch::kInt64);
  const auto valid = pos.ge(0);
  if (options_.key == SaliencyKey::kPosition) return torch::where(valid, pos, pos.new_full({}, -1));
  TORCH_CHECK(token_ids.defined() && token_ids.dim() == 2 && token_ids.size(0) == pos.size(0) &&
                  !token_ids.is_floating_point(),
              "token saliency: keys by token id need the input token ids [B, T] = [", pos.size(0),
              ", T] (a text model), got ",
              token_ids.defined() ? token_ids.sizes() : torch::IntArrayRef{});
  TORCH_CHECK(pos.numel() == 0 || pos.max().item<int64_t>() < token_ids.size(1),
              "token saliency: a token's position ", pos.max().item<int64_t>(), " is beyond the ",
              token_ids.size(1), " input tokens");
  const auto ids = token_ids.to(pos.device(), torch::kInt64).gather(1, pos.clamp_min(0));
  return torch::where(valid, ids, ids.new_full({}, -1));
}

void TokenSaliencyTable::observe(int64_t layer, const torch::Tensor& x, const torch::Tensor& y,
                                 const torch::Tensor& keep, int64_t protected_count,
                                 const torch::Tensor& keys) {
  const int64_t row = row_of(layer);
  check_tokens(x, "the block input x");
  TORCH_CHECK(y.defined() && y.sizes() == x.sizes(),
              "token saliency: expected the block output y with the input's shape ", x.sizes(),
              ", got ", y.defined() ? y.sizes() : torch::IntArrayRef{});
  TORCH_CHECK(
      keys.defined() && keys.dim() == 2 && keys.size(0) == x.size(0) && keys.size(1) == x.size(1),
      "token saliency: expected keys [B, N] = [", x.size(0), ", ", x.size(1), "], got ",
      keys.defined() ? keys.sizes() : torch::IntArrayRef{});
  TORCH_CHECK(!keep.defined() ||
                  (keep.dim() == 2 && keep.size(0) == x.size(0) && keep.size(1) == x.size(1)),
              "token saliency: expected keep [B, N] = [", x.size(0), ", ", x.size(1), "], got ",
              keep.defined() ? keep.sizes() : torch::IntArrayRef{});
  TORCH_CHECK(protected_count >= 0 && protected_count <= x.size(1),
              "token saliency: expected protected_count in [0, ", x.size(1), "], got ",
              protected_count);
  if (!y.requires_grad()) return;
  // Which tokens count, and their keys, are fixed now (forward); the hook adds their τ.
  auto counted = torch::ones({x.size(0), x.size(1)}, torch::kBool);
  counted.narrow(1, 0, protected_count).fill_(false);
  if (keep.defined()) counted = counted & keep.detach().to(torch::kCPU).gt(0.5);
  const auto key = keys.detach().to(torch::kCPU, torch::kInt64);
  counted = counted & key.ge(0);
  const auto counted_keys = key.masked_select(counted);  // [M]
  TORCH_CHECK(counted_keys.numel() == 0 || counted_keys.max().item<int64_t>() < options_.keys,
              "token saliency: key ", counted_keys.numel() ? counted_keys.max().item<int64_t>() : 0,
              " is beyond the table of ", options_.keys, " ",
              options_.key == SaliencyKey::kToken ? "token ids (the vocabulary)" : "positions");
  // Detached views: capturing y itself would make a reference cycle through its grad hooks.
  auto input = x.detach();
  auto output = y.detach();
  const int64_t version = output._version();
  auto sums = step_sums_.select(0, row);  // [2, keys], a view into this step's sums
  y.register_hook([input, output, version, counted, key, sums](const torch::Tensor& grad) {
    if (!grad.defined()) return;
    TORCH_CHECK(output._version() == version,
                "token saliency: a block output was modified in place after its saliency hook "
                "was registered; τ would use the wrong values");
    const auto tau = token_taylor_saliency(input, output, grad).to(torch::kCPU);  // [B, N]
    // A token whose gradient is exactly zero did not reach the loss (a later layer dropped it),
    // and one whose output equals its input skipped the block (a route left it on the residual
    // stream): neither was observed, rather than observed unimportant (τ = 0 would lock it out
    // for good).
    const auto ran = output.ne(input).any(-1).to(torch::kCPU);                         // [B, N]
    const auto reached = counted & ran & grad.detach().ne(0).any(-1).to(torch::kCPU);  // [B, N]
    const auto values = tau.masked_select(reached);                                    // [M]
    const auto reached_keys = key.masked_select(reached);                              // [M]
    sums.select(0, 0).index_add_(0, reached_keys, values);
    sums.select(0, 1).index_add_(0, reached_keys, torch::ones_like(values));
  });
}

void TokenSaliencyTable::update(const torch::Tensor& reduced, double gradient_scale) {
  TORCH_CHECK(reduced.defined() && reduced.sizes() == step_sums_.sizes(),
              "token saliency: expected reduced sums ", step_sums_.sizes(), ", got ",
              reduced.defined() ? reduced.sizes() : torch::IntArrayRef{});
  TORCH_CHECK(gradient_scale > 0 && std::isfinite(gradient_scale),
              "token saliency: expected a gradient scale > 0, got ", gradient_scale);
  const auto sums = reduced.detach().to(torch::kCPU, torch::kFloat64);
  const auto tau_sum = sums.select(1, 0) * gradient_scale;  // [layers, keys]
  const auto count = sums.select(1, 1);
  const auto seen = count.gt(0);
  const auto mean = tau_sum / count.clamp_min(1);
  const auto finite = torch::isfinite(mean);
  non_finite_ += (seen & ~finite).sum().item<int64_t>();
  const auto observed = seen & finite;
  const auto first = observed & observations_.eq(0);
  const double beta = options_.decay;
  auto next = torch::where(first, mean, ema_ * beta + mean * (1 - beta));
  ema_ = torch::where(observed, next, ema_);
  observations_ = observations_ + observed.to(torch::kInt64);
  ++updates_;
  start_step();
}

void TokenSaliencyTable::discard_step() {
  start_step();
}

torch::Tensor TokenSaliencyTable::values(int64_t layer) const {
  const int64_t row = row_of(layer);
  return torch::where(observations_[row].gt(0), ema_[row],
                      torch::full({}, options_.init, torch::kFloat64));
}

torch::Tensor TokenSaliencyTable::lookup(int64_t layer, const torch::Tensor& keys) const {
  TORCH_CHECK(keys.defined() && keys.dim() == 2, "token saliency: expected keys [B, N], got ",
              keys.defined() ? keys.sizes() : torch::IntArrayRef{});
  const auto table = values(layer);  // [keys]
  const auto key = keys.to(torch::kCPU, torch::kInt64);
  const auto inside = key.ge(0) & key.lt(options_.keys);
  const auto found = options_.keys > 0 ? table.index({key.clamp(0, options_.keys - 1)})
                                       : torch::zeros(key.sizes(), torch::kFloat64);
  return torch::where(inside, found, torch::full({}, options_.init, torch::kFloat64))
      .to(keys.device());
}

torch::Tensor TokenSaliencyTable::observations(int64_t layer) const {
  return observations_[row_of(layer)].clone();
}

std::map<std::string, torch::Tensor> TokenSaliencyTable::state() const {
  return {
      {"ema", ema_.clone()},
      {"observations", observations_.clone()},
      {"updates", torch::tensor(updates_, torch::kInt64)},
      {"non_finite", torch::tensor(non_finite_, torch::kInt64)},
  };
}

void TokenSaliencyTable::load_state(const std::map<std::string, torch::Tensor>& state) {
  const auto expected = this->state();
  for (const auto& [name, tensor] : state)
    TORCH_CHECK(expected.count(name), "token saliency: unknown state entry '", name,
                "' (expected ema, observations, updates, non_finite)");
  std::map<std::string, torch::Tensor> loaded;
  for (const auto& [name, like] : expected) {
    const auto found = state.find(name);
    TORCH_CHECK(found != state.end(), "token saliency: state entry '", name, "' is missing");
    const auto& tensor = found->second;
    TORCH_CHECK(tensor.defined() && tensor.sizes() == like.sizes(), "token saliency: state entry '",
                name, "' has shape ", tensor.defined() ? tensor.sizes() : torch::IntArrayRef{},
                ", expected ", like.sizes(), " (", layers_.size(), " source layers × ",
                options_.keys, " keys)");
    TORCH_CHECK(tensor.scalar_type() == like.scalar_type(), "token saliency: state entry '", name,
                "' has type ", tensor.scalar_type(), ", expected ", like.scalar_type());
    loaded[name] = tensor.detach().to(torch::kCPU).contiguous().clone();
  }
  TORCH_CHECK(loaded["observations"].ge(0).all().item<bool>(),
              "token saliency: state has negative observation counts");
  ema_ = loaded["ema"];
  observations_ = loaded["observations"];
  updates_ = loaded["updates"].item<int64_t>();
  non_finite_ = loaded["non_finite"].item<int64_t>();
  start_step();
}

}  // namespace winnow::compression
