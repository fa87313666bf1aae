// torchvision's VisionTransformer <-> winnow's ViT: the name mapping and the model spec a
// torchvision state dict implies. The two compute the same function when winnow's norm_eps is
// torchvision's 1e-6 (docs/interop.md has the term-by-term comparison).
#pragma once

#include <vector>

#include "train/interop_mapping.h"
#include "train/model_registry.h"

namespace winnow::train {

// torchvision builds every LayerNorm with eps 1e-6 (winnow's default is 1e-5).
constexpr double kTorchvisionNormEps = 1e-6;

// One row per tensor of a `depth`-layer model; no tensor is transformed, only renamed.
std::vector<NameMapping> torchvision_vit_mapping(int64_t depth);

// The winnow ViT that holds a torchvision state dict: width, depth, patch, image size, MLP width
// and classes from the shapes; `heads` given (nn.MultiheadAttention's packed in_proj_weight
// [3C, C] is the same for every head count). Variants winnow does not have (a representation
// layer heads.pre_logits, a convolutional stem) are rejected by name.
ModelSpec torchvision_vit_spec(const StateDict& torchvision, int64_t heads);

// torchvision names -> winnow names (older files' mlp.linear_1/linear_2 are read as mlp.0/mlp.3,
// as torchvision itself does).
StateDict vit_from_torchvision(const StateDict& torchvision, int64_t depth);

// winnow names -> torchvision names, loadable with VisionTransformer.load_state_dict(strict=True).
StateDict vit_to_torchvision(const StateDict& ours, int64_t depth);

}  // namespace winnow::train
