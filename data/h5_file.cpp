// Implements H5File's files, groups and datasets (tensors, hyperslabs), and atomic file writes.
#include "data/h5_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <filesystem>
#include <limits>
#include <sstream>

#include "data/atomic_file.h"

namespace winnow::data {
namespace {

// Links and attributes kept in their object's header, never in "dense" storage (fractal heaps and
// v2 B-trees): the header is checksummed in the 1.10 format, and HDF5 1.10.8 frees garbage on
// some damaged dense-storage heaps. 65535 is the most either count allows.
void keep_links_and_attributes_compact(hid_t create_list, bool group) {
  if (group && H5Pset_link_phase_change(create_list, 65535, 65535) < 0)
    TORCH_CHECK(false, "h5_file: cannot keep links compact");
  if (H5Pset_attr_phase_change(create_list, 65535, 65535) < 0)
    TORCH_CHECK(false, "h5_file: cannot keep attributes compact");
}

std::vector<hsize_t> to_hsize(const std::vector<int64_t>& shape) {
  return std::vector<hsize_t>(shape.begin(), shape.end());
}

// Chunk shape: start from the whole dataset and halve the leading dimensions until one chunk is
// at most `target_bytes`, so chunks hold whole trailing rows whenever a row fits.
std::vector<hsize_t> chunk_shape(const std::vector<int64_t>& shape, size_t element_size,
                                 int64_t target_bytes) {
  std::vector<hsize_t> chunk = to_hsize(shape);
  auto bytes = [&] {
    hsize_t total = element_size;
    for (hsize_t d : chunk) total *= d;
    return total;
  };
  const hsize_t target = static_cast<hsize_t>(std::max<int64_t>(target_bytes, 1));
  for (size_t d = 0; d < chunk.size(); ++d) {
    while (bytes() > target && chunk[d] > 1) chunk[d] = (chunk[d] + 1) / 2;
  }
  return chunk;
}

std::string parent_of(const std::string& name) {
  const auto slash = name.find_last_of('/');
  if (slash == std::string::npos) return "";
  if (slash == 0) return "/";
  return name.substr(0, slash);
}

// What `name` resolves to (H5I_GROUP, H5I_DATASET, H5I_DATATYPE), or H5I_BADID if it does not
// resolve (e.g. a dangling soft link). Portable across HDF5 1.10 and 1.12+ (no H5O_info_t).
H5I_type_t object_kind(hid_t file, const std::string& name) {
  const hid_t id = H5Oopen(file, name.c_str(), H5P_DEFAULT);
  if (id < 0) {
    H5Eclear2(H5E_DEFAULT);
    return H5I_BADID;
  }
  const H5I_type_t kind = H5Iget_type(id);
  H5Oclose(id);
  return kind;
}

}  // namespace

H5Id::H5Id(H5Id&& other) noexcept : id_(other.id_), closer_(other.closer_) {
  other.id_ = H5I_INVALID_HID;
  other.closer_ = nullptr;
}

H5Id& H5Id::operator=(H5Id&& other) noexcept {
  if (this != &other) {
    reset();
    id_ = other.id_;
    closer_ = other.closer_;
    other.id_ = H5I_INVALID_HID;
    other.closer_ = nullptr;
  }
  return *this;
}

herr_t H5Id::reset() {
  herr_t status = 0;
  if (id_ >= 0 && closer_ != nullptr) status = closer_(id_);
  id_ = H5I_INVALID_HID;
  closer_ = nullptr;
  return status;
}

H5File::H5File(const std::string& path, Mode mode) : path_(path) {
  h5_silence_errors();
  // Closing the file closes every object still open in it, so a close that fails (disk full)
  // never leaves HDF5 holding the file until the process exits.
  H5Id access(check_id(H5Pcreate(H5P_FILE_ACCESS), "cannot create file access properties", "/"),
              H5Pclose);
  check(H5Pset_fclose_degree(access.get(), H5F_CLOSE_STRONG), "cannot set the close degree", "/");
  writable_ = mode != Mode::kRead;
  if (mode == Mode::kCreate) {
    // The HDF5 1.10 file format: every piece of metadata (superblock, object headers with their
    // attributes, chunk indexes) carries a checksum that HDF5 verifies before decoding it, so a
    // damaged file is refused with "incorrect metadata checksum" instead of being decoded (HDF5
    // 1.10.8 overflows buffers decoding some damaged object headers of the older format).
    check(H5Pset_libver_bounds(access.get(), H5F_LIBVER_V110, H5F_LIBVER_V110),
          "cannot choose the HDF5 1.10 file format", "/");
    H5Id creation(check_id(H5Pcreate(H5P_FILE_CREATE), "cannot create file properties", "/"),
                  H5Pclose);
    keep_links_and_attributes_compact(creation.get(), /*group=*/true);  // the root group
    file_ = H5Id(check_id(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, creation.get(), access.get()),
                          "cannot create file", "/"),
                 H5Fclose);
    return;
  }
  std::error_code ec;
  TORCH_CHECK(std::filesystem::exists(path, ec), "h5_file: file not found: '", path, "'");
  TORCH_CHECK(!std::filesystem::is_directory(path, ec), "h5_file: '", path,
              "' is a directory, expected an HDF5 file");
  if (mode == Mode::kRead) read_deadline_ = std::make_unique<ReadDeadline>(path);
  const htri_t is_hdf5 = H5Fis_hdf5(path.c_str());
  TORCH_CHECK(is_hdf5 > 0, "h5_file: '", path,
              "' is not an HDF5 file (no HDF5 signature found; expected a file written by "
              "winnow or h5py)");
  const unsigned flags = mode == Mode::kRead ? H5F_ACC_RDONLY : H5F_ACC_RDWR;
  file_ =
      H5Id(check_id(H5Fopen(path.c_str(), flags, access.get()), "cannot open file", "/"), H5Fclose);
}

H5File::~H5File() {
  if (!file_.valid()) return;
  h5_silence_errors();
  // A writable file given up while an error unwinds (a failed save), or one whose pending writes
  // fail now, is abandoned so that its close cannot fail (see abandon()).
  if (writable_ && (std::uncaught_exceptions() > 0 || H5Fflush(file_.get(), H5F_SCOPE_LOCAL) < 0))
    abandon();
  file_.reset();
  H5Eclear2(H5E_DEFAULT);
}

void H5File::abandon() noexcept {
  void* handle = nullptr;
  if (H5Fget_vfd_handle(file_.get(), H5P_DEFAULT, &handle) < 0 || handle == nullptr) return;
  const int fd = *static_cast<int*>(handle);  // the sec2 driver's handle: a file descriptor
  int sink = ::memfd_create("winnow-abandoned-h5", MFD_CLOEXEC);
  if (sink < 0) sink = ::open("/dev/shm", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (sink < 0) return;
  ::dup2(sink, fd);  // fd now names the sink; the file on disk gets no more writes
  ::close(sink);
}

void H5File::close() {
  if (!file_.valid()) return;
  h5_silence_errors();
  const herr_t flushed = H5Fflush(file_.get(), H5F_SCOPE_LOCAL);
  if (flushed < 0) {
    const std::string detail = h5_error_detail();
    abandon();
    file_.reset();
    H5Eclear2(H5E_DEFAULT);
    TORCH_CHECK(false, "h5_file: cannot write file '", path_, "'", detail.empty() ? "" : ": ",
                detail);
  }
  close_checked(file_, "cannot close file", "/");
}

void H5File::fail(const std::string& what, const std::string& object) const {
  const std::string detail = h5_error_detail();
  TORCH_CHECK(false, "h5_file: ", what, " (file '", path_, "', object '", object, "')",
              detail.empty() ? "" : ": ", detail);
}

hid_t H5File::check_id(hid_t id, const std::string& what, const std::string& object) const {
  if (id < 0) fail(what, object);
  return id;
}

void H5File::check(herr_t status, const std::string& what, const std::string& object) const {
  if (status < 0) fail(what, object);
}

void H5File::close_checked(H5Id& id, const std::string& what, const std::string& object) const {
  check(id.reset(), what, object);
}

bool H5File::exists(const std::string& name) const {
  h5_silence_errors();
  TORCH_CHECK(file_.valid(), "h5_file: file '", path_, "' is closed");
  if (name.empty() || name == "/") return true;
  // H5Lexists fails (rather than returning false) when a parent is missing, so walk the path
  // one component at a time and require every intermediate object to be a group.
  const bool absolute = name[0] == '/';
  std::string prefix = absolute ? "" : ".";
  size_t start = absolute ? 1 : 0;
  while (start < name.size()) {
    size_t end = name.find('/', start);
    if (end == std::string::npos) end = name.size();
    if (end > start) {
      prefix += "/" + name.substr(start, end - start);
      const htri_t found = H5Lexists(file_.get(), prefix.c_str(), H5P_DEFAULT);
      check(found, "cannot check whether an object exists", prefix);
      if (found == 0) return false;
      if (end < name.size()) {
        if (object_kind(file_.get(), prefix) != H5I_GROUP) return false;
      }
    }
    start = end + 1;
  }
  return true;
}

void H5File::create_group(const std::string& name) {
  if (exists(name)) return;
  ensure_parent_groups(name);  // one level at a time, each with the properties below
  H5Id gcpl(check_id(H5Pcreate(H5P_GROUP_CREATE), "cannot create group properties", name),
            H5Pclose);
  keep_links_and_attributes_compact(gcpl.get(), /*group=*/true);
  H5Id group(check_id(H5Gcreate2(file_.get(), name.c_str(), H5P_DEFAULT, gcpl.get(), H5P_DEFAULT),
                      "cannot create group", name),
             H5Gclose);
  close_checked(group, "cannot write group", name);
}

void H5File::ensure_parent_groups(const std::string& name) {
  const std::string parent = parent_of(name);
  if (!parent.empty() && parent != "/") create_group(parent);
}

std::vector<std::string> H5File::children(const std::string& group) const {
  h5_silence_errors();
  H5Id id(check_id(H5Gopen2(file_.get(), group.c_str(), H5P_DEFAULT), "cannot open group", group),
          H5Gclose);
  H5G_info_t info;
  check(H5Gget_info(id.get(), &info), "cannot query group", group);
  std::vector<std::string> names;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    auto name_at = [&](char* buffer, size_t size) {
      const ssize_t length = H5Lget_name_by_idx(id.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i,
                                                buffer, size, H5P_DEFAULT);
      if (length < 0) fail("cannot read the name of child " + std::to_string(i), group);
      return static_cast<size_t>(length);
    };
    std::string child(name_at(nullptr, 0), '\0');
    name_at(child.data(), child.size() + 1);
    names.push_back(std::move(child));
  }
  return names;
}

H5Id H5File::open_object(const std::string& name) const {
  h5_silence_errors();
  TORCH_CHECK(file_.valid(), "h5_file: file '", path_, "' is closed");
  TORCH_CHECK(exists(name), "h5_file: object '", name, "' not found in file '", path_, "'");
  return H5Id(check_id(H5Oopen(file_.get(), name.c_str(), H5P_DEFAULT), "cannot open object", name),
              H5Oclose);
}

H5Id H5File::open_dataset(const std::string& name) const {
  h5_silence_errors();
  TORCH_CHECK(file_.valid(), "h5_file: file '", path_, "' is closed");
  TORCH_CHECK(exists(name), "h5_file: dataset '", name, "' not found in file '", path_, "'");
  TORCH_CHECK(object_kind(file_.get(), name) == H5I_DATASET, "h5_file: object '", name,
              "' in file '", path_,
              "' is not a dataset (expected a dataset, found a group or named type)");
  return H5Id(
      check_id(H5Dopen2(file_.get(), name.c_str(), H5P_DEFAULT), "cannot open dataset", name),
      H5Dclose);
}

H5DatasetInfo H5File::dataset_info(const std::string& name) const {
  H5Id dataset = open_dataset(name);
  H5Id type(check_id(H5Dget_type(dataset.get()), "cannot read datatype", name), H5Tclose);
  H5Id space(check_id(H5Dget_space(dataset.get()), "cannot read dataspace", name), H5Sclose);
  H5DatasetInfo info;
  info.dtype = h5_dtype_of(type.get(), &info.type_name);
  const int rank = H5Sget_simple_extent_ndims(space.get());
  check(rank, "cannot read dataspace rank", name);
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  if (rank > 0) {
    check(H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr), "cannot read dims", name);
  }
  info.shape.assign(dims.begin(), dims.end());
  H5Id create_list(
      check_id(H5Dget_create_plist(dataset.get()), "cannot read creation properties", name),
      H5Pclose);
  if (rank > 0 && H5Pget_layout(create_list.get()) == H5D_CHUNKED) {
    std::vector<hsize_t> chunk(static_cast<size_t>(rank));
    check(H5Pget_chunk(create_list.get(), rank, chunk.data()), "cannot read chunk shape", name);
    info.chunk.assign(chunk.begin(), chunk.end());
  }
  return info;
}

namespace {

// a * b, or `saturated` when it does not fit (a damaged shape can claim 2^60 rows).
int64_t product_or(int64_t a, int64_t b, int64_t saturated) {
  int64_t out = 0;
  return __builtin_mul_overflow(a, b, &out) ? saturated : out;
}

}  // namespace

void H5File::check_fully_stored(const std::string& name) const {
  const H5DatasetInfo info = dataset_info(name);
  if (!info.dtype.has_value()) return;  // not readable anyway; read_tensor says why
  constexpr int64_t kHuge = std::numeric_limits<int64_t>::max();
  H5Id dataset = open_dataset(name);
  if (!info.chunk.empty()) {
    int64_t needed = 1;
    for (size_t d = 0; d < info.shape.size(); ++d)
      needed = product_or(needed, (info.shape[d] + info.chunk[d] - 1) / info.chunk[d], kHuge);
    H5Id space(check_id(H5Dget_space(dataset.get()), "cannot read dataspace", name), H5Sclose);
    hsize_t stored = 0;
    check(H5Dget_num_chunks(dataset.get(), space.get(), &stored), "cannot count stored chunks",
          name);
    TORCH_CHECK(static_cast<int64_t>(stored) == needed, "h5_file: dataset '", name, "' in '", path_,
                "': the file stores ", stored, " of the ", needed, " chunks its shape ",
                h5_shape_string(info.shape),
                " needs; the file is damaged or was not written completely");
    return;
  }
  int64_t bytes = static_cast<int64_t>(c10::elementSize(*info.dtype));
  for (int64_t d : info.shape) bytes = product_or(bytes, d, kHuge);
  const auto stored = static_cast<int64_t>(H5Dget_storage_size(dataset.get()));
  TORCH_CHECK(stored >= bytes, "h5_file: dataset '", name, "' in '", path_, "': its shape ",
              h5_shape_string(info.shape), " of ", info.type_name, " takes ", bytes,
              " bytes but the file stores ", stored,
              "; the file is damaged or was not written completely");
}

void H5File::create_dataset(const std::string& name, torch::ScalarType dtype,
                            const std::vector<int64_t>& shape, const H5WriteOptions& options) {
  h5_silence_errors();
  TORCH_CHECK(file_.valid(), "h5_file: file '", path_, "' is closed");
  TORCH_CHECK(h5_supports_dtype(dtype), "h5_file: cannot write dataset '", name, "' to '", path_,
              "': expected dtype uint8, int8, int16, int32, int64, float32 or float64, got ",
              h5_dtype_name(dtype));
  TORCH_CHECK(options.compression_level >= 0 && options.compression_level <= 9,
              "h5_file: compression level for '", name, "' must be in [0, 9], got ",
              options.compression_level);
  for (int64_t d : shape) {
    TORCH_CHECK(d >= 0, "h5_file: dataset '", name, "' has a negative dimension in shape ",
                h5_shape_string(shape));
  }
  TORCH_CHECK(!exists(name), "h5_file: dataset '", name, "' already exists in '", path_, "'");
  ensure_parent_groups(name);

  const std::vector<hsize_t> dims = to_hsize(shape);
  H5Id space(check_id(shape.empty()
                          ? H5Screate(H5S_SCALAR)
                          : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
                      "cannot create dataspace", name),
             H5Sclose);
  H5Id dcpl(check_id(H5Pcreate(H5P_DATASET_CREATE), "cannot create dataset properties", name),
            H5Pclose);
  keep_links_and_attributes_compact(dcpl.get(), /*group=*/false);
  const bool any_empty = std::any_of(shape.begin(), shape.end(), [](int64_t d) { return d == 0; });
  // Chunking needs a non-empty, non-scalar extent; scalars and empty datasets stay contiguous.
  if (!shape.empty() && !any_empty) {
    const auto chunk = chunk_shape(shape, c10::elementSize(dtype), options.chunk_bytes);
    check(H5Pset_chunk(dcpl.get(), static_cast<int>(chunk.size()), chunk.data()),
          "cannot set chunk shape", name);
    if (options.compression_level > 0) {
      TORCH_CHECK(H5Zfilter_avail(H5Z_FILTER_DEFLATE) > 0,
                  "h5_file: this HDF5 library has no deflate (gzip) filter; cannot write '", name,
                  "' compressed (use compression_level = 0)");
      if (options.shuffle) check(H5Pset_shuffle(dcpl.get()), "cannot set shuffle filter", name);
      check(H5Pset_deflate(dcpl.get(), static_cast<unsigned>(options.compression_level)),
            "cannot set deflate filter", name);
    }
  }
  H5Id dataset(check_id(H5Dcreate2(file_.get(), name.c_str(), h5_native_type(dtype), space.get(),
                                   H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
                        "cannot create dataset", name),
               H5Dclose);
  close_checked(dataset, "cannot write dataset", name);
}

void H5File::write_tensor(const std::string& name, const torch::Tensor& tensor,
                          const H5WriteOptions& options) {
  TORCH_CHECK(tensor.defined(), "h5_file: cannot write undefined tensor as '", name, "' to '",
              path_, "'");
  const torch::Tensor data = tensor.to(torch::kCPU).contiguous();
  create_dataset(name, data.scalar_type(), data.sizes().vec(), options);
  if (data.numel() == 0) return;
  H5Id dataset = open_dataset(name);
  check(H5Dwrite(dataset.get(), h5_native_type(data.scalar_type()), H5S_ALL, H5S_ALL, H5P_DEFAULT,
                 data.data_ptr()),
        "cannot write dataset", name);
  // Closing writes the chunks HDF5 still caches: its failure (disk full) is a write failure.
  close_checked(dataset, "cannot write dataset", name);
}

void H5File::write_rows(const std::string& name, int64_t first_row, const torch::Tensor& rows) {
  TORCH_CHECK(rows.defined(), "h5_file: cannot write undefined rows to '", name, "'");
  const H5DatasetInfo info = dataset_info(name);
  const torch::Tensor data = rows.to(torch::kCPU).contiguous();
  TORCH_CHECK(info.dtype == data.scalar_type(), "h5_file: dataset '", name, "' in '", path_,
              "' has dtype ", info.type_name, ", got rows of dtype ",
              h5_dtype_name(data.scalar_type()));
  TORCH_CHECK(!info.shape.empty() && data.dim() == static_cast<int64_t>(info.shape.size()),
              "h5_file: dataset '", name, "' in '", path_, "' has shape ",
              h5_shape_string(info.shape), ", got rows of shape ",
              h5_shape_string(data.sizes().vec()));
  for (size_t d = 1; d < info.shape.size(); ++d) {
    TORCH_CHECK(data.size(static_cast<int64_t>(d)) == info.shape[d], "h5_file: dataset '", name,
                "' in '", path_, "' has shape ", h5_shape_string(info.shape),
                ", got rows of shape ", h5_shape_string(data.sizes().vec()));
  }
  TORCH_CHECK(first_row >= 0 && first_row + data.size(0) <= info.shape[0], "h5_file: rows [",
              first_row, ", ", first_row + data.size(0), ") are outside dataset '", name, "' in '",
              path_, "' with ", info.shape[0], " rows");
  if (data.numel() == 0) return;
  H5Id dataset = open_dataset(name);
  H5Id file_space(check_id(H5Dget_space(dataset.get()), "cannot read dataspace", name), H5Sclose);
  std::vector<hsize_t> start(info.shape.size(), 0);
  std::vector<hsize_t> count = to_hsize(data.sizes().vec());
  start[0] = static_cast<hsize_t>(first_row);
  check(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(),
                            nullptr),
        "cannot select rows", name);
  H5Id memory_space(
      check_id(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr),
               "cannot create memory dataspace", name),
      H5Sclose);
  check(H5Dwrite(dataset.get(), h5_native_type(data.scalar_type()), memory_space.get(),
                 file_space.get(), H5P_DEFAULT, data.data_ptr()),
        "cannot write rows", name);
  close_checked(dataset, "cannot write rows", name);
}

torch::Tensor H5File::read_tensor(const std::string& name) const {
  const H5DatasetInfo info = dataset_info(name);
  TORCH_CHECK(info.dtype.has_value(), "h5_file: dataset '", name, "' in '", path_,
              "' has element type ", info.type_name,
              "; expected uint8, int8, int16, int32, int64, float32 or float64");
  check_fully_stored(name);
  torch::Tensor out = torch::empty(info.shape, torch::TensorOptions().dtype(*info.dtype));
  if (out.numel() == 0) return out;
  H5Id dataset = open_dataset(name);
  check(H5Dread(dataset.get(), h5_native_type(*info.dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT,
                out.data_ptr()),
        "cannot read dataset", name);
  return out;
}

torch::Tensor H5File::read_tensor(const std::string& name, torch::ScalarType expected_dtype,
                                  const std::vector<int64_t>& expected_shape) const {
  const H5DatasetInfo info = dataset_info(name);
  TORCH_CHECK(info.dtype == expected_dtype, "h5_file: dataset '", name, "' in '", path_,
              "': expected dtype ", h5_dtype_name(expected_dtype), ", got ", info.type_name);
  if (!expected_shape.empty()) {
    bool matches = expected_shape.size() == info.shape.size();
    for (size_t d = 0; matches && d < info.shape.size(); ++d) {
      matches = expected_shape[d] < 0 || expected_shape[d] == info.shape[d];
    }
    TORCH_CHECK(matches, "h5_file: dataset '", name, "' in '", path_, "': expected shape ",
                h5_shape_string(expected_shape), " (-1 = any), got ", h5_shape_string(info.shape));
  }
  return read_tensor(name);
}

torch::Tensor H5File::read_rows(const std::string& name, int64_t begin, int64_t end) const {
  const H5DatasetInfo info = dataset_info(name);
  TORCH_CHECK(info.dtype.has_value(), "h5_file: dataset '", name, "' in '", path_,
              "' has element type ", info.type_name,
              "; expected uint8, int8, int16, int32, int64, float32 or float64");
  TORCH_CHECK(!info.shape.empty(), "h5_file: dataset '", name, "' in '", path_,
              "' is a scalar; expected at least one dimension to read rows from");
  TORCH_CHECK(0 <= begin && begin <= end && end <= info.shape[0], "h5_file: rows [", begin, ", ",
              end, ") are outside dataset '", name, "' in '", path_, "' with ", info.shape[0],
              " rows");
  std::vector<int64_t> shape = info.shape;
  shape[0] = end - begin;
  torch::Tensor out = torch::empty(shape, torch::TensorOptions().dtype(*info.dtype));
  if (out.numel() == 0) return out;
  H5Id dataset = open_dataset(name);
  H5Id file_space(check_id(H5Dget_space(dataset.get()), "cannot read dataspace", name), H5Sclose);
  std::vector<hsize_t> start(shape.size(), 0);
  std::vector<hsize_t> count = to_hsize(shape);
  start[0] = static_cast<hsize_t>(begin);
  check(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(),
                            nullptr),
        "cannot select rows", name);
  H5Id memory_space(
      check_id(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr),
               "cannot create memory dataspace", name),
      H5Sclose);
  check(H5Dread(dataset.get(), h5_native_type(*info.dtype), memory_space.get(), file_space.get(),
                H5P_DEFAULT, out.data_ptr()),
        "cannot read rows", name);
  return out;
}

// --- atomic writes -----------------------------------------------------------------------------

void h5_write_atomically(const std::string& path, const std::function<void(H5File&)>& fill) {
  AtomicFile atomic(path);  // removes the temporary file on any failure
  {
    H5File file(atomic.temporary_path(), H5File::Mode::kCreate);
    fill(file);
    file.close();
  }
  atomic.commit();  // HDF5 does not fsync; commit does, before the rename
}

}  // namespace winnow::data
