// route_predictor: Mixture-of-Depths' causal routing predictor — a small MLP per routed block that
// reads each token alone (with a stop-gradient) and predicts whether the router's top-k over the
// whole sequence would choose it, so that a decoder can route token t at inference from tokens
// <= t. Trained with a binary cross-entropy against the top-k membership, as an auxiliary loss that
// reaches only its own parameters.
#pragma once

#include <torch/torch.h>

#include <algorithm>

namespace winnow::compression {

// logit = fc2(GELU(fc1(x))), C → H → 1 with H = max(4, C/8) (the paper gives no size; at
// C/8 it costs 2·C·H = C²/4 FLOPs a token, ~2% of a dense block's 24·C², and is not counted in
// the model's FLOPs): compress.<stage>.<layer>.predictor.{fc1,fc2}.*.
class RoutePredictorImpl : public torch::nn::Module {
 public:
  explicit RoutePredictorImpl(int64_t width);
  static int64_t hidden_width(int64_t width) { return std::max<int64_t>(4, width / 8); }
  torch::Tensor forward(const torch::Tensor& x);  // [B, N, C] -> [B, N] log-odds
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(RoutePredictor);

// Σ over samples of the mean over tokens of BCE(σ(logits), membership): [] (a sum over samples,
// like every auxiliary loss, so the trainer divides by the global sample count).
torch::Tensor route_predictor_loss(const torch::Tensor& logits,       // [B, R]
                                   const torch::Tensor& membership);  // [B, R] in {0, 1}

// How many tokens the predictor classifies as the top-k does ([logit > 0] == membership): the
// numerator of its accuracy (the denominator is membership.numel()).
double route_predictor_correct(const torch::Tensor& logits,       // [B, R]
                               const torch::Tensor& membership);  // [B, R] in {0, 1}

}  // namespace winnow::compression
