// Vision Transformer classifier: patch embedding, CLS token, learned positions, pre-LN blocks,
// head.
#pragma once

#include <torch/torch.h>

#include "train/model.h"

namespace winnow::train {

struct VitOptions {
  int64_t image_channels = 1;
  int64_t image_height = 28;
  int64_t image_width = 28;
  int64_t patch = 4;
  int64_t dim = 192;
  int64_t depth = 6;
  int64_t heads = 3;
  double mlp_ratio = 4.0;
  int64_t num_classes = 10;
  double norm_eps = 1e-5;  // LayerNorm epsilon everywhere (torchvision's ViT: 1e-6)

  int64_t patches() const { return (image_height / patch) * (image_width / patch); }
  void validate() const;
};

// Parameter names follow timm's VisionTransformer: patch_embed.proj.{weight,bias} (a conv-shaped
// [C, in_channels, p, p] weight applied as a matmul over non-overlapping patches), cls_token
// [1,1,C], pos_embed [1,1+P,C], blocks.<i>.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}.*,
// norm.*, head.*.
// Patch embedding: non-overlapping p×p patches projected to C channels. The projection is held in
// a Conv2d (so its weight has the conv shape [C, C_in, p, p] of timm/torchvision) but applied as
// one matmul over the patches, which is faster on CPU than a strided convolution.
class PatchEmbedImpl : public torch::nn::Module {
 public:
  PatchEmbedImpl(int64_t in_channels, int64_t patch, int64_t dim);
  torch::Tensor forward(const torch::Tensor& images);  // [B, C_in, H, W] -> [B, P, C]
  int64_t in_channels, patch, dim;
  torch::nn::Conv2d proj{nullptr};
};
TORCH_MODULE(PatchEmbed);

class VisionTransformerImpl : public TransformerModel {
 public:
  explicit VisionTransformerImpl(const VitOptions& options);

  ModelOutput forward(const torch::Tensor& images, const ForwardContext& context) override;
  std::string kind() const override { return "vit"; }
  // Images per second; top-1 accuracy.
  TaskUnits task_units() const override { return {"img/s", 1, "images", "accuracy", false}; }
  int64_t depth() const override { return options.depth; }
  int64_t dense_tokens() const override { return options.patches() + 1; }
  std::pair<int64_t, int64_t> patch_grid() const override {
    return {options.image_height / options.patch, options.image_width / options.patch};
  }
  double dense_forward_flops_per_sample() const override;
  double dense_block_flops_per_sample() const override;

  VitOptions options;
  PatchEmbed patch_embed{nullptr};
  torch::Tensor cls_token;  // [1, 1, C]
  torch::Tensor pos_embed;  // [1, 1 + P, C]
  torch::nn::ModuleList blocks{nullptr};
  torch::nn::LayerNorm norm{nullptr};
  torch::nn::Linear head{nullptr};

 private:
  BlockOptions block_options() const;
};

}  // namespace winnow::train
