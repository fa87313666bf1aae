// H5File: a small RAII layer over the HDF5 C API — files, groups, datasets and attributes, with
// every HDF5 call checked and turned into an exception that names the file and the object.
#pragma once

#include <hdf5.h>
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "data/h5_types.h"
#include "data/read_deadline.h"

namespace winnow::data {

// One owned HDF5 identifier, closed by the matching H5?close when it goes out of scope.
class H5Id {
 public:
  using Closer = herr_t (*)(hid_t);

  H5Id() = default;
  H5Id(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  ~H5Id() { reset(); }
  H5Id(H5Id&& other) noexcept;
  H5Id& operator=(H5Id&& other) noexcept;
  H5Id(const H5Id&) = delete;
  H5Id& operator=(const H5Id&) = delete;

  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  // Closes the identifier now; returns HDF5's status (negative on failure, 0 when nothing held).
  herr_t reset();

 private:
  hid_t id_ = H5I_INVALID_HID;
  Closer closer_ = nullptr;
};

// How datasets are laid out on disk. Chunks hold whole trailing rows where they fit, so reading a
// row range (a hyperslab) decompresses only the chunks it touches.
struct H5WriteOptions {
  int compression_level = 4;      // deflate level 0..9; 0 stores the data uncompressed
  bool shuffle = true;            // byte-shuffle filter before deflate (helps ints and floats)
  int64_t chunk_bytes = 1 << 20;  // target chunk size in bytes
};

// What a dataset holds, before reading it.
struct H5DatasetInfo {
  std::string type_name;                   // "uint8", "int64", "float32", ... or a description
  std::optional<torch::ScalarType> dtype;  // empty for element types winnow does not read
  std::vector<int64_t> shape;              // empty for a scalar dataset
  std::vector<int64_t> chunk;              // chunk shape; empty when not stored in chunks
};

// An open HDF5 file. Object names are absolute or relative paths inside the file ("/images",
// "model/blocks/0/weight"); "/" names the root group (for file-level attributes).
// Every failure throws c10::Error naming the file path, the object and what was expected.
// Thread safety: distinct H5File objects may be used from distinct threads (the Debian HDF5 build
// is thread-safe); one H5File must not be used by two threads at once.
class H5File {
 public:
  enum class Mode {
    kRead,       // existing file, read-only
    kReadWrite,  // existing file, read and write
    kCreate,     // create, or truncate an existing file
  };

  H5File(const std::string& path, Mode mode);
  ~H5File();
  H5File(H5File&&) noexcept = default;
  H5File& operator=(H5File&&) noexcept = default;

  const std::string& path() const { return path_; }
  // Flushes and closes; throws if HDF5 reports a failure (the file is closed even then). The
  // destructor closes silently; a writable file destroyed while an exception unwinds, or whose
  // last writes fail, is abandoned first (abandon()).
  void close();

  // --- groups -------------------------------------------------------------------------------
  // True if `name` exists (every intermediate group is checked; no error for missing parents).
  bool exists(const std::string& name) const;
  // Creates the group and any missing parents; no-op if it exists.
  void create_group(const std::string& name);
  // Names (not paths) of the direct children of a group, in HDF5's name order.
  std::vector<std::string> children(const std::string& group = "/") const;

  // --- datasets -----------------------------------------------------------------------------
  H5DatasetInfo dataset_info(const std::string& name) const;

  // Writes a whole tensor (any rank, including 0-d) as a new dataset; parent groups are created.
  // The tensor may live anywhere and have any strides; it is copied to contiguous CPU memory.
  void write_tensor(const std::string& name, const torch::Tensor& tensor,
                    const H5WriteOptions& options = {});
  // Creates an empty (zero-filled) dataset to be filled by write_rows (e.g. streaming writes).
  void create_dataset(const std::string& name, torch::ScalarType dtype,
                      const std::vector<int64_t>& shape, const H5WriteOptions& options = {});
  // Writes rows [first_row, first_row + rows.size(0)) along dimension 0; `rows` must have the
  // dataset's dtype and trailing dimensions.
  void write_rows(const std::string& name, int64_t first_row, const torch::Tensor& rows);

  // Throws unless the file stores all of dataset `name`: every chunk its shape needs, or (not
  // chunked) as many bytes as its shape and dtype take. A damaged shape would otherwise make a
  // reader allocate, and HDF5 walk or fill, far more than the file holds. Costs one pass over the
  // dataset's chunk index.
  void check_fully_stored(const std::string& name) const;

  // Reads a whole dataset as a CPU tensor of the dataset's own dtype (check_fully_stored first).
  torch::Tensor read_tensor(const std::string& name) const;
  // Reads a whole dataset, checking its dtype (and its shape when `expected_shape` is given;
  // -1 in it matches any size).
  torch::Tensor read_tensor(const std::string& name, torch::ScalarType expected_dtype,
                            const std::vector<int64_t>& expected_shape = {}) const;
  // Reads rows [begin, end) along dimension 0 (a hyperslab) as a CPU tensor. Does not call
  // check_fully_stored (callers reading a dataset in parts call it once).
  torch::Tensor read_rows(const std::string& name, int64_t begin, int64_t end) const;

  // --- attributes (on any group or dataset; "/" is the file) ---------------------------------
  bool has_attr(const std::string& object, const std::string& key) const;
  // Replaces the attribute if it exists. Strings are variable-length UTF-8 (h5py reads str).
  void set_attr_string(const std::string& object, const std::string& key, const std::string& value);
  void set_attr_strings(const std::string& object, const std::string& key,
                        const std::vector<std::string>& values);
  void set_attr_int(const std::string& object, const std::string& key, int64_t value);
  void set_attr_double(const std::string& object, const std::string& key, double value);
  // A numeric array attribute (1-d or n-d) with the tensor's dtype.
  void set_attr_tensor(const std::string& object, const std::string& key,
                       const torch::Tensor& value);

  // Readers check the attribute's type class and element count and say what they found.
  std::string attr_string(const std::string& object, const std::string& key) const;
  // Accepts a string array or a single string (returned as one element).
  std::vector<std::string> attr_strings(const std::string& object, const std::string& key) const;
  // Requires an integer scalar (or a one-element integer array).
  int64_t attr_int(const std::string& object, const std::string& key) const;
  // Accepts an integer or floating-point scalar (or one-element array).
  double attr_double(const std::string& object, const std::string& key) const;
  // Any numeric attribute, flattened, converted to double.
  std::vector<double> attr_doubles(const std::string& object, const std::string& key) const;

 private:
  // Throws with the file path, the object name, what failed and HDF5's innermost message.
  [[noreturn]] void fail(const std::string& what, const std::string& object) const;
  hid_t check_id(hid_t id, const std::string& what, const std::string& object) const;
  void check(herr_t status, const std::string& what, const std::string& object) const;
  // Closes `id` now and throws if HDF5 reports a failure (closing a dataset writes its cached
  // chunks, so this is where a full disk often shows).
  void close_checked(H5Id& id, const std::string& what, const std::string& object) const;

  // Gives up a file whose writes failed (disk full): its remaining writes go to an anonymous
  // in-memory file instead of the disk. Needed because HDF5 retries a failed flush when the file
  // is closed, and a close that fails leaves a half-closed file in HDF5's ID table, on which
  // HDF5's exit handler (H5_term_library -> H5F__close_cb) crashes with SIGSEGV; redirected, the
  // close succeeds and the file leaves the table. The caller removes the (partial) file.
  void abandon() noexcept;

  H5Id open_object(const std::string& name) const;
  H5Id open_dataset(const std::string& name) const;
  H5Id open_attr(const std::string& object, const std::string& key) const;
  // Creates or replaces an attribute of the given type and dataspace; returns the new attribute.
  H5Id create_attr(const std::string& object, const std::string& key, hid_t type, hid_t space);
  void ensure_parent_groups(const std::string& name);

  std::string path_;
  // Reading (kRead): a time limit, from before the file is opened until it is closed, since
  // HDF5 can loop forever on some damaged files (data/read_deadline.h).
  std::unique_ptr<ReadDeadline> read_deadline_;
  H5Id file_;
  bool writable_ = false;  // opened with kCreate or kReadWrite
};

// Writes an HDF5 file atomically: `fill` writes into a temporary file next to `path`, which is
// then closed, fsync'ed and renamed over `path` (data/atomic_file.h). If anything throws (a full
// disk included), the temporary is removed and `path` is untouched, so a reader sees the old file
// or the complete new one, never a partial one.
void h5_write_atomically(const std::string& path, const std::function<void(H5File&)>& fill);

}  // namespace winnow::data
