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
  TORCH_CHECK(compress_lr_scale > 0, "optim.compress_lr_scale: expected > 0, got ",
              compress_lr_scale);
  TORCH_CHECK(threshold_lr >= 0, "optim.threshold_lr: expected >= 0 (0 = optim.lr × ",
              "optim.compress_lr_scale), got ", threshold_lr);
  TORCH_CHECK(backbone_lr_scale > 0, "optim.backbone_lr_scale: expected > 0, got ",
              backbone_lr_scale);
  TORCH_CHECK(freeze == "none" || freeze == "backbone",
              "train.freeze: expected none or backbone, got '", freeze, "'");
  TORCH_CHECK(unfreeze_at >= 0, "train.unfreeze_at: expected >= 0 (0 = never), got ", unfreeze_at);
  TORCH_CHECK(unfreeze_at == 0 || freeze == "backbone", "train.unfreeze_at=", unfreeze_at,
              ": only with train.freeze=backbone (there is nothing frozen to unfreeze)");
}

OptimizerStateKey optimizer_state_key(const torch::Tensor& parameter) {
#if TORCH_VERSION_MAJOR >= 2
  return parameter.unsafeGetTensorImpl();
#else
  return c10::guts::to_string(parameter.unsafeGetTensorImpl());
#endif
}

int64_t optimizer_state_bytes(const torch::optim::AdamW& optimizer) {
  int64_t bytes = 0;
  const auto size = [](const torch::Tensor& t) {
    return t.defined() ? static_cast<int64_t>(t.numel() * t.element_size()) : int64_t{0};
  };
  for (const auto& item : optimizer.state()) {
    const auto& state = static_cast<const torch::optim::AdamWParamState&>(*item.second);
    bytes += size(state.exp_avg()) + size(state.exp_avg_sq()) + size(state.max_exp_avg_sq());
  }
  return bytes;
}

bool is_threshold_parameter(const std::string& name) {
  const std::string suffix = ".threshold";
  return TransformerModel::is_compression_parameter(name) && name.size() > suffix.size() &&
         name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

ParameterGroups split_parameter_groups(const TransformerModel& model) {
  ParameterGroups groups;
  for (const auto& item : model.named_parameters(/*recurse=*/true)) {
    if (!item.value().requires_grad()) continue;
    if (is_threshold_parameter(item.key())) {
      groups.threshold_names.push_back(item.key());
      groups.thresholds.push_back(item.value());
      continue;
    }
    const bool compress = TransformerModel::is_compression_parameter(item.key());
    if (model.exempt_from_weight_decay(item.key(), item.value())) {
      (compress ? groups.compress_exempt_names : groups.exempt_names).push_back(item.key());
      (compress ? groups.compress_exempt : groups.exempt).push_back(item.value());
    } else {
      (compress ? groups.compress_decayed_names : groups.decayed_names).push_back(item.key());
      (compress ? groups.compress_decayed : groups.decayed).push_back(item.value());
    }
  }
  return groups;
}

void set_backbone_trainable(TransformerModel& model, bool trainable) {
  int64_t components = 0;
  for (auto& item : model.named_parameters(/*recurse=*/true)) {
    if (TransformerModel::is_compression_parameter(item.key())) {
      components += item.value().requires_grad() ? 1 : 0;
      continue;
    }
    item.value().set_requires_grad(trainable);
  }
  TORCH_CHECK(trainable || components > 0,
              "train.freeze=backbone: the model has no compression parameters to train (a "
              "learned criterion such as 'linear' creates them)");
}

namespace {

// The thresholds' multiplier of the scheduled learning rate: their peak rate over optim.lr.
double threshold_lr_scale(const OptimizerOptions& options) {
  return options.threshold_lr > 0 ? options.threshold_lr / options.lr : options.compress_lr_scale;
}

}  // namespace

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
  if (!groups.compress_decayed.empty() || !groups.compress_exempt.empty()) {
    auto compress = base, compress_no_decay = no_decay;
    compress.lr(options.lr * options.compress_lr_scale);
    compress_no_decay.lr(options.lr * options.compress_lr_scale);
    param_groups.emplace_back(groups.compress_decayed,
                              std::make_unique<torch::optim::AdamWOptions>(compress));
    param_groups.emplace_back(groups.compress_exempt,
                              std::make_unique<torch::optim::AdamWOptions>(compress_no_decay));
  }
  if (!groups.thresholds.empty()) {
    auto thresholds = no_decay;
    thresholds.lr(options.lr * threshold_lr_scale(options));
    param_groups.emplace_back(groups.thresholds,
                              std::make_unique<torch::optim::AdamWOptions>(thresholds));
  }
  return std::make_unique<torch::optim::AdamW>(std::move(param_groups), base);
}

std::vector<double> group_lr_scales(const TransformerModel& model,
                                    const OptimizerOptions& options) {
  const auto groups = split_parameter_groups(model);
  std::vector<double> scales = {options.backbone_lr_scale, options.backbone_lr_scale};
  if (!groups.compress_decayed.empty() || !groups.compress_exempt.empty())
    scales.insert(scales.end(), 2, options.compress_lr_scale);
  if (!groups.thresholds.empty()) scales.push_back(threshold_lr_scale(options));
  return scales;
}

void set_learning_rate(torch::optim::Optimizer& optimizer, double lr,
                       const std::vector<double>& scales) {
  auto& groups = optimizer.param_groups();
  TORCH_CHECK(scales.empty() || scales.size() == groups.size(), "optimizer: ", scales.size(),
              " learning-rate multipliers for ", groups.size(), " parameter groups");
  for (size_t g = 0; g < groups.size(); ++g)
    groups[g].options().set_lr(lr * (scales.empty() ? 1.0 : scales[g]));
}

}  // namespace winnow::train
