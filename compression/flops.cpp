// Analytic FLOPs of transformer blocks.
#include "compression/flops.h"

namespace winnow::compression {

double attention_forward_flops(const BlockShape& shape, double tokens, double keys) {
  const double c = static_cast<double>(shape.width);
  const double qkv = 2.0 * tokens * c * 3.0 * c;
  const double proj = 2.0 * tokens * c * c;
  return qkv + attention_core_forward_flops(shape, tokens, keys) + proj;
}

double attention_core_forward_flops(const BlockShape& shape, double tokens, double keys) {
  return 2.0 * 2.0 * tokens * keys * static_cast<double>(shape.width);
}

double mlp_forward_flops(const BlockShape& shape, double tokens) {
  return 2.0 * 2.0 * tokens * static_cast<double>(shape.width) *
         static_cast<double>(shape.mlp_hidden);
}

double block_forward_flops(const BlockShape& shape, double tokens, double keys) {
  return attention_forward_flops(shape, tokens, keys) + mlp_forward_flops(shape, tokens);
}

double linear_forward_flops(double rows, int64_t in_features, int64_t out_features) {
  return 2.0 * rows * static_cast<double>(in_features) * static_cast<double>(out_features);
}

}  // namespace winnow::compression
