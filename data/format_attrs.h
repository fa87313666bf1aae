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

}  // namespace winnow::data
