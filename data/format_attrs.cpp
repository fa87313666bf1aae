// Implements the format-identification attributes shared by the winnow data files.
#include "data/format_attrs.h"

#include <torch/torch.h>

namespace winnow::data {

void write_format_attrs(H5File& file, const std::string& format, int64_t version) {
  file.set_attr_string("/", "format", format);
  file.set_attr_int("/", "format_version", version);
}

void check_format_attrs(const H5File& file, const std::string& expected_format,
                        int64_t expected_version) {
  TORCH_CHECK(file.has_attr("/", "format"), "data format: '", file.path(),
              "' has no root attribute 'format' (expected '", expected_format,
              "'); is it a winnow dataset file?");
  const std::string format = file.attr_string("/", "format");
  TORCH_CHECK(format == expected_format, "data format: '", file.path(),
              "' attribute 'format': expected '", expected_format, "', got '", format, "'");
  TORCH_CHECK(file.has_attr("/", "format_version"), "data format: '", file.path(),
              "' has no root attribute 'format_version' (expected ", expected_version, ")");
  const int64_t version = file.attr_int("/", "format_version");
  TORCH_CHECK(version == expected_version, "data format: '", file.path(),
              "' attribute 'format_version': expected ", expected_version, ", got ", version,
              version > expected_version ? " (written by a newer winnow?)" : "");
}

}  // namespace winnow::data
