// Analytic FLOPs of transformer blocks.
#include "compression/flops.h"

namespace winnow::compression {

double block_forward_flops(const BlockShape& shape, double tokens, double keys) {
  const double c = static_cast<double>(shape.width);
  const double m = static_cast<double>(shape.mlp_hidden);
  const double qkv = 2.0 * tokens * c * 3.0 * c;
  const double attention = 2.0 * 2.0 * tokens * keys * c;
  const double proj = 2.0 * tokens * c * c;
  const double mlp = 2.0 * 2.0 * tokens * c * m;
  return qkv + attention + proj + mlp;
}

double linear_forward_flops(double rows, int64_t in_features, int64_t out_features) {
  return 2.0 * rows * static_cast<double>(in_features) * static_cast<double>(out_features);
}

}  // namespace winnow::compression
