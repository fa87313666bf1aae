// AdamW parameter groups.
#include "train/optimizer.h"

namespace winnow::train {

void OptimizerOptions::validate() const {
  TORCH_CHECK(lr > 0, "optim.lr: expected > 0, got ", lr);
  TORCH_CHECK(weight_decay >= 0, "optim.weight_decay: expected >= 0, got ", weight_decay);
  TORCH_CHECK(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1,
              "optim.beta1/beta2: expected in [0, 1), got ", beta1, ", ", beta2);
  TORCH_CHECK(eps > 0, "optim.eps: expected > 0, got ", eps);
  TORCH_CHECK(clip_norm >= 0, "optim.clip_norm: expected >= 0 (0 disables), got ", clip_norm);
}

ParameterGroups split_parameter_groups(const TransformerModel& model) {
  ParameterGroups groups;
  for (const auto& item : model.named_parameters(/*recurse=*/true)) {
    if (!item.value().requires_grad()) continue;
    if (model.exempt_from_weight_decay(item.key(), item.value())) {
      groups.exempt_names.push_back(item.key());
      groups.exempt.push_back(item.value());
    } else {
      groups.decayed_names.push_back(item.key());
      groups.decayed.push_back(item.value());
    }
  }
  return groups;
}

std::unique_ptr<torch::optim::AdamW> make_adamw(const TransformerModel& model,
                                                const OptimizerOptions& options) {
  options.validate();
  auto groups = split_parameter_groups(model);
  auto base = torch::optim::AdamWOptions(options.lr)
                  .betas({options.beta1, options.beta2})
                  .eps(options.eps)
                  .weight_decay(options.weight_decay);
  auto no_decay = base;
  no_decay.weight_decay(0.0);
  std::vector<torch::optim::OptimizerParamGroup> param_groups;
  param_groups.emplace_back(groups.decayed, std::make_unique<torch::optim::AdamWOptions>(base));
  param_groups.emplace_back(groups.exempt, std::make_unique<torch::optim::AdamWOptions>(no_decay));
  return std::make_unique<torch::optim::AdamW>(std::move(param_groups), base);
}

void set_learning_rate(torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) group.options().set_lr(lr);
}

}  // namespace winnow::train
