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

  void validate() const;
};

struct ParameterGroups {
  std::vector<std::string> decayed_names, exempt_names;
  std::vector<torch::Tensor> decayed, exempt;
};

// Splits the model's parameters: weight decay on matrices, none on norms, biases, embeddings.
ParameterGroups split_parameter_groups(const TransformerModel& model);

// Group 0 decays with `weight_decay`; group 1 has weight_decay 0.
std::unique_ptr<torch::optim::AdamW> make_adamw(const TransformerModel& model,
                                                const OptimizerOptions& options);

// Sets every group's learning rate (the schedule's value for this step).
void set_learning_rate(torch::optim::Optimizer& optimizer, double lr);

}  // namespace winnow::train
