// ReductionSchedule: one stage of token reduction — a method, the layers that run it, the site of
// the block, and how many tokens they keep at each training step (warmup without reduction, then a
// linear or cosine ramp). The static planner composes any number of stages into per-step Plans.
#pragma once

#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "compression/plan.h"

namespace winnow::compression {

struct ReductionConfig {
  std::string criterion = "none";  // none = dense; else a registry name (known_criteria())
  std::string strategy = "prune";  // a registry name (known_strategies())
  std::string site = "auto";       // auto | pre_block | post_attention | around_block
  // Layers that reduce. Empty = every layer but the first (route: but the first and the last).
  std::vector<int64_t> layers;
  // Fraction of the reducible tokens entering a reducing layer that it keeps (route: that run the
  // layer). One value for every reducing layer, or one per entry of `layers`.
  std::vector<double> keep = {0.7};
  // How `keep` maps to the reducing layers: "list" (one value for all, or one per layer) or
  // "linear" (two values: the first and the last reducing layer, interpolated in between; a
  // decreasing keep is ToMe's inflected schedule of merge counts, in keep terms).
  std::string keep_schedule = "list";
  bool fuse = false;              // prune: fuse the dropped tokens into one (EViT)
  bool descending_order = false;  // prune: kept tokens by descending score (EViT) not position
  bool keep_order = false;        // merge: output in the tokens' order (decoders, dense tasks)
  int64_t window = 0;             // pool: square window side; 0 = smallest that fits keep
  bool straight_through = false;  // mask: sigmoid gradient to the scores (learned criteria)
  double temperature = 1.0;       // mask: that sigmoid's temperature, in score units
  double z_loss = 1e-3;           // linear: weight of the z-loss on its scores
  double ratio_loss = 2.0;        // predictor: weight of DynamicViT's keep-ratio loss
  double predictor_loss = 1.0;    // router: weight of its causal predictor's BCE
  double router_topk_loss = 0.0;  // router: weight of MoD's BCE of σ(r) toward its own top-k
  // router: weight of its BCE toward the top-k by the saliency table (0 = off; saliency_* below
  // describe the table).
  double router_saliency_loss = 0.0;
  // threshold: the parameter-free criterion whose scores the learned thresholds cut, and θ at
  // creation.
  std::string threshold_base = "attention_received";
  double threshold_init = 0.0;
  // weighted_route: the router weight on the update, sigmoid σ(r) or tanh α·tanh(r) + β.
  std::string router_weight = "sigmoid";
  double tanh_alpha = 0.2;  // p-MoD's tanh_0.2_1
  double tanh_beta = 1.0;
  int64_t warmup_steps = 0;     // steps without reduction
  int64_t ramp_steps = 0;       // then keep goes from 1 to its target over this many steps
  std::string ramp = "cosine";  // linear | cosine
  // Evaluation: auto (route: dense; policy: prune; else same) | same | dense | a strategy name
  // (evaluate with that strategy instead, e.g. prune after training in mask mode) | causal (route
  // each token by the criterion's causal predictor, criterion router).
  std::string eval = "auto";
  // saliency: table keys (auto | position | token), EMA decay, score of keys never observed,
  // source block (-1: each reducing layer's own), and table size (0: from the model, set by the
  // planner).
  std::string saliency_key = "auto";
  double saliency_decay = 0.99;
  double saliency_init = std::numeric_limits<double>::infinity();
  int64_t saliency_layer = -1;
  int64_t saliency_keys = 0;
};

class ReductionSchedule {
 public:
  // Validates everything against a model of `depth` blocks and `grid` (patch rows × columns, 0
  // for sequences); errors name the option (`prefix`.*, e.g. compress.* or stage.tome.*) and the
  // accepted values.
  ReductionSchedule(const ReductionConfig& config, int64_t depth, int64_t grid_height = 0,
                    int64_t grid_width = 0, const std::string& prefix = "compress");

  bool enabled() const { return method_ != nullptr; }
  bool reduce_in_eval() const { return enabled() && reduce_in_eval_; }
  Site site() const { return site_; }
  const Method& method() const { return *method_; }
  std::shared_ptr<const Method> shared_method() const { return method_; }
  const std::vector<int64_t>& layers() const { return layers_; }
  // Whether the criterion's scores decide each sample's count (learned thresholds): the planned
  // reductions then carry keep_count 0, which the strategies that read decisions ignore.
  bool decides_count() const { return enabled() && method_->criterion().decides_count(); }
  // Keep fraction at `layer` for training step `step`; 1 = the layer does not reduce.
  double keep_at(int64_t layer, int64_t step) const;
  // The same at the end of the ramp (evaluation).
  double target_keep(int64_t layer) const;
  std::string describe() const;
  // Learned criteria: create the parameters of every reducing layer under `stage` (see
  // Criterion::create_parameters). Returns whether any were created.
  bool create_parameters(torch::nn::Module& stage, int64_t width);

 private:
  std::shared_ptr<Method> method_;
  Site site_ = Site::kPreBlock;
  std::vector<int64_t> layers_;
  std::vector<double> keep_by_layer_;  // [depth], 1 where the layer does not reduce
  int64_t warmup_steps_ = 0, ramp_steps_ = 0;
  bool cosine_ = true, reduce_in_eval_ = true;
};

}  // namespace winnow::compression
