// DynamicViT's prediction module as a learned criterion, with keyed Gumbel noise.
#include "compression/predictor_criterion.h"

#include <cmath>
#include <string>

#include "compression/flops.h"
#include "data/keyed_random.h"

namespace winnow::compression {
namespace {

// Separates Gumbel noise from every other keyed stream that hashes (seed, ...) tuples.
constexpr uint64_t kGumbelDomain = 0x67756D62656C6E6FULL;  // "gumbelno"

// The policy's floor in the global feature's denominator: a sample whose every token is already
// masked gets a zero global feature instead of DynamicViT's 0/0.
constexpr double kPolicyFloor = 1e-6;

}  // namespace

PredictorImpl::PredictorImpl(int64_t width) {
  TORCH_CHECK(width >= 4, "predictor criterion: expected a model width >= 4 (its MLP narrows to ",
              "width/4), got ", width);
  in_conv = register_module(
      "in_conv", torch::nn::Sequential(torch::nn::LayerNorm(torch::nn::LayerNormOptions({width})),
                                       torch::nn::Linear(width, width), torch::nn::GELU()));
  out_conv = register_module(
      "out_conv", torch::nn::Sequential(torch::nn::Linear(width, width / 2), torch::nn::GELU(),
                                        torch::nn::Linear(width / 2, width / 4), torch::nn::GELU(),
                                        torch::nn::Linear(width / 4, 2),
                                        torch::nn::LogSoftmax(torch::nn::LogSoftmaxOptions(-1))));
  torch::NoGradGuard no_grad;
  for (auto& module : modules(/*include_self=*/false)) {
    if (auto* linear = module->as<torch::nn::Linear>()) {
      linear->weight.normal_(0.0, 0.02);
      linear->bias.zero_();
    }
  }
}

torch::Tensor PredictorImpl::forward(const torch::Tensor& x, const torch::Tensor& policy) {
  TORCH_CHECK(x.dim() == 3, "predictor: expected tokens [B, R, C], got ", x.sizes());
  TORCH_CHECK(policy.dim() == 3 && policy.size(0) == x.size(0) && policy.size(1) == x.size(1) &&
                  policy.size(2) == 1,
              "predictor: expected a policy [B, R, 1] = [", x.size(0), ", ", x.size(1),
              ", 1], got ", policy.sizes());
  const auto z = in_conv->forward(x);  // [B, R, C]
  const int64_t half = z.size(2) / 2;
  const auto local = z.slice(2, 0, half);
  const auto weights = policy.to(z.scalar_type());
  const auto global = (z.slice(2, half) * weights).sum(1, /*keepdim=*/true) /
                      weights.sum(1, /*keepdim=*/true).clamp_min(kPolicyFloor);  // [B, 1, C−C/2]
  return out_conv->forward(torch::cat({local, global.expand({-1, z.size(1), -1})}, 2));
}

void PredictorCriterion::create_parameters(torch::nn::Module& stage,
                                           const std::vector<int64_t>& layers, int64_t width) {
  for (int64_t layer : layers) {
    TORCH_CHECK(!predictors_.count(layer), "predictor criterion: layer ", layer, " given twice");
    predictors_.emplace(layer, stage.register_module(std::to_string(layer), Predictor(width)));
  }
}

Predictor PredictorCriterion::predictor(int64_t layer) const {
  const auto it = predictors_.find(layer);
  if (it != predictors_.end()) return it->second;
  std::string names;
  for (const auto& entry : predictors_)
    names += (names.empty() ? "" : ",") + std::to_string(entry.first);
  TORCH_CHECK(false, "predictor criterion: no parameters for layer ", layer, " (it has layers ",
              names.empty() ? std::string("none") : names,
              "); parameters are created for the stage's configured layers");
  return nullptr;
}

torch::Tensor PredictorCriterion::log_probabilities(const TokenState& state, int64_t layer) const {
  const int64_t protect = state.protected_count;
  const auto tokens = state.x.slice(1, protect);  // [B, R, C]
  const auto policy = state.keep.defined()
                          ? state.keep.slice(1, protect).unsqueeze(-1)
                          : torch::ones({state.batch(), state.reducible(), 1}, state.x.options());
  return predictor(layer)->forward(tokens, policy);
}

double PredictorCriterion::score_flops(double tokens, int64_t width) const {
  return linear_forward_flops(tokens, width, width) +
         linear_forward_flops(tokens, width, width / 2) +
         linear_forward_flops(tokens, width / 2, width / 4) +
         linear_forward_flops(tokens, width / 4, 2);
}

torch::Tensor PredictorCriterion::score(const TokenState& state,
                                        const ScoreContext& context) const {
  const int64_t protect = state.protected_count;
  const auto log_p = log_probabilities(state, context.layer);  // [B, R, 2]
  auto log_odds = log_p.select(2, 0) - log_p.select(2, 1);     // [B, R]
  if (context.training) {
    const auto gumbel = keyed_gumbel_noise(context.seed, context.step, context.layer,
                                           context.sample_ids, state.positions().slice(1, protect))
                            .to(log_odds.scalar_type());  // [B, R, 2]
    log_odds = log_odds + (gumbel.select(2, 0) - gumbel.select(2, 1));
  }
  return torch::cat({torch::zeros({state.batch(), protect}, log_odds.options()), log_odds}, 1);
}

void PredictorCriterion::add_losses(const TokenState& reduced, const ScoreContext& context) const {
  if (!context.aux_losses || ratio_loss_ <= 0 || !reduced.keep.defined() ||
      reduced.reducible() == 0 || predictors_.empty())
    return;
  const auto mean_keep = reduced.keep.slice(1, reduced.protected_count).mean(1);  // [B]
  const auto sum =
      (mean_keep - context.planned_keep).pow(2).sum() / static_cast<double>(predictors_.size());
  add_aux_loss(*context.aux_losses, "ratio", sum, ratio_loss_);
}

torch::Tensor keyed_gumbel_noise(uint64_t seed, int64_t step, int64_t layer,
                                 const torch::Tensor& sample_ids, const torch::Tensor& positions) {
  TORCH_CHECK(positions.dim() == 2, "predictor: expected positions [B, N], got ",
              positions.sizes());
  TORCH_CHECK(
      sample_ids.defined() && sample_ids.dim() == 1 && sample_ids.size(0) == positions.size(0),
      "predictor: expected ScoreContext::sample_ids [B] = [", positions.size(0),
      "] for the Gumbel noise of training, got ",
      sample_ids.defined() ? sample_ids.sizes() : torch::IntArrayRef{});
  const auto ids = sample_ids.to(torch::kCPU, torch::kInt64).contiguous();
  const auto pos = positions.to(torch::kCPU, torch::kInt64).contiguous();
  const int64_t batch = pos.size(0), tokens = pos.size(1);
  auto noise = torch::empty({batch, tokens, 2}, torch::dtype(torch::kFloat64));
  const auto id = ids.accessor<int64_t, 1>();
  const auto p = pos.accessor<int64_t, 2>();
  auto out = noise.accessor<double, 3>();
  for (int64_t b = 0; b < batch; ++b) {
    const uint64_t sample_key =
        data::hash_keys({kGumbelDomain, seed, static_cast<uint64_t>(step),
                         static_cast<uint64_t>(layer), static_cast<uint64_t>(id[b])});
    for (int64_t n = 0; n < tokens; ++n) {
      for (uint64_t c = 0; c < 2; ++c) {
        const uint64_t hash = data::hash_keys({sample_key, static_cast<uint64_t>(p[b][n]), c});
        // The midpoint of one of 2^53 equal cells: strictly inside (0, 1), so the noise is finite.
        const double u = (static_cast<double>(hash >> 11) + 0.5) * 0x1.0p-53;
        out[b][n][static_cast<int64_t>(c)] = -std::log(-std::log(u));
      }
    }
  }
  return noise.to(positions.device());
}

}  // namespace winnow::compression
