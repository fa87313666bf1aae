// Implements the winnow.images format: validation, atomic writing and validated reading.
#include "data/image_file.h"

#include <cmath>

#include "data/format_attrs.h"
#include "data/h5_file.h"
#include "data/sample_rows.h"

namespace winnow::data {

void validate_image_contents(const ImageFileContents& contents, const std::string& where) {
  const auto& images = contents.images;
  const auto& labels = contents.labels;
  TORCH_CHECK(images.defined() && images.scalar_type() == torch::kUInt8, "image_file: '", where,
              "' dataset '/images': expected dtype uint8, got ",
              images.defined() ? h5_dtype_name(images.scalar_type()) : "nothing");
  TORCH_CHECK(images.dim() == 4, "image_file: '", where,
              "' dataset '/images': expected rank 4 [N, H, W, C], got shape ",
              shape_text(images.sizes().vec()));
  TORCH_CHECK(images.size(0) > 0, "image_file: '", where,
              "' dataset '/images': expected at least one image, got N = 0 (empty dataset)");
  TORCH_CHECK(images.size(1) > 0 && images.size(2) > 0 && images.size(3) > 0, "image_file: '",
              where, "' dataset '/images': expected H, W, C > 0, got shape ",
              shape_text(images.sizes().vec()));
  TORCH_CHECK(labels.defined() && labels.scalar_type() == torch::kInt64, "image_file: '", where,
              "' dataset '/labels': expected dtype int64, got ",
              labels.defined() ? h5_dtype_name(labels.scalar_type()) : "nothing");
  TORCH_CHECK(labels.dim() == 1 && labels.size(0) == images.size(0), "image_file: '", where,
              "' dataset '/labels': expected shape [", images.size(0),
              "] (one label per image), got ", shape_text(labels.sizes().vec()));
  TORCH_CHECK(contents.num_classes >= 1, "image_file: '", where,
              "' attribute 'num_classes': expected >= 1, got ", contents.num_classes);
  const int64_t min_label = labels.min().item<int64_t>();
  const int64_t max_label = labels.max().item<int64_t>();
  TORCH_CHECK(min_label >= 0, "image_file: '", where,
              "' dataset '/labels': expected labels >= 0, got ", min_label, " at index ",
              labels.argmin().item<int64_t>());
  TORCH_CHECK(max_label < contents.num_classes, "image_file: '", where,
              "' dataset '/labels': expected labels < num_classes = ", contents.num_classes,
              ", got ", max_label, " at index ", labels.argmax().item<int64_t>());
  TORCH_CHECK(static_cast<int64_t>(contents.class_names.size()) == contents.num_classes,
              "image_file: '", where, "' attribute 'class_names': expected ", contents.num_classes,
              " names (num_classes), got ", contents.class_names.size());
  const int64_t channels = images.size(3);
  TORCH_CHECK(static_cast<int64_t>(contents.mean.size()) == channels, "image_file: '", where,
              "' attribute 'mean': expected ", channels, " values (one per channel), got ",
              contents.mean.size());
  TORCH_CHECK(static_cast<int64_t>(contents.std.size()) == channels, "image_file: '", where,
              "' attribute 'std': expected ", channels, " values (one per channel), got ",
              contents.std.size());
  for (int64_t c = 0; c < channels; ++c) {
    TORCH_CHECK(std::isfinite(contents.mean[c]), "image_file: '", where,
                "' attribute 'mean': expected finite values, got ", contents.mean[c],
                " for channel ", c);
    TORCH_CHECK(std::isfinite(contents.std[c]) && contents.std[c] > 0, "image_file: '", where,
                "' attribute 'std': expected finite values > 0, got ", contents.std[c],
                " for channel ", c);
  }
}

void write_image_file(const std::string& path, const ImageFileContents& contents) {
  validate_image_contents(contents, path);
  h5_write_atomically(path, [&](H5File& file) {
    write_format_attrs(file, kImageFormatName, kImageFormatVersion);
    file.set_attr_int("/", "num_classes", contents.num_classes);
    file.set_attr_strings("/", "class_names", contents.class_names);
    file.set_attr_tensor("/", "mean", torch::tensor(contents.mean).to(torch::kFloat32));
    file.set_attr_tensor("/", "std", torch::tensor(contents.std).to(torch::kFloat32));
    file.set_attr_string("/", "source", contents.source);
    file.write_tensor("/images", contents.images);
    file.write_tensor("/labels", contents.labels);
  });
}

ImageFileContents read_image_file(const std::string& path) {
  const H5File file(path, H5File::Mode::kRead);
  check_format_attrs(file, kImageFormatName, kImageFormatVersion);

  const H5DatasetInfo images_info =
      require_dataset(file, "image_file", "/images", torch::kUInt8, 4, "[N, H, W, C]");
  TORCH_CHECK(images_info.shape[0] > 0, "image_file: '", path,
              "' dataset '/images': expected at least one image, got N = 0 (empty dataset)");
  const H5DatasetInfo labels_info = require_dataset(file, "image_file", "/labels", torch::kInt64);
  TORCH_CHECK(labels_info.shape.size() == 1 && labels_info.shape[0] == images_info.shape[0],
              "image_file: '", path, "' dataset '/labels': expected shape [", images_info.shape[0],
              "] (one label per image), got ", shape_text(labels_info.shape));
  require_root_attrs(file, "image_file", {"num_classes", "class_names", "mean", "std"});

  ImageFileContents contents;
  contents.num_classes = file.attr_int("/", "num_classes");
  contents.class_names = file.attr_strings("/", "class_names");
  contents.mean = file.attr_doubles("/", "mean");
  contents.std = file.attr_doubles("/", "std");
  contents.source = file.has_attr("/", "source") ? file.attr_string("/", "source") : "";
  contents.images = read_sample_rows(file, "/images", "images");
  contents.labels = read_sample_rows(file, "/labels", "labels");
  validate_image_contents(contents, path);
  return contents;
}

}  // namespace winnow::data
