// winnow state dicts for weight interop.
#include "train/interop_state_dict.h"

#include <cmath>
#include <map>
#include <sstream>

#include "data/error_text.h"
#include "data/h5_file.h"
#include "data/registry.h"

namespace winnow::train {

StateDict model_state_dict(const TransformerModel& model) {
  StateDict state;
  for (const auto& item : model.named_parameters())
    state.emplace_back(item.key(), item.value().detach());
  for (const auto& item : model.named_buffers())
    state.emplace_back(item.key(), item.value().detach());
  return state;
}

void load_state_dict_into(TransformerModel& model, const StateDict& state,
                          const std::string& what) {
  std::map<std::string, torch::Tensor> given(state.begin(), state.end());
  std::vector<std::string> missing, misshaped;
  auto wanted = model_state_dict(model);
  for (const auto& [name, tensor] : wanted) {
    auto it = given.find(name);
    if (it == given.end()) {
      missing.push_back(name);
    } else if (it->second.sizes() != tensor.sizes()) {
      std::ostringstream s;
      s << name << " (given " << it->second.sizes() << ", model " << tensor.sizes() << ")";
      misshaped.push_back(s.str());
    }
    if (it != given.end()) given.erase(it);
  }
  if (!missing.empty() || !given.empty() || !misshaped.empty()) {
    auto list = [](const std::vector<std::string>& v) {
      std::string s;
      for (const auto& x : v) s += "\n    " + x;  // names from a file are escaped below
      return v.empty() ? std::string(" none") : s;
    };
    std::vector<std::string> unexpected;
    for (const auto& item : given) unexpected.push_back(data::escaped_bytes(item.first, 256));
    TORCH_CHECK(false, what, " does not fit the ", model.kind(),
                " model:\n  missing:", list(missing), "\n  unexpected:", list(unexpected),
                "\n  mis-shaped:", list(misshaped));
  }
  torch::NoGradGuard no_grad;
  for (auto& [name, tensor] : wanted) tensor.copy_(find_tensor(state, name));
}

StateDict read_weights_state_dict(const std::string& path) {
  data::H5File file(path, data::H5File::Mode::kRead);
  TORCH_CHECK(file.exists("model"), "'", path,
              "' is not a winnow weights file: expected a /model group of tensors");
  StateDict state;
  for (const auto& name : file.children("model"))
    state.emplace_back(name, file.read_tensor("model/" + name));
  return state;
}

torch::Tensor require_tensor(const StateDict& state, const std::string& name,
                             const std::string& what) {
  auto tensor = find_tensor(state, name);
  TORCH_CHECK(tensor.defined(), what, ": expected a tensor named '", name, "', found none");
  return tensor;
}

int64_t count_blocks(const StateDict& state, const std::string& prefix, const std::string& suffix) {
  int64_t count = 0;
  while (find_tensor(state, prefix + std::to_string(count) + suffix).defined()) ++count;
  return count;
}

double mlp_ratio_for(int64_t dim, int64_t hidden) {
  TORCH_CHECK(dim > 0 && hidden > 0, "mlp width: expected dim > 0 and hidden > 0, got ", dim,
              " and ", hidden);
  double ratio = static_cast<double>(hidden) / static_cast<double>(dim);
  // hidden/dim may round below the exact quotient; the next doubles up restore the truncation.
  for (int i = 0; i < 8 && static_cast<int64_t>(static_cast<double>(dim) * ratio) < hidden; ++i)
    ratio = std::nextafter(ratio, 2.0 * ratio);
  TORCH_CHECK(static_cast<int64_t>(static_cast<double>(dim) * ratio) == hidden,
              "mlp width: no mlp_ratio gives ", hidden, " hidden units for width ", dim);
  return ratio;
}

namespace {

// The shape of a ViT from its patch embedding, positions and head.
ModelSpec vit_shape(const StateDict& state, ModelSpec spec, const std::string& what) {
  const auto proj = require_tensor(state, "patch_embed.proj.weight", what);  // [C, C_in, p, p]
  const auto pos = require_tensor(state, "pos_embed", what);                 // [1, 1 + P, C]
  const auto head = require_tensor(state, "head.weight", what);              // [classes, C]
  TORCH_CHECK(proj.dim() == 4 && proj.size(2) == proj.size(3) && pos.dim() == 3, what,
              ": expected patch_embed.proj.weight [C, C_in, p, p] and pos_embed [1, 1+P, C], "
              "got ",
              proj.sizes(), " and ", pos.sizes());
  spec.dim = proj.size(0);
  spec.image_channels = proj.size(1);
  spec.patch = proj.size(2);
  const int64_t patches = pos.size(1) - 1;
  const auto side = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(patches))));
  TORCH_CHECK(side * side == patches, what, ": expected a square patch grid, got ", patches,
              " patches (the weights do not tell a non-square image's height from its width)");
  spec.image_height = spec.image_width = side * spec.patch;
  spec.num_classes = head.size(0);
  return spec;
}

// The shape of a GPT from its token and position embeddings.
ModelSpec gpt_shape(const StateDict& state, ModelSpec spec, const std::string& what) {
  const auto embed = require_tensor(state, "tok_embed.weight", what);  // [V, C]
  const auto pos = require_tensor(state, "pos_embed", what);           // [1, T, C]
  TORCH_CHECK(embed.dim() == 2 && pos.dim() == 3, what,
              ": expected tok_embed.weight [V, C] and pos_embed [1, T, C], got ", embed.sizes(),
              " and ", pos.sizes());
  spec.vocab_size = embed.size(0);
  spec.dim = embed.size(1);
  spec.context = pos.size(1);
  return spec;
}

// What the weights of each model kind (model_registry()'s names) tell about its shape; `spec`
// arrives with the kind, heads, norm epsilon and depth filled in.
using ShapeReaders =
    data::Registry<ModelSpec, const StateDict&, ModelSpec, const std::string& /*what*/>;
const ShapeReaders& shape_readers() {
  static const ShapeReaders registry("model kind '{name}': expected one of {names}",
                                     {
                                         {"vit", "patch embedding, positions, head", vit_shape},
                                         {"gpt", "token and position embeddings", gpt_shape},
                                     });
  return registry;
}

}  // namespace

ModelSpec spec_of_state_dict(const StateDict& state, const std::string& kind, int64_t heads,
                             double norm_eps) {
  const std::string what = "winnow " + kind + " weights";
  ModelSpec spec;
  spec.kind = kind;
  spec.heads = heads;
  spec.norm_eps = norm_eps;
  spec.depth = count_blocks(state, "blocks.", ".norm1.weight");
  TORCH_CHECK(spec.depth > 0, what, ": expected blocks.0.norm1.weight, found no blocks");
  const auto fc1 = require_tensor(state, "blocks.0.mlp.fc1.weight", what);  // [M, C]
  spec = shape_readers().create(kind, state, spec, what);
  spec.mlp_ratio = mlp_ratio_for(spec.dim, fc1.size(0));
  return spec;
}

}  // namespace winnow::train
