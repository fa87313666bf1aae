// Implements the attribute half of H5File: typed, checked reads and writes of HDF5 attributes.
#include <algorithm>
#include <cstring>

#include "data/h5_file.h"

namespace winnow::data {

bool H5File::has_attr(const std::string& object, const std::string& key) const {
  H5Id id = open_object(object);
  const htri_t found = H5Aexists(id.get(), key.c_str());
  check(found, "cannot check attribute '" + key + "'", object);
  return found > 0;
}

H5Id H5File::open_attr(const std::string& object, const std::string& key) const {
  TORCH_CHECK(has_attr(object, key), "h5_file: attribute '", key, "' not found on '", object,
              "' in file '", path_, "'");
  H5Id id = open_object(object);
  return H5Id(check_id(H5Aopen(id.get(), key.c_str(), H5P_DEFAULT),
                       "cannot open attribute '" + key + "'", object),
              H5Aclose);
}

H5Id H5File::create_attr(const std::string& object, const std::string& key, hid_t type,
                         hid_t space) {
  H5Id id = open_object(object);
  const htri_t found = H5Aexists(id.get(), key.c_str());
  check(found, "cannot check attribute '" + key + "'", object);
  if (found > 0)
    check(H5Adelete(id.get(), key.c_str()), "cannot replace attribute '" + key + "'", object);
  return H5Id(check_id(H5Acreate2(id.get(), key.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT),
                       "cannot create attribute '" + key + "'", object),
              H5Aclose);
}

namespace {

// Strings are written fixed-length (UTF-8, NUL-padded, as long as the longest value; at least 1
// byte): stored inside the checksummed attribute message. Variable-length strings live in HDF5's
// global heap, which has no checksum, and HDF5 1.10.8 loops forever or overflows a buffer on
// some damaged global heaps.
size_t fixed_string_size(const std::vector<std::string>& values) {
  size_t size = 1;
  for (const auto& value : values) size = std::max(size, value.size());
  return size;
}

}  // namespace

void H5File::set_attr_string(const std::string& object, const std::string& key,
                             const std::string& value) {
  h5_silence_errors();
  const size_t size = fixed_string_size({value});
  H5Id type(check_id(H5Tcopy(H5T_C_S1), "cannot create string type", object), H5Tclose);
  check(H5Tset_size(type.get(), size), "cannot create string type", object);
  check(H5Tset_strpad(type.get(), H5T_STR_NULLPAD), "cannot create string type", object);
  check(H5Tset_cset(type.get(), H5T_CSET_UTF8), "cannot create string type", object);
  H5Id space(check_id(H5Screate(H5S_SCALAR), "cannot create dataspace", object), H5Sclose);
  H5Id attr = create_attr(object, key, type.get(), space.get());
  std::vector<char> data(size, '\0');
  std::copy(value.begin(), value.end(), data.begin());
  check(H5Awrite(attr.get(), type.get(), data.data()), "cannot write attribute '" + key + "'",
        object);
  close_checked(attr, "cannot write attribute '" + key + "'", object);
}

void H5File::set_attr_strings(const std::string& object, const std::string& key,
                              const std::vector<std::string>& values) {
  h5_silence_errors();
  const size_t size = fixed_string_size(values);
  H5Id type(check_id(H5Tcopy(H5T_C_S1), "cannot create string type", object), H5Tclose);
  check(H5Tset_size(type.get(), size), "cannot create string type", object);
  check(H5Tset_strpad(type.get(), H5T_STR_NULLPAD), "cannot create string type", object);
  check(H5Tset_cset(type.get(), H5T_CSET_UTF8), "cannot create string type", object);
  const hsize_t count = values.size();
  H5Id space(check_id(H5Screate_simple(1, &count, nullptr), "cannot create dataspace", object),
             H5Sclose);
  H5Id attr = create_attr(object, key, type.get(), space.get());
  std::vector<char> data(size * values.size(), '\0');  // [count, size]
  for (size_t i = 0; i < values.size(); ++i)
    std::copy(values[i].begin(), values[i].end(), data.begin() + static_cast<long>(i * size));
  if (!values.empty()) {
    check(H5Awrite(attr.get(), type.get(), data.data()), "cannot write attribute '" + key + "'",
          object);
  }
  close_checked(attr, "cannot write attribute '" + key + "'", object);
}

void H5File::set_attr_int(const std::string& object, const std::string& key, int64_t value) {
  set_attr_tensor(object, key, torch::scalar_tensor(value, torch::kInt64));
}

void H5File::set_attr_double(const std::string& object, const std::string& key, double value) {
  set_attr_tensor(object, key, torch::scalar_tensor(value, torch::kFloat64));
}

void H5File::set_attr_tensor(const std::string& object, const std::string& key,
                             const torch::Tensor& value) {
  h5_silence_errors();
  TORCH_CHECK(value.defined() && h5_supports_dtype(value.scalar_type()), "h5_file: attribute '",
              key, "' on '", object, "' in '", path_,
              "': expected a tensor of dtype uint8, int8, int16, int32, int64, float32 or "
              "float64, got ",
              value.defined() ? h5_dtype_name(value.scalar_type()) : "an undefined tensor");
  const torch::Tensor data = value.to(torch::kCPU).contiguous();
  const std::vector<hsize_t> dims(data.sizes().begin(), data.sizes().end());
  H5Id space(
      check_id(dims.empty() ? H5Screate(H5S_SCALAR)
                            : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
               "cannot create dataspace", object),
      H5Sclose);
  const hid_t type = h5_native_type(data.scalar_type());
  H5Id attr = create_attr(object, key, type, space.get());
  if (data.numel() > 0) {
    check(H5Awrite(attr.get(), type, data.data_ptr()), "cannot write attribute '" + key + "'",
          object);
  }
  close_checked(attr, "cannot write attribute '" + key + "'", object);
}

std::vector<std::string> H5File::attr_strings(const std::string& object,
                                              const std::string& key) const {
  H5Id attr = open_attr(object, key);
  H5Id type(
      check_id(H5Aget_type(attr.get()), "cannot read type of attribute '" + key + "'", object),
      H5Tclose);
  std::string type_name;
  h5_dtype_of(type.get(), &type_name);
  TORCH_CHECK(H5Tget_class(type.get()) == H5T_STRING, "h5_file: attribute '", key, "' on '", object,
              "' in '", path_, "': expected a string, got ", type_name);
  H5Id space(check_id(H5Aget_space(attr.get()), "cannot read attribute dataspace", object),
             H5Sclose);
  const hssize_t count = H5Sget_simple_extent_npoints(space.get());
  check(static_cast<herr_t>(count < 0 ? -1 : 0), "cannot read attribute size", object);
  std::vector<std::string> values;
  if (count == 0) return values;
  const htri_t variable = H5Tis_variable_str(type.get());
  check(variable, "cannot inspect string type of attribute '" + key + "'", object);
  H5Id memory_type(check_id(H5Tcopy(H5T_C_S1), "cannot create string type", object), H5Tclose);
  check(H5Tset_cset(memory_type.get(), H5Tget_cset(type.get())), "cannot set charset", object);
  if (variable > 0) {
    check(H5Tset_size(memory_type.get(), H5T_VARIABLE), "cannot create string type", object);
    std::vector<char*> data(static_cast<size_t>(count), nullptr);
    check(H5Aread(attr.get(), memory_type.get(), data.data()),
          "cannot read attribute '" + key + "'", object);
    for (char* s : data) {
      values.emplace_back(s == nullptr ? "" : s);
      H5free_memory(s);
    }
  } else {
    // Read the fixed-length bytes as stored (the file type as memory type: no conversion, so
    // no byte is lost to a terminator), then strip the NUL or space padding.
    const size_t size = H5Tget_size(type.get());
    const bool space_padded = H5Tget_strpad(type.get()) == H5T_STR_SPACEPAD;
    std::vector<char> data(size * static_cast<size_t>(count), '\0');
    check(H5Aread(attr.get(), type.get(), data.data()), "cannot read attribute '" + key + "'",
          object);
    for (hssize_t i = 0; i < count; ++i) {
      const char* begin = data.data() + static_cast<size_t>(i) * size;
      std::string value(begin, strnlen(begin, size));
      if (space_padded) value.erase(value.find_last_not_of(' ') + 1);
      values.push_back(std::move(value));
    }
  }
  return values;
}

std::string H5File::attr_string(const std::string& object, const std::string& key) const {
  const auto values = attr_strings(object, key);
  TORCH_CHECK(values.size() == 1, "h5_file: attribute '", key, "' on '", object, "' in '", path_,
              "': expected one string, got ", values.size());
  return values[0];
}

std::vector<double> H5File::attr_doubles(const std::string& object, const std::string& key) const {
  H5Id attr = open_attr(object, key);
  H5Id type(
      check_id(H5Aget_type(attr.get()), "cannot read type of attribute '" + key + "'", object),
      H5Tclose);
  std::string type_name;
  h5_dtype_of(type.get(), &type_name);
  const H5T_class_t cls = H5Tget_class(type.get());
  TORCH_CHECK(cls == H5T_INTEGER || cls == H5T_FLOAT, "h5_file: attribute '", key, "' on '", object,
              "' in '", path_, "': expected a number, got ", type_name);
  H5Id space(check_id(H5Aget_space(attr.get()), "cannot read attribute dataspace", object),
             H5Sclose);
  const hssize_t count = H5Sget_simple_extent_npoints(space.get());
  check(static_cast<herr_t>(count < 0 ? -1 : 0), "cannot read attribute size", object);
  std::vector<double> values(static_cast<size_t>(count));
  if (count > 0) {
    check(H5Aread(attr.get(), H5T_NATIVE_DOUBLE, values.data()),
          "cannot read attribute '" + key + "'", object);
  }
  return values;
}

double H5File::attr_double(const std::string& object, const std::string& key) const {
  const auto values = attr_doubles(object, key);
  TORCH_CHECK(values.size() == 1, "h5_file: attribute '", key, "' on '", object, "' in '", path_,
              "': expected one number, got ", values.size());
  return values[0];
}

int64_t H5File::attr_int(const std::string& object, const std::string& key) const {
  H5Id attr = open_attr(object, key);
  H5Id type(
      check_id(H5Aget_type(attr.get()), "cannot read type of attribute '" + key + "'", object),
      H5Tclose);
  std::string type_name;
  h5_dtype_of(type.get(), &type_name);
  TORCH_CHECK(H5Tget_class(type.get()) == H5T_INTEGER, "h5_file: attribute '", key, "' on '",
              object, "' in '", path_, "': expected an integer, got ", type_name);
  H5Id space(check_id(H5Aget_space(attr.get()), "cannot read attribute dataspace", object),
             H5Sclose);
  const hssize_t count = H5Sget_simple_extent_npoints(space.get());
  TORCH_CHECK(count == 1, "h5_file: attribute '", key, "' on '", object, "' in '", path_,
              "': expected one integer, got ", count);
  int64_t value = 0;
  check(H5Aread(attr.get(), H5T_NATIVE_INT64, &value), "cannot read attribute '" + key + "'",
        object);
  return value;
}

}  // namespace winnow::data
