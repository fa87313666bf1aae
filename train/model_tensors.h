// A model's tensors by name (parameters, then buffers), and the check that an HDF5 file's /model
// group holds exactly them with the right shapes and dtypes.
#pragma once

#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

#include "data/h5_file.h"
#include "train/model.h"

namespace winnow::train {

// Parameters then buffers, with their dotted names (the /model/<name> datasets).
std::vector<std::pair<std::string, torch::Tensor>> model_tensors(const TransformerModel& model);

// Throws one error listing the missing, unexpected and mis-shaped names when /model in `file`
// does not hold exactly `model`'s tensors; `what` names the file's kind in the message.
void check_stored_model_fits(const data::H5File& file, const TransformerModel& model,
                             const std::string& what);

}  // namespace winnow::train
