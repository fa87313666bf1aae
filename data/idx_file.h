// Readers for the IDX format (MNIST / Fashion-MNIST), gzip-compressed or plain.
#pragma once

#include <torch/torch.h>

#include <string>

namespace winnow::data {

inline constexpr int32_t kIdxImagesMagic = 2051;  // 0x00000803: uint8, 3 dimensions
inline constexpr int32_t kIdxLabelsMagic = 2049;  // 0x00000801: uint8, 1 dimension

// Reads an IDX image file: big-endian magic 2051, then N, H, W (int32 each), then N*H*W bytes.
// The file may be gzip-compressed (it is read through zlib, which also reads plain files).
// Errors name the file and say what was expected: unreadable or corrupt gzip, wrong magic,
// truncated header or pixels, trailing bytes after the last image.
torch::Tensor read_idx_images(const std::string& path);  // [N, H, W] uint8

// Reads an IDX label file: big-endian magic 2049, then N (int32), then N bytes.
torch::Tensor read_idx_labels(const std::string& path);  // [N] int64

}  // namespace winnow::data
