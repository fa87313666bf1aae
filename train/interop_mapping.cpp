// Applying name mappings between foreign and winnow state dicts.
#include "train/interop_mapping.h"

#include <map>

#include "data/error_text.h"

namespace winnow::train {
namespace {

std::string list_names(const std::vector<std::string>& names) {
  std::string s;
  const size_t shown = std::min<size_t>(names.size(), 20);
  // Names can come from the file: shown escaped (data/error_text.h).
  for (size_t i = 0; i < shown; ++i) s += "\n    " + data::escaped_bytes(names[i], 256);
  if (names.size() > shown) s += "\n    ... and " + std::to_string(names.size() - shown) + " more";
  return s;
}

// "a.b.bias" -> "a.b.weight"
std::string weight_of_bias(const std::string& bias) {
  const std::string suffix = ".bias";
  TORCH_CHECK(bias.size() > suffix.size() &&
                  bias.compare(bias.size() - suffix.size(), suffix.size(), suffix) == 0,
              "name mapping: optional_bias row '", bias, "' does not end in .bias");
  return bias.substr(0, bias.size() - suffix.size()) + ".weight";
}

}  // namespace

StateDict import_by_mapping(const StateDict& theirs, const std::vector<NameMapping>& mapping,
                            const std::function<bool(const std::string&)>& ignored,
                            const std::string& format) {
  std::map<std::string, torch::Tensor> pending(theirs.begin(), theirs.end());
  StateDict ours;
  std::vector<std::string> missing;
  for (const auto& row : mapping) {
    auto it = pending.find(row.theirs);
    torch::Tensor tensor;
    if (it != pending.end()) {
      tensor = it->second;
      pending.erase(it);
    } else if (row.optional_bias) {
      auto weight = find_tensor(theirs, weight_of_bias(row.theirs));  // [out, ...]
      if (weight.defined()) tensor = torch::zeros({weight.size(0)}, weight.options());
    }
    if (!tensor.defined()) {
      missing.push_back(row.theirs);
      continue;
    }
    ours.emplace_back(row.ours, row.drop_leading_one ? tensor.unsqueeze(0) : tensor);
  }
  std::vector<std::string> unknown;
  for (const auto& item : pending)
    if (!ignored(item.first)) unknown.push_back(item.first);
  TORCH_CHECK(missing.empty() && unknown.empty(), format,
              " state dict: expected exactly the tensors of a supported model (docs/interop.md)"
              "\n  missing:",
              missing.empty() ? " none" : list_names(missing),
              "\n  not understood:", unknown.empty() ? " none" : list_names(unknown));
  return ours;
}

StateDict export_by_mapping(const StateDict& ours, const std::vector<NameMapping>& mapping,
                            bool with_optional_biases, const std::string& format) {
  StateDict theirs;
  for (const auto& row : mapping) {
    auto tensor = find_tensor(ours, row.ours);
    TORCH_CHECK(tensor.defined(), format, " export: the winnow model has no tensor '", row.ours,
                "'");
    if (row.optional_bias && !with_optional_biases) {
      TORCH_CHECK(tensor.eq(0).all().item<bool>(), format, " export without biases: expected ",
                  row.ours,
                  " to be all zeros (as imported from a bias-free model), but it holds "
                  "non-zero values (fine-tuning trains biases); export with biases instead");
      continue;
    }
    if (row.drop_leading_one) {
      TORCH_CHECK(tensor.dim() >= 1 && tensor.size(0) == 1, format, " export: expected ", row.ours,
                  " with a leading dimension of 1, got ", tensor.sizes());
      tensor = tensor.squeeze(0);
    }
    theirs.emplace_back(row.theirs, tensor);
  }
  return theirs;
}

}  // namespace winnow::train
