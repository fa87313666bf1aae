// winnow's side of weight interop: a model's state dict (parameters and buffers by their dotted
// names), filling a model from one with every name and shape checked, and the model spec that a
// set of winnow tensors implies.
#pragma once

#include <string>

#include "train/interop_torch_file.h"
#include "train/model.h"
#include "train/model_registry.h"

namespace winnow::train {

// Parameters, then buffers, detached (they share storage with the model).
StateDict model_state_dict(const TransformerModel& model);

// Copies `state` into `model`. Names and shapes must match exactly; dtypes are converted. A
// mismatch throws one error listing the missing, unexpected and mis-shaped names. `what` names the
// source in the message.
void load_state_dict_into(TransformerModel& model, const StateDict& state, const std::string& what);

// Every /model/<name> tensor of a winnow weights file (or checkpoint), in the file's order.
StateDict read_weights_state_dict(const std::string& path);

// The spec of the winnow model that holds `state` (names as in vit.h / gpt.h). Shapes give the
// width, depth, MLP width, patch, image size (a ViT's image must be square: its weights do not
// tell the height from the width), classes, vocabulary and context; the head count and LayerNorm
// epsilon cannot be seen in shapes and are given.
ModelSpec spec_of_state_dict(const StateDict& state, const std::string& kind, int64_t heads,
                             double norm_eps);

// The mlp_ratio whose hidden width dim * ratio (truncated, as BlockOptions::mlp_hidden does) is
// exactly `hidden`; it prints and parses back exactly with 17 significant digits.
double mlp_ratio_for(int64_t dim, int64_t hidden);

// How many blocks `state` holds: the count of consecutive indices i with `prefix` i `suffix`.
int64_t count_blocks(const StateDict& state, const std::string& prefix, const std::string& suffix);

// The tensor named `name`; throws naming `what` and the expected name when it is absent.
torch::Tensor require_tensor(const StateDict& state, const std::string& name,
                             const std::string& what);

}  // namespace winnow::train
