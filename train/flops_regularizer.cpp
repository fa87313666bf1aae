// LTMP's FLOPs regulariser on the live block FLOPs of each sample.
#include "train/flops_regularizer.h"

namespace winnow::train {

void FlopsRegularizerOptions::validate() const {
  TORCH_CHECK(target >= 0.0 && target <= 1.0,
              "compress.target_flops: expected a fraction of the dense block FLOPs in (0, 1] (0 = "
              "off), got ",
              target);
  TORCH_CHECK(weight >= 0.0, "compress.flops_loss: expected a weight >= 0, got ", weight);
}

FlopsRegularizer::FlopsRegularizer(FlopsRegularizerOptions options, double dense_block_flops)
    : options_(options), dense_block_flops_(dense_block_flops) {
  options_.validate();
  TORCH_CHECK(dense_block_flops_ > 0, "flops regulariser: expected dense block FLOPs > 0, got ",
              dense_block_flops_);
}

torch::Tensor FlopsRegularizer::ratios(const ModelOutput& output) const {
  TORCH_CHECK(
      output.live_block_flops.defined() && output.live_block_flops.dim() == 1,
      "flops regulariser: expected the model's live_block_flops [B], got ",
      output.live_block_flops.defined() ? output.live_block_flops.sizes() : torch::IntArrayRef{});
  return output.live_block_flops / dense_block_flops_;  // [B]
}

void FlopsRegularizer::add(const ModelOutput& output, compression::AuxLosses* losses,
                           compression::AuxMetrics* metrics) const {
  const auto r = ratios(output);  // [B]
  if (metrics)
    compression::add_aux_metric(*metrics, "flops_ratio", r.sum().item<double>(),
                                static_cast<double>(r.size(0)));
  if (losses && options_.enabled() && options_.weight > 0) {
    const auto dtype = output.logits.defined() ? output.logits.scalar_type() : torch::kFloat64;
    compression::add_aux_loss(*losses, "flops", (r - options_.target).pow(2).sum().to(dtype),
                              options_.weight);
  }
}

}  // namespace winnow::train
