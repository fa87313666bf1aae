// Implements the format-identification attributes shared by the winnow data files.
#include "data/format_attrs.h"

#include <torch/torch.h>

#include "data/error_text.h"

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
              "' attribute 'format': expected '", expected_format, "', got '",
              escaped_bytes(format), "'");
  TORCH_CHECK(file.has_attr("/", "format_version"), "data format: '", file.path(),
              "' has no root attribute 'format_version' (expected ", expected_version, ")");
  const int64_t version = file.attr_int("/", "format_version");
  TORCH_CHECK(version == expected_version, "data format: '", file.path(),
              "' attribute 'format_version': expected ", expected_version, ", got ", version,
              version > expected_version ? " (written by a newer winnow?)" : "");
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

H5DatasetInfo require_dataset(const H5File& file, const std::string& who, const std::string& name,
                              torch::ScalarType dtype, int64_t rank, const std::string& dims) {
  TORCH_CHECK(file.exists(name), who, ": '", file.path(), "' has no dataset '", name, "'");
  H5DatasetInfo info = file.dataset_info(name);
  TORCH_CHECK(info.dtype == dtype, who, ": '", file.path(), "' dataset '", name,
              "': expected dtype ", h5_dtype_name(dtype), ", got ", info.type_name);
  TORCH_CHECK(rank < 0 || static_cast<int64_t>(info.shape.size()) == rank, who, ": '", file.path(),
              "' dataset '", name, "': expected rank ", rank, " ", dims, ", got shape ",
              shape_text(info.shape));
  return info;
}

void require_root_attrs(const H5File& file, const std::string& who,
                        const std::vector<std::string>& keys) {
  for (const auto& key : keys) {
    TORCH_CHECK(file.has_attr("/", key), who, ": '", file.path(), "' has no root attribute '", key,
                "'");
  }
}

}  // namespace winnow::data
