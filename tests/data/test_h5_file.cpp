// Tests H5File: tensor and attribute round trips, hyperslabs, layout, errors, atomic writes.
#include "data/h5_file.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

#include "tests/data/test_support.h"

namespace winnow::data {
namespace {

using testing::error_of;
using ::testing::HasSubstr;
using testing::TempDir;

TEST(H5File, TensorRoundTripAllDtypes) {
  TempDir dir;
  const std::string path = dir.file("t.h5");
  const std::vector<torch::ScalarType> dtypes = {torch::kUInt8,  torch::kInt8,  torch::kInt16,
                                                 torch::kInt32,  torch::kInt64, torch::kFloat32,
                                                 torch::kFloat64};
  std::vector<torch::Tensor> written;
  {
    H5File file(path, H5File::Mode::kCreate);
    for (size_t i = 0; i < dtypes.size(); ++i) {
      torch::Tensor t = torch::arange(2 * 3 * 5).view({2, 3, 5}).to(dtypes[i]);
      file.write_tensor("group/sub/t" + std::to_string(i), t);
      written.push_back(t);
    }
    file.write_tensor("scalar", torch::scalar_tensor(3.5, torch::kFloat64));
    file.write_tensor("empty", torch::empty({0, 4}, torch::kFloat32));
    file.write_tensor("strided", torch::arange(12, torch::kInt64).view({3, 4}).t());
    file.close();
  }
  H5File file(path, H5File::Mode::kRead);
  for (size_t i = 0; i < dtypes.size(); ++i) {
    const std::string name = "group/sub/t" + std::to_string(i);
    const auto info = file.dataset_info(name);
    EXPECT_EQ(info.dtype, dtypes[i]);
    EXPECT_EQ(info.shape, (std::vector<int64_t>{2, 3, 5}));
    EXPECT_TRUE(torch::equal(file.read_tensor(name), written[i])) << name;
    EXPECT_TRUE(torch::equal(file.read_tensor("/" + name, dtypes[i], {-1, 3, 5}), written[i]));
  }
  const torch::Tensor scalar = file.read_tensor("scalar");
  EXPECT_EQ(scalar.dim(), 0);
  EXPECT_EQ(scalar.item<double>(), 3.5);
  EXPECT_EQ(file.read_tensor("empty").sizes(), (std::vector<int64_t>{0, 4}));
  EXPECT_TRUE(torch::equal(file.read_tensor("strided"),
                           torch::arange(12, torch::kInt64).view({3, 4}).t().contiguous()));
  EXPECT_EQ(file.children("group/sub").size(), dtypes.size());
  H5File(path, H5File::Mode::kRead).close();  // closing a read-only file is not an error
  EXPECT_THAT(file.children("/"), ::testing::ElementsAre("empty", "group", "scalar", "strided"));
}

TEST(H5File, HyperslabRowsReadAndWrite) {
  TempDir dir;
  const std::string path = dir.file("rows.h5");
  const torch::Tensor data = torch::rand({100, 7, 3});  // [N, 7, 3]
  {
    H5File file(path, H5File::Mode::kCreate);
    H5WriteOptions options;
    options.chunk_bytes = 7 * 3 * 4 * 8;  // 8 rows per chunk: reads cross chunk boundaries
    file.create_dataset("x", torch::kFloat32, {100, 7, 3}, options);
    file.write_rows("x", 0, data.slice(0, 0, 37));
    file.write_rows("x", 37, data.slice(0, 37, 100));
    file.close();
  }
  H5File file(path, H5File::Mode::kRead);
  EXPECT_TRUE(torch::equal(file.read_rows("x", 13, 61), data.slice(0, 13, 61)));
  EXPECT_EQ(file.read_rows("x", 5, 5).size(0), 0);
  EXPECT_TRUE(torch::equal(file.read_tensor("x"), data));
  EXPECT_THAT(error_of([&] { file.read_rows("x", 90, 101); }),
              HasSubstr("rows [90, 101) are outside dataset 'x'"));
}

TEST(H5File, DatasetsAreChunkedShuffledAndDeflated) {
  TempDir dir;
  const std::string path = dir.file("layout.h5");
  {
    H5File file(path, H5File::Mode::kCreate);
    file.write_tensor("/images", torch::zeros({1000, 28, 28, 1}, torch::kUInt8));
    file.close();
  }
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  const hid_t dataset = H5Dopen2(file, "/images", H5P_DEFAULT);
  const hid_t dcpl = H5Dget_create_plist(dataset);
  EXPECT_EQ(H5Pget_layout(dcpl), H5D_CHUNKED);
  std::vector<H5Z_filter_t> filters;
  for (int i = 0; i < H5Pget_nfilters(dcpl); ++i) {
    unsigned flags = 0;
    size_t count = 0;
    unsigned config = 0;
    filters.push_back(H5Pget_filter2(dcpl, static_cast<unsigned>(i), &flags, &count, nullptr, 0,
                                     nullptr, &config));
  }
  EXPECT_THAT(filters, ::testing::ElementsAre(H5Z_FILTER_SHUFFLE, H5Z_FILTER_DEFLATE));
  hsize_t chunk[4] = {};
  ASSERT_EQ(H5Pget_chunk(dcpl, 4, chunk), 4);
  EXPECT_EQ(chunk[1], 28u);  // chunks hold whole images
  EXPECT_EQ(chunk[3], 1u);
  H5Pclose(dcpl);
  H5Dclose(dataset);
  H5Fclose(file);
}

TEST(H5File, FilesCarryMetadataChecksumsThatCatchADamagedObjectHeader) {
  TempDir dir;
  const std::string path = dir.file("checksummed.h5");
  {
    H5File file(path, H5File::Mode::kCreate);
    file.write_tensor("/x", torch::arange(100, torch::kInt64));
    file.set_attr_string("/x", "note", "kept in the object header");
    file.close();
  }
  haddr_t header = 0;
  {
    const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    H5F_info2_t info;
    ASSERT_GE(H5Fget_info2(file, &info), 0);
    EXPECT_GE(info.super.version, 3u);  // the 1.10 format: checksummed superblock and headers
    H5O_info_t object;
    ASSERT_GE(H5Oget_info_by_name2(file, "/x", &object, H5O_INFO_BASIC, H5P_DEFAULT), 0);
    header = object.addr;
    H5Fclose(file);
  }
  {  // one byte of the attribute message flipped
    std::fstream out(path, std::ios::in | std::ios::out | std::ios::binary);
    out.seekg(static_cast<std::streamoff>(header + 40));
    char byte = 0;
    out.read(&byte, 1);
    out.seekp(static_cast<std::streamoff>(header + 40));
    byte = static_cast<char>(byte ^ 0x5a);
    out.write(&byte, 1);
  }
  const H5File file(path, H5File::Mode::kRead);
  EXPECT_THAT(error_of([&] { file.attr_string("/x", "note"); }),
              ::testing::HasSubstr("incorrect metadata checksum"));
}

TEST(H5File, AttributesRoundTrip) {
  TempDir dir;
  const std::string path = dir.file("attrs.h5");
  {
    H5File file(path, H5File::Mode::kCreate);
    file.write_tensor("d", torch::zeros({2}));
    file.set_attr_string("/", "name", "héllo wörld");
    file.set_attr_strings("/", "names", {"T-shirt/top", "", "Ankle boot"});
    file.set_attr_int("/", "count", -7);
    file.set_attr_int("/", "count", 42);  // replaces
    file.set_attr_double("/d", "scale", 0.25);
    file.set_attr_tensor("/", "mean", torch::tensor({0.5f, 0.25f}));
    file.close();
  }
  H5File file(path, H5File::Mode::kRead);
  EXPECT_EQ(file.attr_string("/", "name"), "héllo wörld");
  EXPECT_THAT(file.attr_strings("/", "names"),
              ::testing::ElementsAre("T-shirt/top", "", "Ankle boot"));
  EXPECT_THAT(file.attr_strings("/", "name"), ::testing::ElementsAre("héllo wörld"));
  EXPECT_EQ(file.attr_int("/", "count"), 42);
  EXPECT_EQ(file.attr_double("/", "count"), 42.0);
  EXPECT_EQ(file.attr_double("d", "scale"), 0.25);
  EXPECT_THAT(file.attr_doubles("/", "mean"), ::testing::ElementsAre(0.5, 0.25));
  EXPECT_TRUE(file.has_attr("/d", "scale"));
  EXPECT_FALSE(file.has_attr("/", "scale"));

  EXPECT_THAT(
      error_of([&] { file.attr_int("/d", "scale"); }),
      HasSubstr("attribute 'scale' on '/d' in '" + path + "': expected an integer, got float64"));
  EXPECT_THAT(error_of([&] { file.attr_string("/", "count"); }),
              HasSubstr("expected a string, got int64"));
  EXPECT_THAT(error_of([&] { file.attr_string("/", "names"); }),
              HasSubstr("expected one string, got 3"));
  EXPECT_THAT(error_of([&] { file.attr_int("/", "missing"); }),
              HasSubstr("attribute 'missing' not found on '/' in file '" + path + "'"));
}

TEST(H5File, ReadsFixedLengthStringsAsH5pyWritesThem) {
  TempDir dir;
  const std::string path = dir.file("fixed.h5");
  {
    H5File file(path, H5File::Mode::kCreate);
    file.close();
  }
  // h5py stores numpy bytes_ as fixed-length, NUL-padded strings of exactly their length.
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  auto write_fixed = [&](const char* key, const std::string& bytes, H5T_str_t pad, hsize_t count) {
    const hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, bytes.size() / count);
    H5Tset_strpad(type, pad);
    const hid_t space = H5Screate_simple(1, &count, nullptr);
    const hid_t attr = H5Acreate2(file, key, type, space, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(attr, type, bytes.data());
    H5Aclose(attr);
    H5Sclose(space);
    H5Tclose(type);
  };
  write_fixed("format", "winnow.images", H5T_STR_NULLPAD, 1);
  write_fixed("names", std::string("cat\0\0dog\0\0mouse", 15), H5T_STR_NULLPAD, 3);
  write_fixed("spaced", "ab   cd   ", H5T_STR_SPACEPAD, 2);
  H5Fclose(file);

  H5File reader(path, H5File::Mode::kRead);
  EXPECT_EQ(reader.attr_string("/", "format"), "winnow.images");
  EXPECT_THAT(reader.attr_strings("/", "names"), ::testing::ElementsAre("cat", "dog", "mouse"));
  EXPECT_THAT(reader.attr_strings("/", "spaced"), ::testing::ElementsAre("ab", "cd"));
}

TEST(H5File, ExistsHandlesMissingParentsAndNonGroups) {
  TempDir dir;
  H5File file(dir.file("exists.h5"), H5File::Mode::kCreate);
  file.write_tensor("a/b", torch::zeros({1}));
  EXPECT_TRUE(file.exists("/"));
  EXPECT_TRUE(file.exists("a"));
  EXPECT_TRUE(file.exists("/a/b"));
  EXPECT_TRUE(file.exists("a/b"));
  EXPECT_FALSE(file.exists("/a/c"));
  EXPECT_FALSE(file.exists("/x/y/z"));
  EXPECT_FALSE(file.exists("/a/b/c"));  // b is a dataset, not a group
}

TEST(H5File, ErrorsNameFileObjectAndExpectation) {
  TempDir dir;
  EXPECT_THAT(error_of([&] { H5File(dir.file("missing.h5"), H5File::Mode::kRead); }),
              HasSubstr("file not found: '" + dir.file("missing.h5") + "'"));
  { std::ofstream(dir.file("text.h5")) << "just some text, not HDF5\n"; }
  EXPECT_THAT(error_of([&] { H5File(dir.file("text.h5"), H5File::Mode::kRead); }),
              HasSubstr("'" + dir.file("text.h5") + "' is not an HDF5 file"));
  EXPECT_THAT(error_of([&] { H5File(dir.path().string(), H5File::Mode::kRead); }),
              HasSubstr("is a directory"));

  const std::string path = dir.file("e.h5");
  H5File file(path, H5File::Mode::kCreate);
  file.write_tensor("x", torch::zeros({4, 2}, torch::kInt32));
  EXPECT_THAT(error_of([&] { file.read_tensor("y"); }),
              HasSubstr("dataset 'y' not found in file '" + path + "'"));
  EXPECT_THAT(error_of([&] { file.read_tensor("x", torch::kInt64); }),
              HasSubstr("dataset 'x' in '" + path + "': expected dtype int64, got int32"));
  EXPECT_THAT(error_of([&] {
                file.read_tensor("x", torch::kInt32, {4, 3});
              }),
              HasSubstr("expected shape [4, 3] (-1 = any), got [4, 2]"));
  EXPECT_THAT(error_of([&] { file.write_tensor("x", torch::zeros({1})); }),
              HasSubstr("dataset 'x' already exists"));
  EXPECT_THAT(error_of([&] { file.write_tensor("b", torch::zeros({1}, torch::kBool)); }),
              HasSubstr("expected dtype uint8, int8, int16, int32, int64, float32 or float64, "
                        "got Bool"));
  EXPECT_THAT(error_of([&] {
                file.write_rows("x", 0, torch::zeros({1, 3}, torch::kInt32));
              }),
              HasSubstr("has shape [4, 2], got rows of shape [1, 3]"));
  file.create_group("g");
  EXPECT_THAT(error_of([&] { file.read_tensor("g"); }), HasSubstr("is not a dataset"));
}

TEST(H5File, AtomicWriteKeepsOldFileOnFailure) {
  TempDir dir;
  const std::string path = dir.file("atomic.h5");
  h5_write_atomically(path, [](H5File& file) { file.set_attr_int("/", "version", 1); });
  EXPECT_THROW(h5_write_atomically(path,
                                   [](H5File& file) {
                                     file.set_attr_int("/", "version", 2);
                                     TORCH_CHECK(false, "simulated crash while writing");
                                   }),
               c10::Error);
  EXPECT_EQ(H5File(path, H5File::Mode::kRead).attr_int("/", "version"), 1);
  int entries = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    ++entries;
  }
  EXPECT_EQ(entries, 1) << "the temporary file must be removed";
  h5_write_atomically(path, [](H5File& file) { file.set_attr_int("/", "version", 3); });
  EXPECT_EQ(H5File(path, H5File::Mode::kRead).attr_int("/", "version"), 3);
}

}  // namespace
}  // namespace winnow::data
