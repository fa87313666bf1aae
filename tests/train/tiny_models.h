// Small synthetic image sets and ViTs shared by the single-process trainer and checkpoint tests:
// 8x8 single-channel images of 4 classes, a 2-block ViT of width 32 on 2x2 patches.
#pragma once

#include <memory>

#include "data/synthetic_dataset.h"
#include "train/vit.h"

namespace winnow::train::tiny {

inline std::shared_ptr<data::SyntheticImageDataset> images(int64_t n, uint64_t seed = 0) {
  data::SyntheticImageOptions o;
  o.size = n;
  o.height = o.width = 8;
  o.num_classes = 4;
  o.seed = seed;
  o.noise = 0.5;
  return std::make_shared<data::SyntheticImageDataset>(o);
}

inline std::shared_ptr<VisionTransformerImpl> small_vit(int64_t depth = 2, int64_t dim = 32) {
  VitOptions o;
  o.image_height = o.image_width = 8;
  o.patch = 2;
  o.dim = dim;
  o.depth = depth;
  o.heads = 2;
  o.num_classes = 4;
  return std::make_shared<VisionTransformerImpl>(o);
}

}  // namespace winnow::train::tiny
