// Dataset: the interface every sample source implements (HDF5 files, synthetic data).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/batch.h"

namespace winnow::data {

// What a model built for a dataset must fit, without knowing the dataset's class: class-labelled
// images of one shape, or windows of a token stream over a vocabulary.
struct SampleShape {
  enum class Kind { kImages, kTokens };
  Kind kind = Kind::kImages;
  std::vector<int64_t> image_shape;  // kImages: [C, H, W] of one sample
  int64_t num_classes = 0;           // kImages: labels are in [0, num_classes)
  int64_t vocab_size = 0;            // kTokens: token ids are in [0, vocab_size)

  bool images() const { return kind == Kind::kImages; }
  static SampleShape of_images(std::vector<int64_t> image_shape, int64_t num_classes);
  static SampleShape of_tokens(int64_t vocab_size);
};

// A fixed-size, random-access set of samples with ids 0 .. size() - 1. The loader decides which
// ids form a batch; a dataset only assembles them.
class Dataset {
 public:
  virtual ~Dataset() = default;

  // Number of samples (images, or context windows of a token stream).
  virtual int64_t size() const = 0;

  // Assembles the samples `sample_ids` (each in [0, size()), in the given order, possibly empty)
  // into a Batch with inputs, targets and sample_ids filled in; the loader fills the position
  // fields. Must be safe to call from several threads at once (the loader's worker calls it).
  virtual Batch fetch(const std::vector<int64_t>& sample_ids) const = 0;

  // One line for logs, e.g. "images 'data/train.h5': 60000 x [1, 28, 28], 10 classes".
  virtual std::string describe() const = 0;

  // The shape of the samples, which the model built for this data takes from it.
  virtual SampleShape sample_shape() const = 0;
};

// Throws unless every id is in [0, size); `who` names the dataset in the message.
void check_sample_ids(const std::vector<int64_t>& sample_ids, int64_t size, const std::string& who);

}  // namespace winnow::data
