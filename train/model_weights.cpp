// HDF5 model weights.
#include "train/model_weights.h"

#include <set>
#include <sstream>

#include "data/h5_file.h"
#include "train/checkpoint.h"

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
  write_checkpoint(path, model, /*optimizer=*/nullptr, meta);
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
              "'", path, "' is neither a winnow checkpoint nor a winnow weights file (no /meta "
              "format=winnow.checkpoint or winnow.weights)");
  std::set<std::string> stored;
  for (const auto& name : file.children("model")) stored.insert(name);

  std::vector<std::pair<std::string, torch::Tensor>> wanted;
  for (const auto& item : model.named_parameters()) wanted.emplace_back(item.key(), item.value());
  for (const auto& item : model.named_buffers()) wanted.emplace_back(item.key(), item.value());

  std::vector<std::string> missing, misshaped;
  std::set<std::string> expected;
  for (const auto& [name, tensor] : wanted) {
    expected.insert(name);
    if (!stored.count(name)) {
      missing.push_back(name);
      continue;
    }
    auto info = file.dataset_info(dataset_name(name));
    if (info.shape != tensor.sizes().vec() || !info.dtype || *info.dtype != tensor.scalar_type()) {
      std::ostringstream s;
      s << name << " (file " << c10::IntArrayRef(info.shape) << " " << info.type_name << ", model "
        << tensor.sizes() << " " << tensor.scalar_type() << ")";
      misshaped.push_back(s.str());
    }
  }
  std::vector<std::string> unexpected;
  for (const auto& name : stored)
    if (!expected.count(name)) unexpected.push_back(name);
  if (!missing.empty() || !unexpected.empty() || !misshaped.empty()) {
    auto list = [](const std::vector<std::string>& v) {
      std::string s;
      for (const auto& x : v) s += "\n    " + x;
      return v.empty() ? std::string(" none") : s;
    };
    TORCH_CHECK(false, "weights in '", path,
                "' do not fit the configured model:\n  missing:", list(missing),
                "\n  unexpected:", list(unexpected), "\n  mis-shaped:", list(misshaped));
  }
  torch::NoGradGuard no_grad;
  for (auto& [name, tensor] : wanted) tensor.copy_(file.read_tensor(dataset_name(name)));
}

std::string read_weights_config(const std::string& path) {
  data::H5File file(path, data::H5File::Mode::kRead);
  return file.attr_string("/meta", "config");
}

}  // namespace winnow::train
