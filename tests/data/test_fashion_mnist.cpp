// Tests the IDX readers and the Fashion-MNIST converter on tiny generated files and, when
// installed, on the real dataset.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "data/fashion_mnist.h"
#include "data/idx_file.h"
#include "data/image_dataset.h"
#include "data/image_file.h"
#include "tests/data/test_support.h"

namespace winnow::data {
namespace {

using testing::error_of;
using ::testing::HasSubstr;
using testing::TempDir;

void put_int32(std::string& out, int32_t value) {
  const auto v = static_cast<uint32_t>(value);
  out += static_cast<char>(v >> 24);
  out += static_cast<char>(v >> 16);
  out += static_cast<char>(v >> 8);
  out += static_cast<char>(v);
}

void write_gzip(const std::string& path, const std::string& bytes) {
  gzFile file = gzopen(path.c_str(), "wb");
  ASSERT_NE(file, nullptr);
  if (!bytes.empty()) {
    ASSERT_EQ(gzwrite(file, bytes.data(), static_cast<unsigned>(bytes.size())),
              static_cast<int>(bytes.size()));
  }
  gzclose(file);
}

// IDX image bytes: `count` images of rows x cols, pixel value (i * 7 + p) % 256.
std::string idx_images(int32_t count, int32_t rows, int32_t cols, int32_t magic = 2051) {
  std::string out;
  put_int32(out, magic);
  put_int32(out, count);
  put_int32(out, rows);
  put_int32(out, cols);
  for (int32_t i = 0; i < count; ++i) {
    for (int32_t p = 0; p < rows * cols; ++p) out += static_cast<char>((i * 7 + p) % 256);
  }
  return out;
}

std::string idx_labels(const std::vector<int>& labels, int32_t magic = 2049) {
  std::string out;
  put_int32(out, magic);
  put_int32(out, static_cast<int32_t>(labels.size()));
  for (int label : labels) out += static_cast<char>(label);
  return out;
}

// A source directory with the four files; `train_labels` overrides the train label bytes.
void write_fake_fashion(const TempDir& dir, int32_t train, int32_t test) {
  std::vector<int> train_labels, test_labels;
  for (int i = 0; i < train; ++i) train_labels.push_back(i % 10);
  for (int i = 0; i < test; ++i) test_labels.push_back((i * 3) % 10);
  write_gzip(dir.file("train-images-idx3-ubyte.gz"), idx_images(train, 28, 28));
  write_gzip(dir.file("train-labels-idx1-ubyte.gz"), idx_labels(train_labels));
  write_gzip(dir.file("t10k-images-idx3-ubyte.gz"), idx_images(test, 28, 28));
  write_gzip(dir.file("t10k-labels-idx1-ubyte.gz"), idx_labels(test_labels));
}

TEST(IdxFile, ReadsGoodImagesAndLabels) {
  TempDir dir;
  write_gzip(dir.file("i.gz"), idx_images(3, 4, 5));
  write_gzip(dir.file("l.gz"), idx_labels({1, 0, 9}));
  const torch::Tensor images = read_idx_images(dir.file("i.gz"));
  EXPECT_EQ(images.sizes(), (std::vector<int64_t>{3, 4, 5}));
  EXPECT_EQ(images.scalar_type(), torch::kUInt8);
  EXPECT_EQ(images[2][1][3].item<int>(), (2 * 7 + 1 * 5 + 3) % 256);
  const torch::Tensor labels = read_idx_labels(dir.file("l.gz"));
  EXPECT_EQ(labels.scalar_type(), torch::kInt64);
  EXPECT_TRUE(torch::equal(labels, torch::tensor({1, 0, 9}, torch::kInt64)));
}

TEST(IdxFile, ReportsBadFiles) {
  TempDir dir;
  EXPECT_THAT(error_of([&] { read_idx_images(dir.file("none.gz")); }),
              HasSubstr("cannot open '" + dir.file("none.gz") + "'"));

  write_gzip(dir.file("magic.gz"), idx_images(2, 28, 28, 2049));
  EXPECT_THAT(error_of([&] { read_idx_images(dir.file("magic.gz")); }),
              HasSubstr("'" + dir.file("magic.gz") +
                        "' has magic number 2049, expected 2051 (IDX image file); this is an "
                        "IDX label file"));
  write_gzip(dir.file("lmagic.gz"), idx_labels({1}, 1234));
  EXPECT_THAT(error_of([&] { read_idx_labels(dir.file("lmagic.gz")); }),
              HasSubstr("has magic number 1234, expected 2049"));

  std::string truncated = idx_images(3, 28, 28);
  truncated.resize(truncated.size() - 100);
  write_gzip(dir.file("trunc.gz"), truncated);
  EXPECT_THAT(error_of([&] { read_idx_images(dir.file("trunc.gz")); }),
              HasSubstr("is truncated: expected 2352 bytes of pixels, got 2252"));

  write_gzip(dir.file("header.gz"), std::string("\x00\x00\x08", 3));
  EXPECT_THAT(error_of([&] { read_idx_images(dir.file("header.gz")); }),
              HasSubstr("truncated: expected 4 bytes of header (magic), got 3"));

  write_gzip(dir.file("trailing.gz"), idx_labels({1, 2}) + "x");
  EXPECT_THAT(error_of([&] { read_idx_labels(dir.file("trailing.gz")); }),
              HasSubstr("has trailing bytes"));

  // A header announcing two billion images fails as truncated instead of allocating 1.5 TB.
  write_gzip(dir.file("huge.gz"), idx_images(0, 28, 28).replace(4, 4, "\x7f\xff\xff\xff"));
  EXPECT_THAT(error_of([&] { read_idx_images(dir.file("huge.gz")); }), HasSubstr("truncated"));

  std::string corrupt;
  {
    write_gzip(dir.file("good.gz"), idx_images(50, 28, 28));
    std::ifstream in(dir.file("good.gz"), std::ios::binary);
    corrupt.assign(std::istreambuf_iterator<char>(in), {});
    corrupt.resize(corrupt.size() / 2);
    std::ofstream(dir.file("corrupt.gz"), std::ios::binary) << corrupt;
  }
  EXPECT_THAT(error_of([&] { read_idx_images(dir.file("corrupt.gz")); }),
              ::testing::AnyOf(HasSubstr("truncated"), HasSubstr("cannot decompress")));
}

TEST(FashionMnist, ConvertsTinyFilesWithStatisticsFromTrain) {
  TempDir src, out;
  write_fake_fashion(src, 30, 12);
  const FashionMnistSummary summary = prepare_fashion_mnist(src.path().string(), out.file("fm"));
  EXPECT_EQ(summary.train_count, 30);
  EXPECT_EQ(summary.test_count, 12);
  EXPECT_EQ(summary.train_path, out.file("fm/train.h5"));

  // Expected statistics straight from the generated train pixels.
  const torch::Tensor train_pixels =
      read_idx_images(src.file("train-images-idx3-ubyte.gz")).to(torch::kFloat64) / 255.0;
  EXPECT_NEAR(summary.mean, train_pixels.mean().item<double>(), 1e-12);
  EXPECT_NEAR(summary.std, train_pixels.std(/*unbiased=*/false).item<double>(), 1e-9);

  const ImageFileContents test = read_image_file(summary.test_path);
  EXPECT_EQ(test.images.sizes(), (std::vector<int64_t>{12, 28, 28, 1}));
  EXPECT_EQ(test.labels[4].item<int64_t>(), 2);
  EXPECT_EQ(test.class_names, fashion_mnist_class_names());
  ASSERT_EQ(test.mean.size(), 1u);
  EXPECT_NEAR(test.mean[0], summary.mean, 1e-6);  // the train statistics, stored as float32
  EXPECT_NEAR(test.std[0], summary.std, 1e-6);
  EXPECT_THAT(test.source, HasSubstr("Fashion-MNIST"));
  for (const auto& entry : std::filesystem::directory_iterator(out.file("fm"))) {
    EXPECT_EQ(entry.path().extension(), ".h5") << "leftover temporary " << entry.path();
  }
}

TEST(FashionMnist, RejectsInconsistentSources) {
  {
    TempDir src, out;
    write_fake_fashion(src, 10, 5);
    write_gzip(src.file("train-labels-idx1-ubyte.gz"), idx_labels({1, 2, 3}));
    EXPECT_THAT(error_of([&] { prepare_fashion_mnist(src.path().string(), out.path().string()); }),
                HasSubstr("holds 10 images but '" + src.file("train-labels-idx1-ubyte.gz") +
                          "' holds 3 labels; expected the same count"));
  }
  {
    TempDir src, out;
    write_fake_fashion(src, 10, 5);
    write_gzip(src.file("t10k-labels-idx1-ubyte.gz"), idx_labels({1, 2, 10, 3, 4}));
    EXPECT_THAT(error_of([&] { prepare_fashion_mnist(src.path().string(), out.path().string()); }),
                HasSubstr("holds label 10 at index 2; expected labels in [0, 10)"));
  }
  {
    TempDir src, out;
    write_fake_fashion(src, 10, 5);
    write_gzip(src.file("train-images-idx3-ubyte.gz"), idx_images(10, 32, 32));
    EXPECT_THAT(error_of([&] { prepare_fashion_mnist(src.path().string(), out.path().string()); }),
                HasSubstr("holds 32x32 images; expected 28x28"));
  }
  {
    TempDir src, out;
    write_fake_fashion(src, 10, 5);
    std::filesystem::remove(src.file("t10k-images-idx3-ubyte.gz"));
    EXPECT_THAT(error_of([&] { prepare_fashion_mnist(src.path().string(), out.path().string()); }),
                HasSubstr("cannot open '" + src.file("t10k-images-idx3-ubyte.gz") + "'"));
    EXPECT_FALSE(std::filesystem::exists(out.file("train.h5")))
        << "nothing is written before all four files are read";
  }
  EXPECT_THAT(error_of([&] { prepare_fashion_mnist("/nonexistent/fashion", "/tmp/x"); }),
              HasSubstr("source directory '/nonexistent/fashion' does not exist"));
}

TEST(FashionMnist, ConvertsTheRealDataset) {
  const std::string source = "/usr/share/datasets/fashion-mnist";
  if (!std::filesystem::exists(source + "/train-images-idx3-ubyte.gz")) {
    GTEST_SKIP() << source << " is not installed (Debian: apt install dataset-fashion-mnist)";
  }
  TempDir out;
  const FashionMnistSummary summary = prepare_fashion_mnist(source, out.path().string());
  EXPECT_EQ(summary.train_count, 60000);
  EXPECT_EQ(summary.test_count, 10000);
  EXPECT_NEAR(summary.mean, 0.286, 0.001);
  EXPECT_NEAR(summary.std, 0.353, 0.001);

  const ImageDataset train(summary.train_path);
  EXPECT_EQ(train.size(), 60000);
  EXPECT_EQ(train.image_shape(), (std::array<int64_t, 3>{1, 28, 28}));
  EXPECT_EQ(train.num_classes(), 10);
  EXPECT_THAT(train.class_names(),
              ::testing::ElementsAre("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                     "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"));
  const ImageDataset test(summary.test_path);
  EXPECT_EQ(test.size(), 10000);
  EXPECT_EQ(test.mean(), train.mean());
  // Normalised train pixels have mean ~0 and std ~1.
  std::vector<int64_t> ids(2000);
  for (int64_t i = 0; i < 2000; ++i) ids[i] = i * 30;
  const Batch batch = train.fetch(ids);
  EXPECT_NEAR(batch.inputs.mean().item<double>(), 0.0, 0.05);
  EXPECT_NEAR(batch.inputs.std().item<double>(), 1.0, 0.05);
  // Every class appears in the test split's labels exactly 1000 times.
  const ImageFileContents contents = read_image_file(summary.test_path);
  EXPECT_TRUE(
      torch::equal(torch::bincount(contents.labels), torch::full({10}, 1000, torch::kInt64)));
}

}  // namespace
}  // namespace winnow::data
