// Implements the helpers shared by Dataset implementations.
#include "data/dataset.h"

#include <utility>

namespace winnow::data {

SampleShape SampleShape::of_images(std::vector<int64_t> image_shape, int64_t num_classes) {
  SampleShape shape;
  shape.kind = Kind::kImages;
  shape.image_shape = std::move(image_shape);
  shape.num_classes = num_classes;
  return shape;
}

SampleShape SampleShape::of_tokens(int64_t vocab_size) {
  SampleShape shape;
  shape.kind = Kind::kTokens;
  shape.vocab_size = vocab_size;
  return shape;
}

void check_sample_ids(const std::vector<int64_t>& sample_ids, int64_t size,
                      const std::string& who) {
  for (size_t i = 0; i < sample_ids.size(); ++i) {
    TORCH_CHECK(sample_ids[i] >= 0 && sample_ids[i] < size, who, ": sample id ", sample_ids[i],
                " at position ", i, " is out of range; expected ids in [0, ", size, ")");
  }
}

}  // namespace winnow::data
