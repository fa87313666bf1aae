// Layer and step schedule of token reduction.
#include "compression/schedule.h"

#include <cmath>
#include <sstream>

namespace winnow::compression {

std::string site_name(Site site) {
  switch (site) {
    case Site::kPreBlock:
      return "pre_block";
    case Site::kPostAttention:
      return "post_attention";
    case Site::kAroundBlock:
      return "around_block";
  }
  return "?";
}

ReductionSchedule::ReductionSchedule(const ReductionConfig& c, int64_t depth, int64_t grid_height,
                                     int64_t grid_width)
    : warmup_steps_(c.warmup_steps), ramp_steps_(c.ramp_steps) {
  TORCH_CHECK(c.warmup_steps >= 0 && c.ramp_steps >= 0,
              "compress.warmup_steps and compress.ramp_steps: expected >= 0, got ", c.warmup_steps,
              " and ", c.ramp_steps);
  TORCH_CHECK(c.ramp == "linear" || c.ramp == "cosine",
              "compress.ramp: expected linear or cosine, got '", c.ramp, "'");
  TORCH_CHECK(c.eval == "auto" || c.eval == "same" || c.eval == "dense",
              "compress.eval: expected auto, same or dense, got '", c.eval, "'");
  cosine_ = c.ramp == "cosine";
  keep_by_layer_.assign(static_cast<size_t>(depth), 1.0);
  if (c.criterion == "none") return;

  CriterionOptions criterion_options;
  criterion_options.grid_height(grid_height).grid_width(grid_width);
  StrategyOptions strategy_options;
  strategy_options.fuse(c.fuse).grid_height(grid_height).grid_width(grid_width);
  method_ = std::make_unique<Method>(
      Method::make(c.criterion, c.strategy, criterion_options, strategy_options));

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
    TORCH_CHECK(false,
                "compress.site: expected auto, pre_block, post_attention or around_block, got '",
                c.site, "'");
  }
  TORCH_CHECK(route == (site_ == Site::kAroundBlock), "compress.site: the ", c.strategy,
              " strategy ", route ? "needs" : "cannot use", " site around_block");
  TORCH_CHECK(!needs_attention || site_ == Site::kPostAttention, "compress.site: criterion ",
              c.criterion, " needs this block's attention, so it acts at post_attention, not ",
              site_name(site_));

  layers_ = c.layers;
  if (layers_.empty()) {
    for (int64_t l = 1; l < depth - (route ? 1 : 0); ++l) layers_.push_back(l);
  }
  TORCH_CHECK(!layers_.empty(), "compress.layers: no layer to reduce in a model of depth ", depth);
  TORCH_CHECK(c.keep_schedule == "list" || c.keep_schedule == "linear",
              "compress.keep_schedule: expected list or linear, got '", c.keep_schedule, "'");
  const bool linear = c.keep_schedule == "linear";
  TORCH_CHECK(!linear || c.keep.size() == 2,
              "compress.keep: keep_schedule=linear takes two values (first and last "
              "reducing layer), got ",
              c.keep.size());
  TORCH_CHECK(linear || c.keep.size() == 1 || c.keep.size() == layers_.size(),
              "compress.keep: expected one value or one per reducing layer (", layers_.size(),
              "), got ", c.keep.size());
  const size_t count = layers_.size();
  for (size_t i = 0; i < count; ++i) {
    const int64_t layer = layers_[i];
    TORCH_CHECK(layer >= 0 && layer < depth, "compress.layers: layer ", layer, " outside [0, ",
                depth, ")");
    double keep;
    if (linear) {
      const double t = count > 1 ? static_cast<double>(i) / static_cast<double>(count - 1) : 0.0;
      keep = c.keep[0] + (c.keep[1] - c.keep[0]) * t;
    } else {
      keep = c.keep.size() == 1 ? c.keep[0] : c.keep[i];
    }
    TORCH_CHECK(keep > 0.0 && keep <= 1.0, "compress.keep: expected values in (0, 1], got ", keep);
    keep_by_layer_[static_cast<size_t>(layer)] = keep;
  }
  reduce_in_eval_ = c.eval == "same" || (c.eval == "auto" && !route);
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
  for (auto l : layers_) out << " " << l << ":" << keep_by_layer_[static_cast<size_t>(l)];
  if (warmup_steps_ || ramp_steps_)
    out << ", warmup " << warmup_steps_ << " + ramp " << ramp_steps_ << " steps";
  out << (reduce_in_eval_ ? ", same in eval" : ", dense eval");
  return out.str();
}

}  // namespace winnow::compression
