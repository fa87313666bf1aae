// Weight initialisation shared by the transformer models.
#include "train/init.h"

#include <cmath>
#include <string>

namespace winnow::train {

void init_truncated_normal_(torch::Tensor& tensor, double std) {
  torch::NoGradGuard no_grad;
  tensor.normal_(0.0, std).clamp_(-2.0 * std, 2.0 * std);
}

void init_transformer_weights(torch::nn::Module& model, int64_t depth) {
  torch::NoGradGuard no_grad;
  const double residual_std = 0.02 / std::sqrt(2.0 * static_cast<double>(depth));
  for (auto& item : model.named_modules("", /*include_self=*/false)) {
    const std::string& name = item.key();
    if (auto* linear = item.value()->as<torch::nn::Linear>()) {
      const bool residual =
          name.size() >= 9 && (name.compare(name.size() - 9, 9, "attn.proj") == 0);
      const bool mlp_out = name.size() >= 7 && (name.compare(name.size() - 7, 7, "mlp.fc2") == 0);
      init_truncated_normal_(linear->weight, (residual || mlp_out) ? residual_std : 0.02);
      if (linear->bias.defined()) linear->bias.zero_();
    } else if (auto* norm = item.value()->as<torch::nn::LayerNorm>()) {
      norm->weight.fill_(1.0);
      norm->bias.zero_();
    }
  }
}

}  // namespace winnow::train
