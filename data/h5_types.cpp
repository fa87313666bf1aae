// Implements the torch <-> HDF5 element type mapping and the error helpers shared by H5File.
#include "data/h5_types.h"

#include <mutex>
#include <sstream>

namespace winnow::data {

// HDF5 prints its error stack to stderr by default; we turn that off (once per thread, since
// error stacks are per thread) and put HDF5's message into our exception instead.
void h5_silence_errors() {
  // Before HDF5 initialises (the first H5File does this first): no exit handler. HDF5's
  // H5_term_library closes files still in its ID table at exit, and a file whose close failed
  // (a full disk, a file-size limit) stays there half-closed: the handler crashes on it
  // (SIGSEGV in H5F__close_cb). Every file winnow opens is closed by H5File before exit.
  static std::once_flag no_exit_handler;
  std::call_once(no_exit_handler, [] { H5dont_atexit(); });
  thread_local bool silenced = false;
  if (!silenced) {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    silenced = true;
  }
}

namespace {

herr_t collect_error(unsigned n, const H5E_error2_t* err, void* client) {
  auto* out = static_cast<std::string*>(client);
  if (n == 0 && err->desc != nullptr) {  // innermost frame: the most specific reason
    *out = err->desc;
  }
  return 0;
}

// The system's reason inside a message of HDF5's file drivers ("file write failed: time = ...,
// errno = 28, error message = 'No space left on device', buf = ...") becomes "file write failed:
// No space left on device"; other messages are kept as they are.
std::string shorten_driver_message(const std::string& message) {
  const std::string marker = "error message = '";
  const size_t at = message.find(marker);
  if (at == std::string::npos) return message;
  const size_t begin = at + marker.size();
  const size_t end = message.find('\'', begin);
  if (end == std::string::npos) return message;
  const size_t colon = message.find(':');
  const std::string what = colon < at ? message.substr(0, colon) : "I/O error";
  return what + ": " + message.substr(begin, end - begin);
}

}  // namespace

std::string h5_error_detail() {
  std::string detail;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, collect_error, &detail);
  H5Eclear2(H5E_DEFAULT);
  return shorten_driver_message(detail);
}

hid_t h5_native_type(torch::ScalarType dtype) {
  switch (dtype) {
    case torch::kUInt8:
      return H5T_NATIVE_UINT8;
    case torch::kInt8:
      return H5T_NATIVE_INT8;
    case torch::kInt16:
      return H5T_NATIVE_INT16;
    case torch::kInt32:
      return H5T_NATIVE_INT32;
    case torch::kInt64:
      return H5T_NATIVE_INT64;
    case torch::kFloat32:
      return H5T_NATIVE_FLOAT;
    case torch::kFloat64:
      return H5T_NATIVE_DOUBLE;
    default:
      return H5I_INVALID_HID;
  }
}

// Maps a file datatype to the torch dtype winnow reads it as (empty if unsupported).
std::optional<torch::ScalarType> h5_dtype_of(hid_t type, std::string* name) {
  const H5T_class_t cls = H5Tget_class(type);
  const size_t size = H5Tget_size(type);
  if (cls == H5T_INTEGER) {
    const bool is_signed = H5Tget_sign(type) == H5T_SGN_2;
    *name = std::string(is_signed ? "int" : "uint") + std::to_string(size * 8);
    if (!is_signed && size == 1) return torch::kUInt8;
    if (is_signed && size == 1) return torch::kInt8;
    if (is_signed && size == 2) return torch::kInt16;
    if (is_signed && size == 4) return torch::kInt32;
    if (is_signed && size == 8) return torch::kInt64;
    return std::nullopt;
  }
  if (cls == H5T_FLOAT) {
    *name = "float" + std::to_string(size * 8);
    if (size == 4) return torch::kFloat32;
    if (size == 8) return torch::kFloat64;
    return std::nullopt;
  }
  switch (cls) {
    case H5T_STRING:
      *name = "string";
      break;
    case H5T_COMPOUND:
      *name = "compound";
      break;
    case H5T_ENUM:
      *name = "enum";
      break;
    case H5T_ARRAY:
      *name = "array";
      break;
    case H5T_VLEN:
      *name = "vlen";
      break;
    default:
      *name = "HDF5 type class " + std::to_string(static_cast<int>(cls));
      break;
  }
  return std::nullopt;
}

std::string h5_shape_string(const std::vector<int64_t>& shape) {
  std::ostringstream out;
  out << '[';
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << ']';
  return out.str();
}

bool h5_supports_dtype(torch::ScalarType dtype) {
  return h5_native_type(dtype) >= 0;
}

std::string h5_dtype_name(torch::ScalarType dtype) {
  switch (dtype) {
    case torch::kUInt8:
      return "uint8";
    case torch::kInt8:
      return "int8";
    case torch::kInt16:
      return "int16";
    case torch::kInt32:
      return "int32";
    case torch::kInt64:
      return "int64";
    case torch::kFloat32:
      return "float32";
    case torch::kFloat64:
      return "float64";
    default:
      return std::string(c10::toString(dtype));
  }
}

}  // namespace winnow::data
