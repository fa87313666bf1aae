// HDF5 model weights.
#include "train/model_weights.h"

#include <set>
#include <sstream>

#include "data/error_text.h"
#include "data/h5_file.h"
#include "train/checkpoint.h"
#include "train/model_tensors.h"

namespace winnow::train {
namespace {

bool is_checkpoint(const std::string& path) {
  try {
    data::H5File file(path, data::H5File::Mode::kRead);
    return file.has_attr("/meta", "format") &&
           file.attr_string("/meta", "format") == kCheckpointFormat;
  } catch (const c10::Error&) {
    return false;
  }
}

std::string dataset_name(const std::string& parameter) {
  return "model/" + parameter;
}

}  // namespace

void save_model_weights(const TransformerModel& model, const std::string& path,
                        const std::string& config_ini) {
  CheckpointMeta meta;
  meta.reason = "weights";
  meta.config_ini = config_ini;
  try {
    write_checkpoint(path, model, /*optimizer=*/nullptr, meta);
  } catch (const std::exception& e) {
    TORCH_CHECK(false, "cannot write the weights file '", path, "': ", data::error_message(e),
                " (the partial file was removed)");
  }
}

void load_model_weights(TransformerModel& model, const std::string& path) {
  if (is_checkpoint(path)) {
    read_checkpoint(path, model, /*optimizer=*/nullptr);
    return;
  }
  // Files of winnow 0.1 before checkpoints: format winnow.weights, no checksums.
  data::H5File file(path, data::H5File::Mode::kRead);
  TORCH_CHECK(file.exists("meta") && file.has_attr("/meta", "format") &&
                  file.attr_string("/meta", "format") == "winnow.weights",
              "'", path,
              "' is neither a winnow checkpoint nor a winnow weights file (no /meta "
              "format=winnow.checkpoint or winnow.weights)");
  check_stored_model_fits(file, model, "weights file");
  torch::NoGradGuard no_grad;
  for (auto& [name, tensor] : model_tensors(model))
    tensor.copy_(file.read_tensor(dataset_name(name)));
}

BackboneLoad load_backbone_weights(TransformerModel& model, const std::string& path) {
  if (is_checkpoint(path)) summarize_checkpoint(path, /*verify_checksums=*/true);  // throws
  data::H5File file(path, data::H5File::Mode::kRead);
  TORCH_CHECK(file.exists("model"), "'", path,
              "' is not a winnow weights file: expected a /model group of tensors");
  std::set<std::string> stored;
  for (const auto& name : file.children("model")) stored.insert(name);
  BackboneLoad load;
  std::vector<std::string> missing, unexpected, misshaped;
  std::vector<std::pair<std::string, torch::Tensor>> to_load;
  std::set<std::string> known;
  for (const auto& [name, tensor] : model_tensors(model)) {
    known.insert(name);
    const bool component = TransformerModel::is_compression_parameter(name);
    if (!stored.count(name)) {
      if (component) {
        load.fresh_components.push_back(name);
      } else {
        missing.push_back(name);
      }
      continue;
    }
    const auto info = file.dataset_info(dataset_name(name));
    if (info.shape != tensor.sizes().vec() || !info.dtype || *info.dtype != tensor.scalar_type()) {
      std::ostringstream s;
      s << name << " (file " << c10::IntArrayRef(info.shape) << " " << info.type_name << ", model "
        << tensor.sizes() << " " << tensor.scalar_type() << ")";
      misshaped.push_back(s.str());
      continue;
    }
    to_load.emplace_back(name, tensor);
    if (component) load.loaded_components.push_back(name);
  }
  for (const auto& name : stored) {
    if (known.count(name)) continue;
    if (TransformerModel::is_compression_parameter(name)) {
      load.ignored_components.push_back(name);
    } else {
      unexpected.push_back(name);
    }
  }
  const auto list = [](const std::vector<std::string>& names) {
    std::string text;
    for (const auto& name : names) text += "\n    " + data::escaped_bytes(name, 200);
    return names.empty() ? std::string(" none") : text;
  };
  TORCH_CHECK(missing.empty() && unexpected.empty() && misshaped.empty(), "'", path,
              "' does not hold the configured model's backbone:\n  missing:", list(missing),
              "\n  unexpected:", list(unexpected), "\n  mis-shaped:", list(misshaped));
  torch::NoGradGuard no_grad;
  for (auto& [name, tensor] : to_load) tensor.copy_(file.read_tensor(dataset_name(name)));
  load.backbone_tensors = static_cast<int64_t>(to_load.size() - load.loaded_components.size());
  return load;
}

std::string read_weights_config(const std::string& path) {
  data::H5File file(path, data::H5File::Mode::kRead);
  TORCH_CHECK(file.exists("meta") && file.has_attr("/meta", "config"), "'", path,
              "' is neither a winnow checkpoint nor a winnow weights file (no /meta group with "
              "a config attribute)");
  return file.attr_string("/meta", "config");
}

}  // namespace winnow::train
