// Loads a reference fixture written by tests/fixtures/make_token_fixtures.py (a torch.save dict).
#pragma once

#include <torch/csrc/jit/serialization/pickle.h>
#include <torch/torch.h>

#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "tests/fixture_dir.h"

namespace winnow::compression::testing {

// The fixture `name` in the fixture folder (WINNOW_FIXTURE_DIR, set by CTest).
inline std::string fixture_path(const std::string& name) {
  return winnow::testing::fixture_dir() + "/" + name + ".pt";
}

// Name → tensor for every entry of the fixture `name`.
inline std::map<std::string, torch::Tensor> load_fixture(const std::string& name) {
  const auto path = fixture_path(name);
  std::ifstream file(path, std::ios::binary);
  TORCH_CHECK(file, "fixture: cannot open ", path,
              " (regenerate with tests/fixtures/make_token_fixtures.py)");
  const std::vector<char> bytes((std::istreambuf_iterator<char>(file)),
                                std::istreambuf_iterator<char>());
  const auto value = torch::pickle_load(bytes);
  TORCH_CHECK(value.isGenericDict(), "fixture: expected a dict in ", path, ", got ",
              value.tagKind());
  std::map<std::string, torch::Tensor> tensors;
  for (const auto& item : value.toGenericDict()) {
    tensors[item.key().toStringRef()] = item.value().toTensor();
  }
  return tensors;
}

// The entry `key` of a loaded fixture; throws when it is missing.
inline const torch::Tensor& entry(const std::map<std::string, torch::Tensor>& fixture,
                                  const std::string& key) {
  const auto found = fixture.find(key);
  TORCH_CHECK(found != fixture.end(), "fixture: missing entry '", key, "'");
  return found->second;
}

}  // namespace winnow::compression::testing
