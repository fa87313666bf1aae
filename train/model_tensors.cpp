// Matching a stored /model group against a model: names, shapes, dtypes.
#include "train/model_tensors.h"

#include <set>
#include <sstream>

#include "data/error_text.h"

namespace winnow::train {
namespace {

std::string name_list(const std::vector<std::string>& names) {
  if (names.empty()) return " none";
  std::string s;
  for (const auto& n : names) s += "\n    " + data::escaped_bytes(n, 200);  // names from a file
  return s;
}

}  // namespace

std::vector<std::pair<std::string, torch::Tensor>> model_tensors(const TransformerModel& model) {
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& item : model.named_parameters()) tensors.emplace_back(item.key(), item.value());
  for (const auto& item : model.named_buffers()) tensors.emplace_back(item.key(), item.value());
  return tensors;
}

void check_stored_model_fits(const data::H5File& file, const TransformerModel& model,
                             const std::string& what) {
  std::set<std::string> stored;
  if (file.exists("model"))
    for (const auto& name : file.children("model")) stored.insert(name);
  std::vector<std::string> missing, unexpected, misshaped;
  std::set<std::string> expected;
  for (const auto& [name, tensor] : model_tensors(model)) {
    expected.insert(name);
    if (!stored.count(name)) {
      missing.push_back(name);
      continue;
    }
    const auto info = file.dataset_info("model/" + name);
    if (info.shape != tensor.sizes().vec() || !info.dtype || *info.dtype != tensor.scalar_type()) {
      std::ostringstream s;
      s << name << " (" << what << " " << c10::IntArrayRef(info.shape) << " " << info.type_name
        << ", model " << tensor.sizes() << " " << tensor.scalar_type() << ")";
      misshaped.push_back(s.str());
    }
  }
  for (const auto& name : stored)
    if (!expected.count(name)) unexpected.push_back(name);
  TORCH_CHECK(missing.empty() && unexpected.empty() && misshaped.empty(), what, " '", file.path(),
              "' does not fit the configured model:\n  missing:", name_list(missing),
              "\n  unexpected:", name_list(unexpected), "\n  mis-shaped:", name_list(misshaped));
}

}  // namespace winnow::train
