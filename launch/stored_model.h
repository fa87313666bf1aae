// The model a winnow weights file (or checkpoint) holds, rebuilt without its data: the stored
// config gives the kind, head count and LayerNorm epsilon, the tensor shapes give the image size,
// classes, vocabulary and context that a run would take from its data.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "launch/config.h"
#include "train/interop_state_dict.h"
#include "train/model.h"
#include "train/model_registry.h"

namespace winnow::launch {

struct StoredModel {
  RunConfig config;       // the stored configuration
  train::ModelSpec spec;  // config.model completed with the shapes of the stored tensors
  std::shared_ptr<train::TransformerModel> model;  // built from spec, backbone weights loaded
  // The file's learned compression components (compress.*, e.g. a predictor's Δθ), by name; not
  // part of `model`.
  train::StateDict components;
};

// Throws naming the option when the stored config and the stored tensors disagree (model.dim,
// model.depth, model.patch, model.mlp_ratio), and load_backbone_weights' error when a tensor
// does not fit.
StoredModel load_stored_model(const std::string& path);

// The config stored with the weights that `args` name with --weights FILE or --weights=FILE (the
// base configuration of eval-like commands); "" when no weights are named.
std::string weights_config_of_args(const std::vector<std::string>& args);

}  // namespace winnow::launch
