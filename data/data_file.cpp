// The data-file format registry and open_data_file.
#include "data/data_file.h"

#include "data/error_text.h"
#include "data/h5_file.h"
#include "data/image_dataset.h"
#include "data/token_dataset.h"

namespace winnow::data {

const DataFileRegistry& data_file_formats() {
  static const DataFileRegistry registry(
      "unknown format '{name}'; expected one of {names}",
      {
          {"winnow.images", "class-labelled images (winnow prepare fashion-mnist)",
           [](const std::string& path, int64_t) { return std::make_shared<ImageDataset>(path); }},
          {"winnow.tokens", "a token stream served as context windows (winnow prepare text)",
           [](const std::string& path, int64_t context) {
             return std::make_shared<TokenDataset>(path, context);
           }},
      });
  return registry;
}

std::shared_ptr<Dataset> open_data_file(const std::string& path, int64_t context) {
  const auto& formats = data_file_formats();
  std::string format;
  {
    H5File file(path, H5File::Mode::kRead);
    if (!file.has_attr("/", "format")) {
      std::string known;
      for (const auto& name : formats.names()) known += (known.empty() ? "" : " or ") + name;
      TORCH_CHECK(false, "data file '", path,
                  "' has no 'format' attribute: expected a file written by `winnow prepare` (",
                  known, ")");
    }
    format = file.attr_string("/", "format");
  }
  const auto* entry = formats.find(format);
  TORCH_CHECK(entry != nullptr, "data file '", path,
              "': ", formats.unknown_name_message(escaped_bytes(format)));
  return entry->create(path, context);
}

}  // namespace winnow::data
