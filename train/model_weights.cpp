// HDF5 model weights.
#include "train/model_weights.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <set>
#include <sstream>

#include "data/h5_file.h"

namespace winnow::train {
namespace {

void fsync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  TORCH_CHECK(fd >= 0, "cannot open ", path, " to flush it to disk");
  const int rc = ::fsync(fd);
  ::close(fd);
  TORCH_CHECK(rc == 0, "fsync of ", path, " failed");
}

std::string folder_of(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
}

std::string dataset_name(const std::string& parameter) {
  return "model/" + parameter;
}

}  // namespace

void save_model_weights(const TransformerModel& model, const std::string& path,
                        const std::string& config_ini) {
  const std::string temporary = path + ".tmp." + std::to_string(::getpid());
  {
    data::H5File file(temporary, data::H5File::Mode::kCreate);
    file.create_group("meta");
    file.set_attr_string("/meta", "format", "winnow.weights");
    file.set_attr_int("/meta", "format_version", 1);
    file.set_attr_string("/meta", "model_kind", model.kind());
    file.set_attr_string("/meta", "config", config_ini);
    for (const auto& item : model.named_parameters())
      file.write_tensor(dataset_name(item.key()), item.value().detach());
    for (const auto& item : model.named_buffers())
      file.write_tensor(dataset_name(item.key()), item.value().detach());
    file.close();
  }
  fsync_path(temporary);
  TORCH_CHECK(std::rename(temporary.c_str(), path.c_str()) == 0, "cannot rename ", temporary,
              " to ", path);
  fsync_path(folder_of(path));
}

void load_model_weights(TransformerModel& model, const std::string& path) {
  data::H5File file(path, data::H5File::Mode::kRead);
  TORCH_CHECK(file.exists("meta") && file.has_attr("/meta", "format") &&
                  file.attr_string("/meta", "format") == "winnow.weights",
              "'", path, "' is not a winnow weights file (no /meta format=winnow.weights)");
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
