// Weight initialisation shared by the transformer models (GPT-2 / timm conventions).
#pragma once

#include <torch/torch.h>

namespace winnow::train {

// Normal(0, std) truncated to ±2 std, in place.
void init_truncated_normal_(torch::Tensor& tensor, double std);

// Every Linear: weight ~ N(0, 0.02) truncated, bias 0; residual output projections
// (attn.proj, mlp.fc2) scaled by 1/sqrt(2·depth) (GPT-2); LayerNorms weight 1, bias 0.
void init_transformer_weights(torch::nn::Module& model, int64_t depth);

}  // namespace winnow::train
