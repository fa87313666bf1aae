// torchvision VisionTransformer interop. Names and shapes are those of
// torchvision/models/vision_transformer.py (torchvision 0.14, the version Debian ships).
#include "train/interop_torchvision.h"

#include <cmath>

#include "train/interop_state_dict.h"

namespace winnow::train {
namespace {

const char* kFormat = "torchvision-vit";

std::string layer_prefix(int64_t i) {
  return "encoder.layers.encoder_layer_" + std::to_string(i) + ".";
}

// torchvision < 0.14 named the MLP's linears linear_1 and linear_2 (MLPBlock version 1).
std::string current_torchvision_name(const std::string& name) {
  for (const auto& [old_part, new_part] :
       {std::pair<std::string, std::string>{".mlp.linear_1.", ".mlp.0."},
        {".mlp.linear_2.", ".mlp.3."}}) {
    const auto at = name.find(old_part);
    if (at != std::string::npos)
      return name.substr(0, at) + new_part + name.substr(at + old_part.size());
  }
  return name;
}

}  // namespace

std::vector<NameMapping> torchvision_vit_mapping(int64_t depth) {
  std::vector<NameMapping> rows = {
      {"class_token", "cls_token"},
      {"conv_proj.weight", "patch_embed.proj.weight"},
      {"conv_proj.bias", "patch_embed.proj.bias"},
      {"encoder.pos_embedding", "pos_embed"},
  };
  auto both = [&](const std::string& theirs, const std::string& ours) {
    for (const char* kind : {"weight", "bias"})
      rows.push_back({theirs + "." + kind, ours + "." + kind});
  };
  for (int64_t i = 0; i < depth; ++i) {
    const std::string t = layer_prefix(i), o = "blocks." + std::to_string(i) + ".";
    both(t + "ln_1", o + "norm1");
    rows.push_back({t + "self_attention.in_proj_weight", o + "attn.qkv.weight"});
    rows.push_back({t + "self_attention.in_proj_bias", o + "attn.qkv.bias"});
    both(t + "self_attention.out_proj", o + "attn.proj");
    both(t + "ln_2", o + "norm2");
    both(t + "mlp.0", o + "mlp.fc1");
    both(t + "mlp.3", o + "mlp.fc2");
  }
  both("encoder.ln", "norm");
  both("heads.head", "head");
  return rows;
}

ModelSpec torchvision_vit_spec(const StateDict& torchvision, int64_t heads) {
  const std::string what = "torchvision-vit state dict";
  TORCH_CHECK(!find_tensor(torchvision, "heads.pre_logits.weight").defined(), what,
              ": has heads.pre_logits (representation_size is set); winnow's ViT has no "
              "representation layer");
  for (const auto& item : torchvision)
    TORCH_CHECK(
        item.first.rfind("conv_proj.conv_", 0) != 0, what, ": has ", item.first,
        " (a convolutional stem, conv_stem_configs); winnow's ViT has one patch projection");
  const auto proj = require_tensor(torchvision, "conv_proj.weight", what);      // [C, 3, p, p]
  const auto pos = require_tensor(torchvision, "encoder.pos_embedding", what);  // [1, 1 + P, C]
  const auto head = require_tensor(torchvision, "heads.head.weight", what);     // [classes, C]
  TORCH_CHECK(proj.dim() == 4 && proj.size(2) == proj.size(3) && pos.dim() == 3 &&
                  pos.size(2) == proj.size(0),
              what,
              ": expected conv_proj.weight [C, 3, p, p] and encoder.pos_embedding "
              "[1, 1+P, C], got ",
              proj.sizes(), " and ", pos.sizes());
  ModelSpec spec;
  spec.kind = "vit";
  spec.dim = proj.size(0);
  spec.image_channels = proj.size(1);
  spec.patch = proj.size(2);
  spec.depth = count_blocks(torchvision, "encoder.layers.encoder_layer_", ".ln_1.weight");
  TORCH_CHECK(spec.depth > 0, what, ": expected encoder.layers.encoder_layer_0.ln_1.weight");
  const int64_t patches = pos.size(1) - 1;
  const auto side = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(patches))));
  TORCH_CHECK(side * side == patches, what, ": expected a square patch grid, got ", patches,
              " patches in encoder.pos_embedding");
  spec.image_height = spec.image_width = side * spec.patch;
  spec.num_classes = head.size(0);
  auto fc1 = find_tensor(torchvision, layer_prefix(0) + "mlp.0.weight");  // [M, C]
  if (!fc1.defined())
    fc1 = require_tensor(torchvision, layer_prefix(0) + "mlp.linear_1.weight", what);
  spec.mlp_ratio = mlp_ratio_for(spec.dim, fc1.size(0));
  TORCH_CHECK(heads > 0 && spec.dim % heads == 0, what, ": expected --heads dividing the width ",
              spec.dim, " (torchvision: vit_b_* 12, vit_l_* 16, vit_h_14 16), got ", heads);
  spec.heads = heads;
  spec.norm_eps = kTorchvisionNormEps;
  return spec;
}

StateDict vit_from_torchvision(const StateDict& torchvision, int64_t depth) {
  StateDict current;
  for (const auto& [name, tensor] : torchvision)
    current.emplace_back(current_torchvision_name(name), tensor);
  return import_by_mapping(
      current, torchvision_vit_mapping(depth), [](const std::string&) { return false; }, kFormat);
}

StateDict vit_to_torchvision(const StateDict& ours, int64_t depth) {
  return export_by_mapping(ours, torchvision_vit_mapping(depth), true, kFormat);
}

}  // namespace winnow::train
