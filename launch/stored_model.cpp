// Rebuilding the model of a weights file.
#include "launch/stored_model.h"

#include "train/model_weights.h"

namespace winnow::launch {
namespace {

void require_same(int64_t stored, int64_t from_tensors, const std::string& option,
                  const std::string& path) {
  if (stored != from_tensors)
    throw ConfigError("'" + path + "': its stored config says " + option + "=" +
                      std::to_string(stored) + " but its tensors have " + option + "=" +
                      std::to_string(from_tensors));
}

}  // namespace

StoredModel load_stored_model(const std::string& path) {
  StoredModel stored;
  boost::program_options::options_description none;
  bool help = false;
  parse_run_config({}, none, stored.config, help, train::read_weights_config(path));
  const auto& model = stored.config.model;
  train::StateDict backbone;
  for (auto& [name, tensor] : train::read_weights_state_dict(path))
    (train::TransformerModel::is_compression_parameter(name) ? stored.components : backbone)
        .emplace_back(name, tensor);
  stored.spec = train::spec_of_state_dict(backbone, model.kind, model.heads, model.norm_eps);
  require_same(model.dim, stored.spec.dim, "model.dim", path);
  require_same(model.depth, stored.spec.depth, "model.depth", path);
  if (model.kind == "vit") require_same(model.patch, stored.spec.patch, "model.patch", path);
  const train::BlockOptions stored_block =
      train::BlockOptions(model.dim, model.heads).mlp_ratio(model.mlp_ratio);
  const train::BlockOptions tensor_block =
      train::BlockOptions(stored.spec.dim, stored.spec.heads).mlp_ratio(stored.spec.mlp_ratio);
  require_same(stored_block.mlp_hidden(), tensor_block.mlp_hidden(),
               "the MLP width (model.dim * model.mlp_ratio)", path);
  stored.spec.mlp_ratio = model.mlp_ratio;  // what a run would build from this config
  stored.model = train::make_model(stored.spec);
  train::load_backbone_weights(*stored.model, path);
  return stored;
}

std::string weights_config_of_args(const std::vector<std::string>& args) {
  std::string weights;
  for (size_t i = 0; i + 1 < args.size(); ++i)
    if (args[i] == "--weights") weights = args[i + 1];
  for (const auto& a : args)
    if (a.rfind("--weights=", 0) == 0) weights = a.substr(10);
  return weights.empty() ? std::string() : train::read_weights_config(weights);
}

}  // namespace winnow::launch
