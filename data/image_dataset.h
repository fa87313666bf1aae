// ImageDataset: a winnow.images file held in memory, served as normalised float batches.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/image_file.h"

namespace winnow::data {

// Loads the whole file on construction (Fashion-MNIST is 47 MB), validated by read_image_file.
// fetch() returns inputs float32 [B, C, H, W] = (pixel / 255 - mean[c]) / std[c] with the
// file's mean/std, targets int64 [B] labels, sample_ids int64 [B].
class ImageDataset : public Dataset {
 public:
  explicit ImageDataset(const std::string& path);
  // From contents already in memory (validated); `name` is used in messages.
  ImageDataset(ImageFileContents contents, std::string name);

  int64_t size() const override { return contents_.images.size(0); }
  Batch fetch(const std::vector<int64_t>& sample_ids) const override;
  std::string describe() const override;
  SampleShape sample_shape() const override {
    const auto shape = image_shape();
    return SampleShape::of_images({shape[0], shape[1], shape[2]}, num_classes());
  }

  int64_t num_classes() const { return contents_.num_classes; }
  // {C, H, W}: the shape of one input sample.
  std::array<int64_t, 3> image_shape() const;
  const std::vector<std::string>& class_names() const { return contents_.class_names; }
  const std::vector<double>& mean() const { return contents_.mean; }
  const std::vector<double>& std() const { return contents_.std; }
  const std::string& source() const { return contents_.source; }
  const std::string& name() const { return name_; }

 private:
  ImageFileContents contents_;  // images [N, H, W, C] uint8, labels [N] int64
  std::string name_;
  torch::Tensor scale_;   // [1, C, 1, 1] float32: 1 / (255 * std)
  torch::Tensor offset_;  // [1, C, 1, 1] float32: -mean / std
};

}  // namespace winnow::data
