// Implements ImageDataset: in-memory images, gathered and normalised per batch.
#include "data/image_dataset.h"

#include <sstream>

namespace winnow::data {

ImageDataset::ImageDataset(const std::string& path) : ImageDataset(read_image_file(path), path) {}

ImageDataset::ImageDataset(ImageFileContents contents, std::string name)
    : contents_(std::move(contents)), name_(std::move(name)) {
  validate_image_contents(contents_, name_);
  contents_.images = contents_.images.contiguous();
  contents_.labels = contents_.labels.contiguous();
  const auto mean = torch::tensor(contents_.mean, torch::kFloat64);
  const auto std_dev = torch::tensor(contents_.std, torch::kFloat64);
  scale_ = (1.0 / (255.0 * std_dev)).to(torch::kFloat32).view({1, -1, 1, 1});
  offset_ = (-mean / std_dev).to(torch::kFloat32).view({1, -1, 1, 1});
}

std::array<int64_t, 3> ImageDataset::image_shape() const {
  const auto& images = contents_.images;  // [N, H, W, C]
  return {images.size(3), images.size(1), images.size(2)};
}

Batch ImageDataset::fetch(const std::vector<int64_t>& sample_ids) const {
  check_sample_ids(sample_ids, size(), "image dataset '" + name_ + "'");
  const auto ids = torch::tensor(sample_ids, torch::kInt64).view({-1});  // [B]
  const torch::Tensor pixels = contents_.images.index_select(0, ids);    // [B, H, W, C] uint8
  const auto shape = image_shape();
  Batch batch;
  batch.inputs = torch::empty({ids.size(0), shape[0], shape[1], shape[2]}, torch::kFloat32);
  batch.inputs.copy_(pixels.permute({0, 3, 1, 2})).mul_(scale_).add_(offset_);  // [B, C, H, W]
  batch.targets = contents_.labels.index_select(0, ids);                        // [B] int64
  batch.sample_ids = ids;                                                       // [B] int64
  return batch;
}

std::string ImageDataset::describe() const {
  const auto shape = image_shape();
  std::ostringstream out;
  out << "images '" << name_ << "': " << size() << " x [" << shape[0] << ", " << shape[1] << ", "
      << shape[2] << "], " << num_classes() << " classes";
  return out.str();
}

}  // namespace winnow::data
