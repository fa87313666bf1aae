// HDF5 model weights.
#include "train/model_weights.h"

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

std::string read_weights_config(const std::string& path) {
  data::H5File file(path, data::H5File::Mode::kRead);
  TORCH_CHECK(file.exists("meta") && file.has_attr("/meta", "config"), "'", path,
              "' is neither a winnow checkpoint nor a winnow weights file (no /meta group with "
              "a config attribute)");
  return file.attr_string("/meta", "config");
}

}  // namespace winnow::train
