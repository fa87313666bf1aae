// Name mappings between a foreign state dict (torchvision, nanoGPT) and winnow's: one row per
// tensor, applied in either direction with every name accounted for.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "train/interop_torch_file.h"

namespace winnow::train {

struct NameMapping {
  std::string theirs;  // e.g. "encoder.layers.encoder_layer_0.ln_1.weight"
  std::string ours;    // e.g. "blocks.0.norm1.weight"
  // Theirs lacks ours' leading dimension of 1 (nanoGPT's wpe.weight [T, C] vs pos_embed [1, T, C]).
  bool drop_leading_one = false;
  // A bias that a bias-free variant lacks (nanoGPT bias=False): imported as zeros (the same
  // function), exported only when biases are asked for.
  bool optional_bias = false;
};

// Renames `theirs` to winnow names. Every mapped name must be present (a missing optional bias
// becomes zeros shaped like its layer's output), and every name of `theirs` must be mapped or
// `ignored`, so an unsupported variant fails with the names it does not know.
StateDict import_by_mapping(const StateDict& theirs, const std::vector<NameMapping>& mapping,
                            const std::function<bool(const std::string&)>& ignored,
                            const std::string& format);

// Renames winnow's `ours` to their names, in the mapping's order. Optional biases are written
// only `with_optional_biases`; without them, each must be all zeros (else the exported model
// would compute another function), which throws naming the first that is not.
StateDict export_by_mapping(const StateDict& ours, const std::vector<NameMapping>& mapping,
                            bool with_optional_biases, const std::string& format);

}  // namespace winnow::train
