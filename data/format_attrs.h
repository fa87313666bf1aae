// The `format` / `format_version` root attributes that identify every winnow data file.
#pragma once

#include <cstdint>
#include <string>

#include "data/h5_file.h"

namespace winnow::data {

// Writes `format` (string) and `format_version` (int64) on the root group.
void write_format_attrs(H5File& file, const std::string& format, int64_t version);

// Checks that the root group says `format` == expected_format and `format_version` ==
// expected_version; the error names the file, the attribute, and the expected vs found value
// (and says which winnow format the file is, when it is the other one).
void check_format_attrs(const H5File& file, const std::string& expected_format,
                        int64_t expected_version);

// "[60000, 28, 28, 1]": a shape as the error messages print it.
std::string shape_text(const std::vector<int64_t>& shape);

// Checks that dataset `name` exists with `dtype` and, when rank >= 0, that rank; `dims` names the
// dimensions in the message ("[N, H, W, C]"). Messages start with `who` ("image_file") and the
// file path. Returns the dataset's info for further checks.
H5DatasetInfo require_dataset(const H5File& file, const std::string& who, const std::string& name,
                              torch::ScalarType dtype, int64_t rank = -1,
                              const std::string& dims = "");

// Checks that every key is a root attribute of `file`.
void require_root_attrs(const H5File& file, const std::string& who,
                        const std::vector<std::string>& keys);

}  // namespace winnow::data
