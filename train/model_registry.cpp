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

}  // namespace

const ModelRegistry& model_registry() {
  static const ModelRegistry registry(
      "model.kind: unknown model '{name}'; known: {names}",
      {
          {"vit", "Vision Transformer on class-labelled images", make_vit},
          {"gpt", "GPT decoder on windows of a token stream", make_gpt},
      });
  return registry;
}

std::vector<std::string> known_models() {
  return model_registry().names();
}

std::shared_ptr<TransformerModel> make_model(const ModelSpec& spec) {
  return model_registry().create(spec.kind, spec);
}

}  // namespace winnow::train
