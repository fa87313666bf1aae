// Implements the IDX readers on top of zlib's gzopen/gzread.
#include "data/idx_file.h"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

namespace winnow::data {
namespace {

// An open gzip (or plain) file, closed on scope exit.
class GzReader {
 public:
  explicit GzReader(const std::string& path) : path_(path), file_(gzopen(path.c_str(), "rb")) {
    TORCH_CHECK(file_ != nullptr, "idx_file: cannot open '", path, "' (missing or unreadable)");
  }
  ~GzReader() {
    if (file_ != nullptr) gzclose(file_);
  }
  GzReader(const GzReader&) = delete;
  GzReader& operator=(const GzReader&) = delete;

  // Reads up to `size` bytes; returns how many were read (fewer only at the end of the data).
  size_t read(void* buffer, size_t size) {
    auto* out = static_cast<unsigned char*>(buffer);
    size_t done = 0;
    while (done < size) {
      const unsigned step = static_cast<unsigned>(std::min<size_t>(size - done, 1u << 30));
      const int got = gzread(file_, out + done, step);
      if (got < 0) {
        int code = 0;
        const char* message = gzerror(file_, &code);
        TORCH_CHECK(false, "idx_file: cannot decompress '", path_, "': ", message,
                    " (corrupt or truncated gzip data)");
      }
      if (got == 0) break;
      done += static_cast<size_t>(got);
    }
    return done;
  }

  void read_exactly(void* buffer, size_t size, const char* what) {
    const size_t got = read(buffer, size);
    TORCH_CHECK(got == size, "idx_file: '", path_, "' is truncated: expected ", size, " bytes of ",
                what, ", got ", got);
  }

  // Reads `size` bytes into a tensor, growing it chunk by chunk as data arrives, so a corrupt
  // header announcing a huge count fails as "truncated" instead of allocating that much.
  torch::Tensor read_payload(int64_t size, const char* what) {
    constexpr int64_t kChunk = int64_t{64} << 20;
    std::vector<uint8_t> data;
    while (static_cast<int64_t>(data.size()) < size) {
      const int64_t step = std::min(kChunk, size - static_cast<int64_t>(data.size()));
      const size_t old_size = data.size();
      data.resize(old_size + static_cast<size_t>(step));
      const size_t got = read(data.data() + old_size, static_cast<size_t>(step));
      TORCH_CHECK(got == static_cast<size_t>(step), "idx_file: '", path_,
                  "' is truncated: expected ", size, " bytes of ", what, ", got ", old_size + got);
    }
    return torch::from_blob(data.data(), {size}, torch::kUInt8).clone();
  }

  int32_t read_big_endian_int32(const char* what) {
    std::array<unsigned char, 4> bytes{};
    read_exactly(bytes.data(), bytes.size(), what);
    const uint32_t value = (uint32_t{bytes[0]} << 24) | (uint32_t{bytes[1]} << 16) |
                           (uint32_t{bytes[2]} << 8) | uint32_t{bytes[3]};
    return static_cast<int32_t>(value);
  }

  void expect_end() {
    unsigned char extra = 0;
    TORCH_CHECK(read(&extra, 1) == 0, "idx_file: '", path_,
                "' has trailing bytes after the data the header announces (expected end of file)");
  }

 private:
  std::string path_;
  gzFile file_;
};

void check_magic(int32_t magic, int32_t expected, const std::string& path, const char* kind) {
  TORCH_CHECK(magic == expected, "idx_file: '", path, "' has magic number ", magic, ", expected ",
              expected, " (IDX ", kind, " file)",
              magic == kIdxImagesMagic   ? "; this is an IDX image file"
              : magic == kIdxLabelsMagic ? "; this is an IDX label file"
                                         : "");
}

}  // namespace

torch::Tensor read_idx_images(const std::string& path) {
  GzReader reader(path);
  check_magic(reader.read_big_endian_int32("header (magic)"), kIdxImagesMagic, path, "image");
  const int64_t count = reader.read_big_endian_int32("header (image count)");
  const int64_t height = reader.read_big_endian_int32("header (rows)");
  const int64_t width = reader.read_big_endian_int32("header (columns)");
  constexpr int64_t kMaxSide = int64_t{1} << 15;
  TORCH_CHECK(count >= 0 && height > 0 && width > 0 && height <= kMaxSide && width <= kMaxSide,
              "idx_file: '", path, "' header announces ", count, " images of ", height, "x", width,
              "; expected a count >= 0 and sizes in [1, ", kMaxSide, "]");
  torch::Tensor pixels = reader.read_payload(count * height * width, "pixels");
  reader.expect_end();
  return pixels.view({count, height, width});  // [N, H, W] uint8
}

torch::Tensor read_idx_labels(const std::string& path) {
  GzReader reader(path);
  check_magic(reader.read_big_endian_int32("header (magic)"), kIdxLabelsMagic, path, "label");
  const int64_t count = reader.read_big_endian_int32("header (label count)");
  TORCH_CHECK(count >= 0, "idx_file: '", path, "' header announces ", count,
              " labels; expected a count >= 0");
  torch::Tensor labels = reader.read_payload(count, "labels");  // [N] uint8
  reader.expect_end();
  return labels.to(torch::kInt64);
}

}  // namespace winnow::data
