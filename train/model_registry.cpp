// The model registry.
#include "train/model_registry.h"

#include "train/gpt.h"
#include "train/vit.h"

namespace winnow::train {
namespace {

std::shared_ptr<TransformerModel> make_vit(const ModelSpec& s) {
  VitOptions o;
  o.image_channels = s.image_channels;
  o.image_height = s.image_height;
  o.image_width = s.image_width;
  o.num_classes = s.num_classes;
  o.patch = s.patch;
  o.dim = s.dim;
  o.depth = s.depth;
  o.heads = s.heads;
  o.mlp_ratio = s.mlp_ratio;
  o.norm_eps = s.norm_eps;
  return std::make_shared<VisionTransformerImpl>(o);
}

std::shared_ptr<TransformerModel> make_gpt(const ModelSpec& s) {
  GptOptions o;
  o.vocab_size = s.vocab_size;
  o.context = s.context;
  o.dim = s.dim;
  o.depth = s.depth;
  o.heads = s.heads;
  o.mlp_ratio = s.mlp_ratio;
  o.norm_eps = s.norm_eps;
  return std::make_shared<GptImpl>(o);
}

struct Entry {
  const char* name;
  std::shared_ptr<TransformerModel> (*make)(const ModelSpec&);
};

// One line per model kind.
const Entry kModels[] = {
    {"vit", make_vit},
    {"gpt", make_gpt},
};

}  // namespace

std::vector<std::string> known_models() {
  std::vector<std::string> names;
  for (const auto& entry : kModels) names.emplace_back(entry.name);
  return names;
}

std::shared_ptr<TransformerModel> make_model(const ModelSpec& spec) {
  for (const auto& entry : kModels)
    if (spec.kind == entry.name) return entry.make(spec);
  std::string names;
  for (const auto& name : known_models()) names += (names.empty() ? "" : ", ") + name;
  TORCH_CHECK(false, "model.kind: unknown model '", spec.kind, "'; known: ", names);
}

}  // namespace winnow::train
