// The mapping between torch dtypes and HDF5 element types, and the error helpers H5File uses.
#pragma once

#include <hdf5.h>
#include <torch/torch.h>

#include <optional>
#include <string>
#include <vector>

namespace winnow::data {

// The element types H5File writes and reads: uint8, int8, int16, int32, int64, float32, float64.
bool h5_supports_dtype(torch::ScalarType dtype);
// "uint8", "int32", "float32", ... (the names used in error messages and in docs/data-format.md).
std::string h5_dtype_name(torch::ScalarType dtype);
// The H5T_NATIVE_* memory type of a supported dtype (library-owned: never close it), or
// H5I_INVALID_HID.
hid_t h5_native_type(torch::ScalarType dtype);
// The torch dtype a file datatype is read as (empty if unsupported); `name` gets its description
// ("uint8", "float16", "string", "compound", ...).
std::optional<torch::ScalarType> h5_dtype_of(hid_t type, std::string* name);

// Turns off HDF5's printing of its error stack to stderr for the calling thread (error stacks
// are per thread); H5File calls it on entry so HDF5's messages end up in exceptions instead.
// The first call also turns off HDF5's exit handler (it crashes on a file whose close failed).
void h5_silence_errors();
// The innermost (most specific) message on the calling thread's HDF5 error stack, then clears it.
std::string h5_error_detail();
// "[2, 3, 5]".
std::string h5_shape_string(const std::vector<int64_t>& shape);

}  // namespace winnow::data
