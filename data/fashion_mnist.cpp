// Implements the Fashion-MNIST converter: IDX files in, validated winnow.images files out.
#include "data/fashion_mnist.h"

#include <array>
#include <cmath>
#include <filesystem>

#include "data/idx_file.h"
#include "data/image_file.h"

namespace winnow::data {
namespace {

constexpr int64_t kSide = 28;
constexpr int64_t kNumClasses = 10;

// `dir`/`name`.gz if it exists, else `dir`/`name` if that exists, else the .gz path (whose
// absence the IDX reader reports).
std::string find_idx(const std::filesystem::path& dir, const std::string& name) {
  const auto gz = dir / (name + ".gz");
  if (std::filesystem::exists(gz)) return gz.string();
  const auto plain = dir / name;
  if (std::filesystem::exists(plain)) return plain.string();
  return gz.string();
}

struct Split {
  torch::Tensor images;  // [N, 28, 28] uint8
  torch::Tensor labels;  // [N] int64
};

Split read_split(const std::filesystem::path& dir, const std::string& prefix) {
  const std::string images_path = find_idx(dir, prefix + "-images-idx3-ubyte");
  const std::string labels_path = find_idx(dir, prefix + "-labels-idx1-ubyte");
  Split split{read_idx_images(images_path), read_idx_labels(labels_path)};
  TORCH_CHECK(split.images.size(0) == split.labels.size(0), "fashion_mnist: '", images_path,
              "' holds ", split.images.size(0), " images but '", labels_path, "' holds ",
              split.labels.size(0), " labels; expected the same count");
  TORCH_CHECK(split.images.size(0) > 0, "fashion_mnist: '", images_path,
              "' holds no images; expected at least one");
  TORCH_CHECK(split.images.size(1) == kSide && split.images.size(2) == kSide, "fashion_mnist: '",
              images_path, "' holds ", split.images.size(1), "x", split.images.size(2),
              " images; expected ", kSide, "x", kSide);
  const int64_t max_label = split.labels.max().item<int64_t>();
  TORCH_CHECK(max_label < kNumClasses, "fashion_mnist: '", labels_path, "' holds label ", max_label,
              " at index ", split.labels.argmax().item<int64_t>(), "; expected labels in [0, ",
              kNumClasses, ")");
  return split;
}

// Exact mean and population std of pixel/255 from a 256-bin histogram (no float accumulation
// over 47M values).
std::pair<double, double> pixel_moments(const torch::Tensor& images) {
  std::array<int64_t, 256> histogram{};
  const auto* pixels = images.data_ptr<uint8_t>();
  const int64_t count = images.numel();
  for (int64_t i = 0; i < count; ++i) ++histogram[pixels[i]];
  double sum = 0, sum_squares = 0;
  for (int v = 0; v < 256; ++v) {
    const double x = v / 255.0;
    sum += x * static_cast<double>(histogram[v]);
    sum_squares += x * x * static_cast<double>(histogram[v]);
  }
  const double mean = sum / static_cast<double>(count);
  const double variance = std::max(0.0, sum_squares / static_cast<double>(count) - mean * mean);
  return {mean, std::sqrt(variance)};
}

}  // namespace

const std::vector<std::string>& fashion_mnist_class_names() {
  static const std::vector<std::string> names = {"T-shirt/top", "Trouser",   "Pullover", "Dress",
                                                 "Coat",        "Sandal",    "Shirt",    "Sneaker",
                                                 "Bag",         "Ankle boot"};
  return names;
}

FashionMnistSummary prepare_fashion_mnist(const std::string& src_dir, const std::string& out_dir) {
  const std::filesystem::path src(src_dir);
  TORCH_CHECK(std::filesystem::is_directory(src), "fashion_mnist: source directory '", src_dir,
              "' does not exist; expected a directory with the four Fashion-MNIST IDX files");
  const Split train = read_split(src, "train");
  const Split test = read_split(src, "t10k");
  const std::pair<double, double> moments = pixel_moments(train.images);
  const double mean = moments.first;
  const double std_dev = moments.second;
  TORCH_CHECK(std_dev > 0, "fashion_mnist: train images in '", src_dir,
              "' are all one value; expected varying pixels");

  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  TORCH_CHECK(!ec, "fashion_mnist: cannot create output directory '", out_dir, "': ", ec.message());

  FashionMnistSummary summary;
  summary.train_count = train.images.size(0);
  summary.test_count = test.images.size(0);
  summary.height = kSide;
  summary.width = kSide;
  summary.mean = mean;
  summary.std = std_dev;
  summary.train_path = (std::filesystem::path(out_dir) / "train.h5").string();
  summary.test_path = (std::filesystem::path(out_dir) / "test.h5").string();

  auto write_split = [&](const Split& split, const std::string& path, const char* name) {
    ImageFileContents contents;
    contents.images = split.images.unsqueeze(-1);  // [N, 28, 28, 1]
    contents.labels = split.labels;
    contents.num_classes = kNumClasses;
    contents.class_names = fashion_mnist_class_names();
    contents.mean = {mean};
    contents.std = {std_dev};
    contents.source = std::string("Fashion-MNIST (Xiao, Rasul, Vollgraf 2017), ") + name +
                      " split, converted from " + src_dir + "; mean/std over the train split";
    write_image_file(path, contents);
  };
  write_split(train, summary.train_path, "train");
  write_split(test, summary.test_path, "t10k");
  return summary;
}

}  // namespace winnow::data
