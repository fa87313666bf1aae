// read_sample_rows: a data file read chunk row by chunk row; a damaged chunk is reported as the
// file, the dataset and the sample range it holds; a file missing chunks is refused before HDF5
// reads it.
#include "data/sample_rows.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <hdf5.h>

#include <fstream>
#include <string>

#include "data/image_file.h"
#include "tests/data/test_support.h"

namespace winnow::data {
namespace {

using testing::error_of;
using ::testing::HasSubstr;
using testing::TempDir;

// 3000 random 28x28 images: 2.35 MB, stored as 4 chunk rows of 750 images (1 MiB chunk target).
ImageFileContents random_images() {
  torch::manual_seed(0);
  ImageFileContents contents;
  contents.images = torch::randint(0, 256, {3000, 28, 28, 1}, torch::kUInt8);  // [N, H, W, C]
  contents.labels = torch::randint(0, 10, {3000}, torch::kInt64);              // [N]
  contents.num_classes = 10;
  for (int c = 0; c < 10; ++c) contents.class_names.push_back("class " + std::to_string(c));
  contents.mean = {0.5};
  contents.std = {0.29};
  return contents;
}

// Overwrites the middle of the stored (compressed) bytes of chunk `index` of `dataset`.
void damage_chunk(const std::string& path, const std::string& dataset, hsize_t index) {
  haddr_t address = 0;
  hsize_t size = 0;
  {
    hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    ASSERT_GE(file, 0);
    hid_t data = H5Dopen2(file, dataset.c_str(), H5P_DEFAULT);
    ASSERT_GE(data, 0);
    hid_t space = H5Dget_space(data);
    hsize_t offset[4];
    unsigned filter_mask = 0;
    const herr_t found =
        H5Dget_chunk_info(data, space, index, offset, &filter_mask, &address, &size);
    H5Sclose(space);
    H5Dclose(data);
    H5Fclose(file);
    ASSERT_GE(found, 0);
  }
  ASSERT_GT(size, 64u);
  std::fstream out(path, std::ios::in | std::ios::out | std::ios::binary);
  out.seekp(static_cast<std::streamoff>(address + size / 2 - 16));
  const std::string garbage(32, '\xff');
  out.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
  ASSERT_TRUE(out.good());
}

TEST(SampleRows, ReadsTheWholeDatasetChunkRowByChunkRow) {
  TempDir dir;
  const std::string path = dir.file("images.h5");
  const ImageFileContents contents = random_images();
  write_image_file(path, contents);
  const H5File file(path, H5File::Mode::kRead);
  const H5DatasetInfo info = file.dataset_info("/images");
  ASSERT_EQ(info.chunk.size(), 4u);
  EXPECT_EQ(info.chunk[0], 750);  // several reads, so the loop is what is tested
  EXPECT_TRUE(torch::equal(read_sample_rows(file, "/images", "images"), contents.images));
  EXPECT_TRUE(torch::equal(read_sample_rows(file, "/labels", "labels"), contents.labels));
}

TEST(SampleRows, ADamagedChunkNamesTheFileTheDatasetAndTheSampleRange) {
  TempDir dir;
  const std::string path = dir.file("images.h5");
  write_image_file(path, random_images());
  damage_chunk(path, "/images", 2);  // images [1500, 2250)
  const std::string message = error_of([&] { read_image_file(path); });
  EXPECT_THAT(message, HasSubstr("data file '" + path + "' dataset '/images'"));
  EXPECT_THAT(message, HasSubstr("cannot read images [1500, 2250) of 3000"));
  EXPECT_THAT(message, HasSubstr("the file is damaged in that range"));
  EXPECT_THAT(message, ::testing::Not(HasSubstr("frame #")));
}

TEST(SampleRows, AFileMissingChunksIsRefusedBeforeReading) {
  TempDir dir;
  const std::string path = dir.file("partial.h5");
  {
    H5File file(path, H5File::Mode::kCreate);
    H5WriteOptions options;
    options.chunk_bytes = 1000;  // 250 int32 tokens per chunk: 4 chunks
    file.create_dataset("/tokens", torch::kInt32, {1000}, options);
    file.write_rows("/tokens", 0, torch::arange(300, torch::kInt32));  // chunks 0 and 1 only
    file.close();
  }
  const H5File file(path, H5File::Mode::kRead);
  EXPECT_THAT(error_of([&] { read_sample_rows(file, "/tokens", "tokens"); }),
              HasSubstr("dataset '/tokens' in '" + path +
                        "': the file stores 2 of the 4 chunks its shape [1000] needs; the file "
                        "is damaged or was not written completely"));
}

TEST(SampleRows, AContiguousDatasetTheFileDoesNotHoldIsRefusedBeforeAllocating) {
  TempDir dir;
  const std::string path = dir.file("contiguous.h5");
  {  // 2^40 int32 claimed, nothing stored: what a damaged dataspace looks like
    hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    const hsize_t dims[1] = {hsize_t{1} << 40};
    hid_t space = H5Screate_simple(1, dims, nullptr);
    hid_t create = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_alloc_time(create, H5D_ALLOC_TIME_LATE);
    hid_t data =
        H5Dcreate2(file, "/tokens", H5T_NATIVE_INT32, space, H5P_DEFAULT, create, H5P_DEFAULT);
    ASSERT_GE(data, 0);
    H5Dclose(data);
    H5Pclose(create);
    H5Sclose(space);
    H5Fclose(file);
  }
  const H5File file(path, H5File::Mode::kRead);
  EXPECT_THAT(error_of([&] { file.read_tensor("/tokens"); }),
              HasSubstr("its shape [1099511627776] of int32 takes 4398046511104 bytes but the "
                        "file stores 0; the file is damaged or was not written completely"));
}

}  // namespace
}  // namespace winnow::data
