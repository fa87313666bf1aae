// Converts the Fashion-MNIST IDX files into winnow.images HDF5 files (train.h5, test.h5).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace winnow::data {

// The ten Fashion-MNIST classes, in label order.
const std::vector<std::string>& fashion_mnist_class_names();

// What prepare_fashion_mnist wrote, for the CLI to print.
struct FashionMnistSummary {
  int64_t train_count = 0;
  int64_t test_count = 0;
  int64_t height = 0;
  int64_t width = 0;
  double mean = 0;  // of pixel/255 over the train split (applied to both splits)
  double std = 0;   // population standard deviation of pixel/255 over the train split
  std::string train_path;
  std::string test_path;
};

// Reads train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and
// t10k-labels-idx1-ubyte.gz from `src_dir` (the uncompressed names without ".gz" are accepted
// too) and writes `out_dir`/train.h5 and `out_dir`/test.h5 (creating `out_dir`). Each file is
// written to a temporary name and renamed, so an interrupted run never leaves a partial file.
// Checks: IDX magic numbers, image/label counts agree, 28x28 images, no truncation, labels < 10.
// Prints nothing.
FashionMnistSummary prepare_fashion_mnist(const std::string& src_dir, const std::string& out_dir);

}  // namespace winnow::data
