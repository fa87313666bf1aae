// Tests the winnow.images / winnow.tokens formats: round trips, and every validation error the
// readers and datasets report on open.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

#include "data/h5_file.h"
#include "data/image_dataset.h"
#include "data/image_file.h"
#include "data/token_dataset.h"
#include "data/token_file.h"
#include "tests/data/test_support.h"

namespace winnow::data {
namespace {

using testing::error_of;
using ::testing::HasSubstr;
using testing::TempDir;

ImageFileContents small_images() {
  ImageFileContents c;
  c.images = torch::randint(0, 256, {6, 4, 5, 3}, torch::kUInt8);  // [N, H, W, C]
  c.labels = torch::tensor({0, 1, 2, 0, 1, 2}, torch::kInt64);
  c.num_classes = 3;
  c.class_names = {"a", "b", "c"};
  c.mean = {0.5, 0.25, 0.75};
  c.std = {0.2, 0.1, 0.4};
  c.source = "unit test";
  return c;
}

TokenFileContents small_tokens() {
  TokenFileContents c;
  c.tokens = torch::arange(0, 50, torch::kInt32).remainder(7);  // [50]
  c.doc_offsets = torch::tensor({0, 20, 20, 50}, torch::kInt64);
  c.vocab_size = 7;
  c.source = "unit test";
  return c;
}

// Writes an image file field by field, bypassing validation, so tests can break one thing.
struct RawImageFile {
  std::string format = "winnow.images";
  int64_t format_version = 1;
  torch::Tensor images = torch::zeros({4, 2, 2, 1}, torch::kUInt8);
  torch::Tensor labels = torch::tensor({0, 1, 0, 1}, torch::kInt64);
  int64_t num_classes = 2;
  std::vector<std::string> class_names = {"x", "y"};
  std::vector<float> mean = {0.5f};
  std::vector<float> std = {0.25f};
  bool write_format = true;

  void write(const std::string& path) const {
    H5File file(path, H5File::Mode::kCreate);
    if (write_format) file.set_attr_string("/", "format", format);
    file.set_attr_int("/", "format_version", format_version);
    file.set_attr_int("/", "num_classes", num_classes);
    file.set_attr_strings("/", "class_names", class_names);
    file.set_attr_tensor("/", "mean", torch::tensor(mean));
    file.set_attr_tensor("/", "std", torch::tensor(std));
    file.write_tensor("/images", images);
    file.write_tensor("/labels", labels);
    file.close();
  }
};

struct RawTokenFile {
  std::string format = "winnow.tokens";
  torch::Tensor tokens = torch::tensor({1, 2, 3, 4, 5, 6, 7, 8, 9}, torch::kInt32);
  torch::Tensor doc_offsets = torch::tensor({0, 4, 9}, torch::kInt64);
  int64_t vocab_size = 10;

  void write(const std::string& path) const {
    H5File file(path, H5File::Mode::kCreate);
    file.set_attr_string("/", "format", format);
    file.set_attr_int("/", "format_version", 1);
    file.set_attr_int("/", "vocab_size", vocab_size);
    file.write_tensor("/tokens", tokens);
    file.write_tensor("/doc_offsets", doc_offsets);
    file.close();
  }
};

TEST(ImageFormat, RoundTrip) {
  TempDir dir;
  const ImageFileContents written = small_images();
  write_image_file(dir.file("img.h5"), written);
  const ImageFileContents read = read_image_file(dir.file("img.h5"));
  EXPECT_TRUE(torch::equal(read.images, written.images));
  EXPECT_TRUE(torch::equal(read.labels, written.labels));
  EXPECT_EQ(read.num_classes, 3);
  EXPECT_EQ(read.class_names, written.class_names);
  ASSERT_EQ(read.mean.size(), 3u);
  for (size_t c = 0; c < 3; ++c) {
    EXPECT_FLOAT_EQ(read.mean[c], written.mean[c]);
    EXPECT_FLOAT_EQ(read.std[c], written.std[c]);
  }
  EXPECT_EQ(read.source, "unit test");
  H5File file(dir.file("img.h5"), H5File::Mode::kRead);
  EXPECT_EQ(file.attr_string("/", "format"), "winnow.images");
  EXPECT_EQ(file.attr_int("/", "format_version"), 1);
}

TEST(ImageFormat, DatasetNormalisesWithFileStatistics) {
  const ImageFileContents contents = small_images();
  const ImageDataset dataset(contents, "memory");
  EXPECT_EQ(dataset.size(), 6);
  EXPECT_EQ(dataset.image_shape(), (std::array<int64_t, 3>{3, 4, 5}));
  const Batch batch = dataset.fetch({4, 1});
  EXPECT_EQ(batch.inputs.sizes(), (std::vector<int64_t>{2, 3, 4, 5}));
  EXPECT_EQ(batch.inputs.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(batch.inputs.is_contiguous());
  EXPECT_TRUE(torch::equal(batch.targets, torch::tensor({1, 1}, torch::kInt64)));
  EXPECT_TRUE(torch::equal(batch.sample_ids, torch::tensor({4, 1}, torch::kInt64)));
  // Pixel (sample 4, c=2, h=3, w=1) of the [N, H, W, C] file.
  const double pixel = contents.images[4][3][1][2].item<int>();
  EXPECT_NEAR(batch.inputs[0][2][3][1].item<float>(), (pixel / 255.0 - 0.75) / 0.4, 1e-5);

  const Batch empty = dataset.fetch({});
  EXPECT_EQ(empty.inputs.sizes(), (std::vector<int64_t>{0, 3, 4, 5}));
  EXPECT_EQ(empty.size(), 0);
  EXPECT_THAT(error_of([&] {
                dataset.fetch({0, 6});
              }),
              HasSubstr("sample id 6 at position 1 is out of range; expected ids in [0, 6)"));
}

TEST(ImageFormat, ReportsEveryValidationError) {
  TempDir dir;
  const std::string path = dir.file("bad.h5");
  auto open_error = [&](const RawImageFile& raw) {
    raw.write(path);
    return error_of([&] { ImageDataset dataset(path); });
  };
  EXPECT_THAT(error_of([&] { ImageDataset dataset(dir.file("missing.h5")); }),
              HasSubstr("file not found: '" + dir.file("missing.h5") + "'"));
  {
    std::ofstream(dir.file("text.h5")) << "not hdf5";
    EXPECT_THAT(error_of([&] { ImageDataset dataset(dir.file("text.h5")); }),
                HasSubstr("is not an HDF5 file"));
  }
  RawImageFile raw;
  EXPECT_EQ(open_error(raw), "<no error>");

  raw = RawImageFile();
  raw.write_format = false;
  EXPECT_THAT(open_error(raw), HasSubstr("'" + path +
                                         "' has no root attribute 'format' (expected "
                                         "'winnow.images')"));
  raw = RawImageFile();
  raw.format = "winnow.tokens";
  EXPECT_THAT(open_error(raw), HasSubstr("'" + path +
                                         "' attribute 'format': expected 'winnow.images', got "
                                         "'winnow.tokens'"));
  raw = RawImageFile();
  raw.format_version = 2;
  EXPECT_THAT(open_error(raw), HasSubstr("attribute 'format_version': expected 1, got 2"));
  raw = RawImageFile();
  raw.images = torch::zeros({4, 2, 2, 1}, torch::kFloat32);
  EXPECT_THAT(open_error(raw), HasSubstr("'" + path +
                                         "' dataset '/images': expected dtype uint8, got "
                                         "float32"));
  raw = RawImageFile();
  raw.images = torch::zeros({4, 2, 2}, torch::kUInt8);
  EXPECT_THAT(open_error(raw), HasSubstr("dataset '/images': expected rank 4 [N, H, W, C], got "
                                         "shape [4, 2, 2]"));
  raw = RawImageFile();
  raw.images = torch::zeros({0, 2, 2, 1}, torch::kUInt8);
  raw.labels = torch::zeros({0}, torch::kInt64);
  EXPECT_THAT(open_error(raw), HasSubstr("dataset '/images': expected at least one image, got "
                                         "N = 0 (empty dataset)"));
  raw = RawImageFile();
  raw.labels = torch::tensor({0, 1, 0, 1}, torch::kInt32);
  EXPECT_THAT(open_error(raw), HasSubstr("dataset '/labels': expected dtype int64, got int32"));
  raw = RawImageFile();
  raw.labels = torch::tensor({0, 1, 0}, torch::kInt64);
  EXPECT_THAT(open_error(raw), HasSubstr("dataset '/labels': expected shape [4] (one label per "
                                         "image), got [3]"));
  raw = RawImageFile();
  raw.labels = torch::tensor({0, 1, 2, 1}, torch::kInt64);
  EXPECT_THAT(open_error(raw), HasSubstr("'" + path +
                                         "' dataset '/labels': expected labels < num_classes = "
                                         "2, got 2 at index 2"));
  raw = RawImageFile();
  raw.labels = torch::tensor({0, -1, 0, 1}, torch::kInt64);
  EXPECT_THAT(open_error(raw),
              HasSubstr("dataset '/labels': expected labels >= 0, got -1 at index 1"));
  raw = RawImageFile();
  raw.class_names = {"x"};
  EXPECT_THAT(open_error(raw), HasSubstr("attribute 'class_names': expected 2 names "
                                         "(num_classes), got 1"));
  raw = RawImageFile();
  raw.mean = {0.5f, 0.5f, 0.5f};
  EXPECT_THAT(open_error(raw), HasSubstr("attribute 'mean': expected 1 values (one per "
                                         "channel), got 3"));
  raw = RawImageFile();
  raw.std = {0.0f};
  EXPECT_THAT(open_error(raw), HasSubstr("attribute 'std': expected finite values > 0, got 0"));
  raw = RawImageFile();
  raw.num_classes = 0;
  raw.class_names = {};
  EXPECT_THAT(open_error(raw), HasSubstr("attribute 'num_classes': expected >= 1, got 0"));
}

TEST(TokenFormat, RoundTripAndWindows) {
  TempDir dir;
  const TokenFileContents written = small_tokens();
  write_token_file(dir.file("tok.h5"), written);
  const TokenFileContents read = read_token_file(dir.file("tok.h5"));
  EXPECT_TRUE(torch::equal(read.tokens, written.tokens));
  EXPECT_TRUE(torch::equal(read.doc_offsets, written.doc_offsets));
  EXPECT_EQ(read.vocab_size, 7);
  EXPECT_EQ(read.source, "unit test");

  const TokenDataset dataset(dir.file("tok.h5"), /*context_length=*/8);
  EXPECT_EQ(dataset.size(), (50 - 1) / 8);  // 6 windows; the last 1 token is unused
  EXPECT_EQ(dataset.vocab_size(), 7);
  EXPECT_EQ(dataset.context_length(), 8);
  EXPECT_EQ(dataset.num_documents(), 3);
  const Batch batch = dataset.fetch({5, 0});
  const torch::Tensor stream = written.tokens.to(torch::kInt64);
  EXPECT_EQ(batch.inputs.sizes(), (std::vector<int64_t>{2, 8}));
  EXPECT_EQ(batch.inputs.scalar_type(), torch::kInt64);
  EXPECT_TRUE(torch::equal(batch.inputs[0], stream.slice(0, 40, 48)));
  EXPECT_TRUE(torch::equal(batch.targets[0], stream.slice(0, 41, 49)));
  EXPECT_TRUE(torch::equal(batch.inputs[1], stream.slice(0, 0, 8)));
  EXPECT_TRUE(torch::equal(batch.targets[1], stream.slice(0, 1, 9)));
  EXPECT_EQ(dataset.fetch({}).inputs.sizes(), (std::vector<int64_t>{0, 8}));

  // Exactly one window: T + 1 tokens.
  const TokenDataset exact(torch::arange(9), 10, 8, "memory");
  EXPECT_EQ(exact.size(), 1);
}

TEST(TokenFormat, ReportsEveryValidationError) {
  TempDir dir;
  const std::string path = dir.file("bad.h5");
  auto open_error = [&](const RawTokenFile& raw, int64_t context = 4) {
    raw.write(path);
    return error_of([&] { TokenDataset dataset(path, context); });
  };
  EXPECT_THAT(error_of([&] { TokenDataset dataset(dir.file("missing.h5"), 4); }),
              HasSubstr("file not found: '" + dir.file("missing.h5") + "'"));
  RawTokenFile raw;
  EXPECT_EQ(open_error(raw), "<no error>");

  raw = RawTokenFile();
  raw.format = "winnow.images";
  EXPECT_THAT(open_error(raw), HasSubstr("'" + path +
                                         "' attribute 'format': expected 'winnow.tokens', got "
                                         "'winnow.images'"));
  raw = RawTokenFile();
  raw.tokens = raw.tokens.to(torch::kInt64);
  EXPECT_THAT(open_error(raw),
              HasSubstr("'" + path + "' dataset '/tokens': expected dtype int32, got int64"));
  raw = RawTokenFile();
  raw.tokens = raw.tokens.view({3, 3});
  EXPECT_THAT(open_error(raw),
              HasSubstr("dataset '/tokens': expected rank 1 [T], got shape [3, 3]"));
  raw = RawTokenFile();
  raw.tokens = torch::zeros({0}, torch::kInt32);
  raw.doc_offsets = torch::tensor({0, 0}, torch::kInt64);
  EXPECT_THAT(open_error(raw), HasSubstr("dataset '/tokens': expected at least one token, got "
                                         "T = 0 (empty dataset)"));
  raw = RawTokenFile();
  raw.vocab_size = 9;
  EXPECT_THAT(open_error(raw), HasSubstr("'" + path +
                                         "' dataset '/tokens': expected token ids < vocab_size "
                                         "= 9, got 9 at index 8"));
  raw = RawTokenFile();
  raw.tokens[3] = -5;
  EXPECT_THAT(open_error(raw),
              HasSubstr("dataset '/tokens': expected token ids >= 0, got -5 at index 3"));
  raw = RawTokenFile();
  raw.doc_offsets = torch::tensor({0, 4, 8}, torch::kInt64);
  EXPECT_THAT(open_error(raw), HasSubstr("dataset '/doc_offsets': expected the last offset to "
                                         "be T = 9, got 8"));
  raw = RawTokenFile();
  raw.doc_offsets = torch::tensor({0, 6, 4, 9}, torch::kInt64);
  EXPECT_THAT(open_error(raw), HasSubstr("expected non-decreasing offsets, got 6 followed by 4 "
                                         "at index 1"));
  raw = RawTokenFile();
  raw.doc_offsets = torch::tensor({0, 4, 9}, torch::kInt32);
  EXPECT_THAT(open_error(raw),
              HasSubstr("dataset '/doc_offsets': expected dtype int64, got int32"));
  raw = RawTokenFile();
  EXPECT_THAT(open_error(raw, /*context=*/9),
              HasSubstr("'" + path +
                        "' dataset '/tokens': text shorter than one window: expected at least "
                        "10 tokens (context length + 1), got 9"));
  EXPECT_THAT(open_error(raw, /*context=*/0), HasSubstr("expected context length >= 1, got 0"));
}

}  // namespace
}  // namespace winnow::data
