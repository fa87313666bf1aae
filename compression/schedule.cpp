// Layer and step schedule of token reduction.
#include "compression/schedule.h"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace winnow::compression {

ReductionSchedule::ReductionSchedule(const ReductionConfig& c, int64_t depth, int64_t grid_height,
                                     int64_t grid_width, const std::string& prefix)
    : warmup_steps_(c.warmup_steps), ramp_steps_(c.ramp_steps) {
  TORCH_CHECK(c.warmup_steps >= 0 && c.ramp_steps >= 0, prefix, ".warmup_steps and ", prefix,
              ".ramp_steps: expected >= 0, got ", c.warmup_steps, " and ", c.ramp_steps);
  TORCH_CHECK(c.ramp == "linear" || c.ramp == "cosine", prefix,
              ".ramp: expected linear or cosine, got '", c.ramp, "'");
  const auto strategies = known_strategies();
  const bool eval_strategy =
      std::find(strategies.begin(), strategies.end(), c.eval) != strategies.end();
  const bool causal_eval = c.eval == "causal";
  TORCH_CHECK(
      c.eval == "auto" || c.eval == "same" || c.eval == "dense" || causal_eval || eval_strategy,
      prefix, ".eval: expected auto, same, dense, causal or a strategy name, got '", c.eval, "'");
  cosine_ = c.ramp == "cosine";
  keep_by_layer_.assign(static_cast<size_t>(depth), 1.0);
  if (c.criterion == "none") return;

  CriterionOptions criterion_options;
  criterion_options.grid_height(grid_height)
      .grid_width(grid_width)
      .z_loss(c.z_loss)
      .ratio_loss(c.ratio_loss)
      .saliency_key(c.saliency_key)
      .saliency_keys(c.saliency_keys)
      .saliency_decay(c.saliency_decay)
      .saliency_init(c.saliency_init)
      .saliency_layer(c.saliency_layer)
      .predictor_loss(c.predictor_loss)
      .router_topk_loss(c.router_topk_loss)
      .router_saliency_loss(c.router_saliency_loss)
      .threshold_base(c.threshold_base)
      .threshold_init(c.threshold_init);
  StrategyOptions strategy_options;
  strategy_options.fuse(c.fuse)
      .descending_order(c.descending_order)
      .keep_order(c.keep_order)
      .window(c.window)
      .straight_through(c.straight_through)
      .temperature(c.temperature)
      .router_weight(c.router_weight)
      .tanh_alpha(c.tanh_alpha)
      .tanh_beta(c.tanh_beta)
      .grid_height(grid_height)
      .grid_width(grid_width);
  TORCH_CHECK(c.temperature > 0, prefix, ".temperature: expected > 0, got ", c.temperature);
  TORCH_CHECK(c.window >= 0, prefix, ".window: expected >= 0 (0 = automatic), got ", c.window);
  TORCH_CHECK(c.z_loss >= 0, prefix, ".z_loss: expected >= 0, got ", c.z_loss);
  TORCH_CHECK(c.ratio_loss >= 0, prefix, ".ratio_loss: expected >= 0, got ", c.ratio_loss);
  TORCH_CHECK(c.saliency_decay >= 0 && c.saliency_decay < 1, prefix,
              ".saliency_decay: expected a value in [0, 1), got ", c.saliency_decay);
  TORCH_CHECK(!std::isnan(c.saliency_init), prefix, ".saliency_init: expected a number, got nan");
  TORCH_CHECK(c.saliency_layer >= -1 && c.saliency_layer < depth, prefix,
              ".saliency_layer: expected -1 (each reducing layer's own block) or a layer in [0, ",
              depth, "), got ", c.saliency_layer);
  TORCH_CHECK(c.saliency_key == "auto" || c.saliency_key == "position" || c.saliency_key == "token",
              prefix, ".saliency_key: expected auto, position or token, got '", c.saliency_key,
              "'");
  TORCH_CHECK(c.predictor_loss >= 0, prefix, ".predictor_loss: expected >= 0, got ",
              c.predictor_loss);
  TORCH_CHECK(c.router_topk_loss >= 0, prefix, ".router_topk_loss: expected >= 0, got ",
              c.router_topk_loss);
  TORCH_CHECK(c.router_topk_loss == 0 || c.criterion == "router", prefix,
              ".router_topk_loss: only the router criterion has it, the criterion is '",
              c.criterion, "'");
  TORCH_CHECK(c.router_saliency_loss >= 0, prefix, ".router_saliency_loss: expected >= 0, got ",
              c.router_saliency_loss);
  TORCH_CHECK(c.router_saliency_loss == 0 || c.criterion == "router", prefix,
              ".router_saliency_loss: only the router criterion has it, the criterion is '",
              c.criterion, "'");
  TORCH_CHECK(c.router_weight == "sigmoid" || c.router_weight == "tanh", prefix,
              ".router_weight: expected sigmoid or tanh, got '", c.router_weight, "'");
  method_ = std::make_shared<Method>(
      Method::make(c.criterion, c.strategy, criterion_options, strategy_options));
  // Learned thresholds decide each sample's count by the sign of their scores (the margin s − θ):
  // only strategies that read scores as decisions apply them, and there is no keep to ramp to.
  const bool count_by_scores = method_->criterion().decides_count();
  TORCH_CHECK(!count_by_scores || method_->strategy().traits().needs_log_odds, prefix,
              ".strategy: criterion '", c.criterion,
              "' decides each sample's count by the sign of its scores, so it trains with "
              "strategy 'policy' (or evaluates with 'threshold_prune'), got '",
              c.strategy, "'");
  TORCH_CHECK(!count_by_scores || c.ramp_steps == 0, prefix, ".ramp_steps: criterion '",
              c.criterion, "' has no keep to ramp to (its thresholds are learned); use ", prefix,
              ".warmup_steps, got ", c.ramp_steps);
  // DynamicViT trains with its policy and evaluates by removing tokens (the top-k, or for
  // learned thresholds each sample's tokens above its threshold).
  const std::string eval_with = eval_strategy
                                    ? c.eval
                                    : (c.eval == "auto" && c.strategy == "policy"
                                           ? (count_by_scores ? "threshold_prune" : "prune")
                                           : "");
  if (!eval_with.empty() && eval_with != c.strategy) {
    try {
      method_->set_eval_strategy(make_strategy(eval_with, strategy_options));
    } catch (const c10::Error& error) {
      TORCH_CHECK(false, prefix, ".eval: ", error.msg());
    }
  }
  if (causal_eval) {
    try {
      method_->set_causal_eval();
    } catch (const c10::Error& error) {
      TORCH_CHECK(false, prefix, ".eval: ", error.msg());
    }
  }

  const bool route = method_->strategy().traits().wraps_block;
  const CriterionNeeds needs = method_->needs();
  const bool needs_attention = needs.cls_row || needs.received || needs.mean_keys;
  if (c.site == "auto") {
    site_ = route ? Site::kAroundBlock : (needs_attention ? Site::kPostAttention : Site::kPreBlock);
  } else if (c.site == "pre_block") {
    site_ = Site::kPreBlock;
  } else if (c.site == "post_attention") {
    site_ = Site::kPostAttention;
  } else if (c.site == "around_block") {
    site_ = Site::kAroundBlock;
  } else {
    TORCH_CHECK(false, prefix,
                ".site: expected auto, pre_block, post_attention or around_block, got '", c.site,
                "'");
  }
  TORCH_CHECK(route == (site_ == Site::kAroundBlock), prefix, ".site: the ", c.strategy,
              " strategy ", route ? "needs" : "cannot use", " site around_block");
  TORCH_CHECK(!needs_attention || site_ == Site::kPostAttention, prefix, ".site: criterion ",
              c.criterion, " needs this block's attention, so it acts at post_attention, not ",
              site_name(site_));

  layers_ = c.layers;
  if (layers_.empty()) {
    for (int64_t l = 1; l < depth - (route ? 1 : 0); ++l) layers_.push_back(l);
  }
  TORCH_CHECK(!layers_.empty(), prefix, ".layers: no layer to reduce in a model of depth ", depth);
  TORCH_CHECK(c.keep_schedule == "list" || c.keep_schedule == "linear", prefix,
              ".keep_schedule: expected list or linear, got '", c.keep_schedule, "'");
  const bool linear = c.keep_schedule == "linear";
  TORCH_CHECK(!linear || c.keep.size() == 2, prefix,
              ".keep: keep_schedule=linear takes two values (first and last "
              "reducing layer), got ",
              c.keep.size());
  TORCH_CHECK(linear || c.keep.size() == 1 || c.keep.size() == layers_.size(), prefix,
              ".keep: expected one value or one per reducing layer (", layers_.size(), "), got ",
              c.keep.size());
  const size_t count = layers_.size();
  for (size_t i = 0; i < count; ++i) {
    const int64_t layer = layers_[i];
    TORCH_CHECK(layer >= 0 && layer < depth, prefix, ".layers: layer ", layer, " outside [0, ",
                depth, ")");
    double keep;
    if (linear) {
      const double t = count > 1 ? static_cast<double>(i) / static_cast<double>(count - 1) : 0.0;
      keep = c.keep[0] + (c.keep[1] - c.keep[0]) * t;
    } else {
      keep = c.keep.size() == 1 ? c.keep[0] : c.keep[i];
    }
    TORCH_CHECK(keep > 0.0 && keep <= 1.0, prefix, ".keep: expected values in (0, 1], got ", keep);
    // 0: no planned fraction, the layer reduces by its scores (decides_count).
    keep_by_layer_[static_cast<size_t>(layer)] = count_by_scores ? 0.0 : keep;
  }
  // random-LTD evaluates dense; Mixture-of-Depths' weighted blocks evaluate with their router
  // (a dense block would add unweighted updates the model never trained with).
  const bool weighted = method_->strategy().traits().scales_update;
  reduce_in_eval_ = c.eval != "dense" && (c.eval != "auto" || !route || weighted);
}

double ReductionSchedule::target_keep(int64_t layer) const {
  if (!enabled() || layer < 0 || layer >= static_cast<int64_t>(keep_by_layer_.size())) return 1.0;
  return keep_by_layer_[static_cast<size_t>(layer)];
}

double ReductionSchedule::keep_at(int64_t layer, int64_t step) const {
  const double target = target_keep(layer);
  if (target >= 1.0) return 1.0;
  if (step < warmup_steps_) return 1.0;
  if (ramp_steps_ == 0 || step >= warmup_steps_ + ramp_steps_) return target;
  const double progress =
      static_cast<double>(step - warmup_steps_) / static_cast<double>(ramp_steps_);
  const double shape = cosine_ ? 0.5 * (1.0 - std::cos(M_PI * progress)) : progress;  // 0 -> 1
  return 1.0 - (1.0 - target) * shape;
}

std::string ReductionSchedule::describe() const {
  if (!enabled()) return "dense (no token reduction)";
  std::ostringstream out;
  out << method_->name() << " at " << site_name(site_) << ", layers";
  for (auto l : layers_) {
    out << " " << l;
    if (!decides_count()) out << ":" << keep_by_layer_[static_cast<size_t>(l)];
  }
  if (decides_count()) out << " (learned thresholds: each sample keeps its own count)";
  if (warmup_steps_ || ramp_steps_)
    out << ", warmup " << warmup_steps_ << " + ramp " << ramp_steps_ << " steps";
  if (!reduce_in_eval_)
    out << ", dense eval";
  else if (method_->causal_eval())
    out << ", causal routing in eval";
  else if (&method_->eval_strategy() != &method_->strategy())
    out << ", " << method_->eval_strategy().name() << " in eval";
  else
    out << ", same in eval";
  return out.str();
}

bool ReductionSchedule::create_parameters(torch::nn::Module& stage, int64_t width) {
  if (!enabled()) return false;
  // Criteria with running state but no parameters (saliency) make their state here too.
  method_->create_parameters(stage, layers_, width);
  return method_->criterion().learned();
}

}  // namespace winnow::compression
