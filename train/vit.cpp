// Vision Transformer classifier.
#include "train/vit.h"

#include "compression/flops.h"
#include "train/init.h"

namespace winnow::train {

void VitOptions::validate() const {
  TORCH_CHECK(image_channels > 0 && image_height > 0 && image_width > 0,
              "vit: expected a positive image shape, got ", image_channels, "x", image_height, "x",
              image_width);
  TORCH_CHECK(patch > 0 && image_height % patch == 0 && image_width % patch == 0,
              "vit: patch size ", patch, " must divide the image size ", image_height, "x",
              image_width);
  TORCH_CHECK(dim > 0 && depth > 0 && heads > 0 && dim % heads == 0,
              "vit: expected dim divisible by heads, got dim=", dim, " heads=", heads,
              " depth=", depth);
  TORCH_CHECK(mlp_ratio > 0, "vit: expected mlp_ratio > 0, got ", mlp_ratio);
  TORCH_CHECK(norm_eps > 0, "vit: expected norm_eps > 0, got ", norm_eps);
  TORCH_CHECK(num_classes > 1, "vit: expected at least 2 classes, got ", num_classes);
}

BlockOptions VisionTransformerImpl::block_options() const {
  return BlockOptions(options.dim, options.heads)
      .mlp_ratio(options.mlp_ratio)
      .causal(false)
      .norm_eps(options.norm_eps);
}

VisionTransformerImpl::VisionTransformerImpl(const VitOptions& options_) : options(options_) {
  options.validate();
  const int64_t c = options.dim, p = options.patch;
  // Registered in this order so named_parameters() lists them as timm does.
  patch_embed = register_module("patch_embed", PatchEmbed(options.image_channels, p, c));
  cls_token = register_parameter("cls_token", torch::zeros({1, 1, c}));
  pos_embed = register_parameter("pos_embed", torch::empty({1, 1 + options.patches(), c}));
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < options.depth; ++i) blocks->push_back(Block(block_options()));
  norm = register_module(
      "norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({c}).eps(options.norm_eps)));
  head = register_module("head", torch::nn::Linear(c, options.num_classes));

  torch::NoGradGuard no_grad;
  init_transformer_weights(*this, options.depth);
  // Patch projection: like a conv's fan-in uniform init (torchvision/timm use lecun-normal-ish).
  init_truncated_normal_(patch_embed->proj->weight,
                         1.0 / std::sqrt(static_cast<double>(options.image_channels * p * p)));
  patch_embed->proj->bias.zero_();
  init_truncated_normal_(pos_embed, 0.02);
  cls_token.normal_(0.0, 1e-6);
  head->weight.zero_();  // zero head: every class starts equally likely (timm's head_init_scale 0)
  head->bias.zero_();
}

PatchEmbedImpl::PatchEmbedImpl(int64_t in_channels_, int64_t patch_, int64_t dim_)
    : in_channels(in_channels_), patch(patch_), dim(dim_) {
  proj = register_module(
      "proj", torch::nn::Conv2d(torch::nn::Conv2dOptions(in_channels, dim, patch).stride(patch)));
}

torch::Tensor PatchEmbedImpl::forward(const torch::Tensor& images) {
  TORCH_CHECK(images.dim() == 4 && images.size(1) == in_channels && images.size(2) % patch == 0 &&
                  images.size(3) % patch == 0,
              "patch embedding: expected images [B, ", in_channels,
              ", H, W] with H and W multiples of ", patch, ", got ", images.sizes());
  const int64_t batch = images.size(0), rows = images.size(2) / patch,
                cols = images.size(3) / patch;
  // [B, Cin, rows, p, cols, p] -> [B, rows, cols, Cin, p, p] -> [B*P, Cin*p*p]
  // Images arrive as float32; a model converted to another dtype (float64 tests, bf16) casts them.
  auto patches = images.to(proj->weight.scalar_type())
                     .reshape({batch, in_channels, rows, patch, cols, patch})
                     .permute({0, 2, 4, 1, 3, 5})
                     .reshape({batch * rows * cols, in_channels * patch * patch});
  return torch::addmm(proj->bias, patches, proj->weight.reshape({dim, -1}).t())
      .view({batch, rows * cols, dim});
}

ModelOutput VisionTransformerImpl::forward(const torch::Tensor& images,
                                           const ForwardContext& context) {
  const int64_t batch = images.size(0);
  compression::TokenState state;
  TORCH_CHECK(images.dim() == 4 && images.size(1) == options.image_channels &&
                  images.size(2) == options.image_height && images.size(3) == options.image_width,
              "vit: expected images [B, ", options.image_channels, ", ", options.image_height, ", ",
              options.image_width, "], got ", images.sizes());
  auto patches = patch_embed->forward(images);  // [B, P, C]
  state.x = torch::cat({cls_token.expand({batch, 1, options.dim}), patches}, 1) +
            pos_embed;  // [B, 1+P, C]
  state.protected_count = 1;
  state.grid_height = options.image_height / options.patch;
  state.grid_width = options.image_width / options.patch;

  LayerAccounting accounting(block_options(), options.depth);
  accounting.add_flops(compression::linear_forward_flops(
      static_cast<double>(batch * options.patches()),
      options.image_channels * options.patch * options.patch, options.dim));
  for (int64_t layer = 0; layer < options.depth; ++layer) {
    BlockHook* hook = context.hook_for ? context.hook_for(layer) : nullptr;
    accounting.record(
        blocks[layer]->as<BlockImpl>()->forward(state, hook, context.measurement(layer)), batch);
    if (hook) accounting.add_flops(hook->extra_forward_flops());
  }
  ModelOutput output;
  torch::Tensor cls;  // [B, C]
  if (context.final_tokens) {
    output.final_state = state;
    output.final_state.x = norm->forward(state.x);  // [B, N, C]
    cls = output.final_state.x.select(1, 0);
  } else {
    cls = norm->forward(state.x.select(1, 0));
  }
  output.logits = head->forward(cls);  // [B, classes]
  accounting.add_flops(compression::linear_forward_flops(static_cast<double>(batch), options.dim,
                                                         options.num_classes));
  accounting.finish(output);
  if (context.aux_losses) output.aux_losses = *context.aux_losses;
  return output;
}

double VisionTransformerImpl::dense_block_flops_per_sample() const {
  const double tokens = static_cast<double>(dense_tokens());
  return static_cast<double>(options.depth) *
         compression::block_forward_flops({options.dim, block_options().mlp_hidden()}, tokens,
                                          tokens);
}

double VisionTransformerImpl::dense_forward_flops_per_sample() const {
  const double tokens = static_cast<double>(dense_tokens());
  const auto block = block_options();
  return static_cast<double>(options.depth) *
             compression::block_forward_flops({options.dim, block.mlp_hidden()}, tokens, tokens) +
         compression::linear_forward_flops(static_cast<double>(options.patches()),
                                           options.image_channels * options.patch * options.patch,
                                           options.dim) +
         compression::linear_forward_flops(1.0, options.dim, options.num_classes);
}

}  // namespace winnow::train
