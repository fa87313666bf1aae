// Shared parts of the transformer models: loss, weight-decay groups, token/FLOP accounting.
#include "train/model.h"

#include "compression/flops.h"

namespace winnow::train {

torch::Tensor TransformerModel::loss_sum(const ModelOutput& output,
                                         const torch::Tensor& targets) const {
  auto logits = output.logits;
  TORCH_CHECK(logits.dim() == targets.dim() + 1, "loss: logits ", logits.sizes(),
              " do not match targets ", targets.sizes());
  return torch::nn::functional::cross_entropy(
      logits.reshape({-1, logits.size(-1)}), targets.reshape({-1}),
      torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
}

bool TransformerModel::exempt_from_weight_decay(const std::string& name,
                                                const torch::Tensor& p) const {
  if (p.dim() < 2) return true;  // biases and norm weights
  // Learned tokens and embedding tables (the patch projection is a linear map and is decayed).
  return name == "cls_token" || name == "pos_embed" || name == "tok_embed.weight";
}

void TransformerModel::attach_compression(const std::shared_ptr<torch::nn::Module>& components) {
  if (!components) return;
  TORCH_CHECK(named_children().find("compress") == nullptr,
              "model: compression components are already attached");
  register_module("compress", components);
}

bool TransformerModel::is_compression_parameter(const std::string& name) {
  return name.rfind("compress.", 0) == 0;
}

LayerAccounting::LayerAccounting(const BlockOptions& block, int64_t depth)
    : width_(block.dim()), mlp_hidden_(block.mlp_hidden()) {
  tokens_.reserve(static_cast<size_t>(depth));
}

void LayerAccounting::record(const BlockTokens& tokens, int64_t batch) {
  tokens_.push_back(tokens.attention);
  attention_flops_.push_back(0.0);
  attention_core_flops_.push_back(0.0);
  if (batch == 0) return;
  batch_ = batch;
  const compression::BlockShape shape{width_, mlp_hidden_};
  const double per_sample = static_cast<double>(tokens.attention) / static_cast<double>(batch);
  const double samples = static_cast<double>(batch);
  attention_flops_.back() =
      samples * compression::attention_forward_flops(shape, per_sample, per_sample);
  attention_core_flops_.back() =
      samples * compression::attention_core_forward_flops(shape, per_sample, per_sample);
  block_flops_ += attention_flops_.back() +
                  compression::mlp_forward_flops(shape, static_cast<double>(tokens.mlp));
  // Live FLOPs: attention is a·n + b·n² in its n live tokens (queries = keys), the MLP m·n; the
  // coefficients come from the same analytic model.
  const double attention_linear = compression::attention_forward_flops(shape, 1.0, 0.0);
  const double attention_quadratic =
      compression::attention_forward_flops(shape, 1.0, 1.0) - attention_linear;
  const double mlp_linear = compression::mlp_forward_flops(shape, 1.0);
  const double mlp_per_sample = static_cast<double>(tokens.mlp) / static_cast<double>(batch);
  auto add = [&](const torch::Tensor& live, double uniform_tokens, bool attention) {
    if (!live.defined()) {
      uniform_live_flops_ += attention ? attention_linear * uniform_tokens +
                                             attention_quadratic * uniform_tokens * uniform_tokens
                                       : mlp_linear * uniform_tokens;
      return;
    }
    const auto n = live.to(torch::kFloat64);  // [B]
    const auto flops =
        attention ? attention_linear * n + attention_quadratic * n * n : mlp_linear * n;
    live_flops_ = live_flops_.defined() ? live_flops_ + flops : flops;
  };
  add(tokens.attention_live, per_sample, /*attention=*/true);
  add(tokens.mlp_live, mlp_per_sample, /*attention=*/false);
}

void LayerAccounting::finish(ModelOutput& output) const {
  output.tokens_per_layer = tokens_;
  output.attention_flops_per_layer = attention_flops_;
  output.attention_core_flops_per_layer = attention_core_flops_;
  output.forward_flops = block_flops_ + extra_flops_;
  if (live_flops_.defined())
    output.live_block_flops = live_flops_ + uniform_live_flops_;
  else if (batch_ > 0)
    output.live_block_flops = torch::full({batch_}, uniform_live_flops_, torch::kFloat64);
}

}  // namespace winnow::train
