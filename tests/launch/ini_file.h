// write_ini: a config text written to a fresh file under GoogleTest's temporary directory, for
// the tests that parse configuration files.
#pragma once

#include <gtest/gtest.h>

#include <fstream>
#include <string>

namespace winnow::launch::test_files {

// Writes `text` to a new file (a different name on every call) and returns its path.
inline std::string write_ini(const std::string& text) {
  static int counter = 0;
  const std::string path =
      ::testing::TempDir() + "/winnow_test_config_" + std::to_string(counter++) + ".ini";
  std::ofstream(path) << text;
  return path;
}

}  // namespace winnow::launch::test_files
