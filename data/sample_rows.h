// Reading the samples of a data file (the rows of '/images', '/tokens', ...) chunk row by chunk
// row, so that a damaged region of the file is reported as the samples it holds.
#pragma once

#include <string>

#include "data/h5_file.h"

namespace winnow::data {

// Reads dataset `name` of `file` whole; its dimension 0 indexes samples, called `samples` in
// messages ("images", "tokens"). Before reading, checks that the file stores all of it
// (H5File::check_fully_stored). Reads one row of chunks at a time; a read that fails throws an
// error naming the file, the dataset and the sample range of that chunk row, e.g.
//   data file 'train.h5' dataset '/images': cannot read images [2048, 4096) of 60000: <why>;
//   the file is damaged in that range (re-create it with `winnow prepare`, or restore a copy)
torch::Tensor read_sample_rows(const H5File& file, const std::string& name,
                               const std::string& samples);

}  // namespace winnow::data
