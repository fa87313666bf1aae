// Data files: opening a `winnow prepare` HDF5 file as the Dataset its `format` attribute names,
// through the registry of data-file formats.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "data/dataset.h"
#include "data/registry.h"

namespace winnow::data {

// Formats by the file's `format` attribute: winnow.images (ImageDataset), winnow.tokens
// (TokenDataset, served as windows of `context` tokens). A factory gets the file's path.
using DataFileRegistry =
    Registry<std::shared_ptr<Dataset>, const std::string& /*path*/, int64_t /*context*/>;
const DataFileRegistry& data_file_formats();

// Opens the HDF5 data file `path` as the dataset of its format. Errors name the file; a missing
// or unknown format attribute lists the known formats.
std::shared_ptr<Dataset> open_data_file(const std::string& path, int64_t context);

}  // namespace winnow::data
