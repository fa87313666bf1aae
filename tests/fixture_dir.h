// The reference-fixture folder (tests/fixtures), read from the environment: CTest sets
// WINNOW_FIXTURE_DIR for the tests that need it. A compile-time path would differ between clones
// and make every clone miss ccache for those files (docs/results.md, "Build and CI times").
#pragma once

#include <torch/torch.h>

#include <cstdlib>
#include <string>

namespace winnow::testing {

inline std::string fixture_dir() {
  const char* dir = std::getenv("WINNOW_FIXTURE_DIR");
  TORCH_CHECK(dir && *dir,
              "WINNOW_FIXTURE_DIR is not set: run this test through ctest, or export "
              "WINNOW_FIXTURE_DIR=<repository>/tests/fixtures");
  return dir;
}

}  // namespace winnow::testing
