// AdamW with decoupled weight decay over two parameter groups (decayed / not decayed).
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "train/model.h"

namespace winnow::train {

struct OptimizerOptions {
  double lr = 1e-3;  // peak learning rate; the schedule scales it every step
  double weight_decay = 0.05;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double clip_norm = 1.0;  // global gradient-norm clip; 0 disables
  // Learning-rate multiplier of compression components' parameters (compress.*).
  double compress_lr_scale = 1.0;
  // Peak learning rate of learned thresholds (compress.*.threshold, LTMP), in their own group
  // without weight decay and following the same schedule; 0 = lr × compress_lr_scale.
  double threshold_lr = 0.0;
  // Learning-rate multiplier of the backbone's parameters whenever they train (DynamicViT
  // fine-tunes its backbone at 0.01 of the predictors' rate).
  double backbone_lr_scale = 1.0;
  // none | backbone: backbone parameters are frozen (no gradient, no optimizer state), only the
  // compression components' parameters train (fine-tuning learned scorers on a frozen model).
  std::string freeze = "none";
  // With freeze = backbone: the step from which the backbone trains too (0 = never).
  int64_t unfreeze_at = 0;

  void validate() const;
  // Whether the backbone is frozen during step `step` (0-based).
  bool backbone_frozen_at(int64_t step) const {
    return freeze == "backbone" && (unfreeze_at == 0 || step < unfreeze_at);
  }
};

// Trainable parameters (requires_grad) by optimizer group; frozen ones are in none.
struct ParameterGroups {
  // The backbone: weight decay on matrices, none on norms, biases, embeddings.
  std::vector<std::string> decayed_names, exempt_names;
  std::vector<torch::Tensor> decayed, exempt;
  // Compression components (compress.*), with their own learning-rate multiplier.
  std::vector<std::string> compress_decayed_names, compress_exempt_names;
  std::vector<torch::Tensor> compress_decayed, compress_exempt;
  // Learned thresholds (compress.*.threshold): their own learning rate, no weight decay.
  std::vector<std::string> threshold_names;
  std::vector<torch::Tensor> thresholds;
};

// Whether a parameter is a learned threshold: compress.<stage>.<layer>.threshold.
bool is_threshold_parameter(const std::string& name);

ParameterGroups split_parameter_groups(const TransformerModel& model);

// Sets requires_grad of every backbone parameter (outside compress.*). Freezing throws when it
// would leave nothing to train.
void set_backbone_trainable(TransformerModel& model, bool trainable);

// Groups in order: 0 backbone decayed, 1 backbone exempt (weight_decay 0), then, when the model
// has trainable compression parameters other than thresholds, 2 compress decayed and 3 compress
// exempt, then, when it has trainable thresholds, one group of them (at threshold_lr).
std::unique_ptr<torch::optim::AdamW> make_adamw(const TransformerModel& model,
                                                const OptimizerOptions& options);
// The learning-rate multiplier of each group of make_adamw(model, options), in order.
std::vector<double> group_lr_scales(const TransformerModel& model, const OptimizerOptions& options);

// The key of a parameter's entry in an optimizer's state() (LibTorch keys it by the tensor's
// implementation: a pointer from 2.0 on, its text before).
#if TORCH_VERSION_MAJOR >= 2
using OptimizerStateKey = void*;
#else
using OptimizerStateKey = std::string;
#endif
OptimizerStateKey optimizer_state_key(const torch::Tensor& parameter);

// Bytes of AdamW's per-parameter state (moments; the step counts are not counted).
int64_t optimizer_state_bytes(const torch::optim::AdamW& optimizer);

// Sets every group's learning rate: `lr` (the schedule's value for this step) times the group's
// multiplier (none given: 1 for every group).
void set_learning_rate(torch::optim::Optimizer& optimizer, double lr,
                       const std::vector<double>& scales = {});

}  // namespace winnow::train
