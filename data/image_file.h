// The winnow.images HDF5 format: writing an image dataset file and reading it back validated.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace winnow::data {

inline constexpr const char* kImageFormatName = "winnow.images";
inline constexpr int64_t kImageFormatVersion = 1;

// Everything an image dataset file holds (see docs/data-format.md).
struct ImageFileContents {
  torch::Tensor images;  // [N, H, W, C] uint8
  torch::Tensor labels;  // [N] int64, each in [0, num_classes)
  int64_t num_classes = 0;
  std::vector<std::string> class_names;  // num_classes names
  std::vector<double> mean;              // [C] per-channel mean of pixel/255 (over the train split)
  std::vector<double> std;               // [C] per-channel std of pixel/255 (over the train split)
  std::string source;                    // free text: where the data came from
};

// Checks the invariants the readers rely on (dtypes, ranks, N > 0, labels in range, C names,
// mean/std per channel, std > 0). `where` names the file in error messages.
void validate_image_contents(const ImageFileContents& contents, const std::string& where);

// Validates and writes `contents` atomically (temporary file + rename), chunked and compressed.
void write_image_file(const std::string& path, const ImageFileContents& contents);

// Reads and validates a whole image file. Errors name the file, the dataset or attribute, and
// the expected vs found value: missing file, not HDF5, wrong `format`/`format_version`, missing
// datasets, wrong dtype/rank/shape, N = 0, labels outside [0, num_classes), bad mean/std.
ImageFileContents read_image_file(const std::string& path);

}  // namespace winnow::data
