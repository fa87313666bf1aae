// The model registry: every model kind winnow can build, one line each.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "data/registry.h"
#include "train/model.h"

namespace winnow::train {

// What a model needs to be built: its own shape plus what the data dictates.
struct ModelSpec {
  std::string kind = "vit";
  int64_t dim = 192, depth = 6, heads = 3;
  double mlp_ratio = 4.0;
  double norm_eps = 1e-5;  // LayerNorm epsilon
  int64_t patch = 4;       // vit
  // From the data: images (vit) ...
  int64_t image_channels = 0, image_height = 0, image_width = 0, num_classes = 0;
  // ... or tokens (gpt).
  int64_t vocab_size = 0, context = 0;
};

using ModelRegistry = data::Registry<std::shared_ptr<TransformerModel>, const ModelSpec&>;

// Every model kind, keyed by ModelSpec::kind (model.kind).
const ModelRegistry& model_registry();

// Shorthands for model_registry().names() and .create(spec.kind, spec): an unknown kind throws
// with the list of known ones.
std::vector<std::string> known_models();
std::shared_ptr<TransformerModel> make_model(const ModelSpec& spec);

}  // namespace winnow::train
