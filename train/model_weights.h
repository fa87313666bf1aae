// Model weights in HDF5: a checkpoint without optimizer state (/meta, /model/<dotted parameter
// name>, checksums; train/checkpoint.h), written atomically, loaded with a check of every name,
// shape, dtype and checksum against the model.
#pragma once

#include <string>
#include <vector>

#include "train/model.h"

namespace winnow::train {

// Writes `path` via a temporary file in the same folder, fsync and rename: a crash never leaves a
// partial file under `path`. `config_ini` is stored as the /meta `config` attribute.
void save_model_weights(const TransformerModel& model, const std::string& path,
                        const std::string& config_ini);

// Loads every parameter and buffer from a checkpoint or weights file (also the checkpoints of a
// run, ignoring their optimizer state, and the format winnow.weights of winnow 0.1). A mismatch
// throws one error listing the missing, unexpected and mis-shaped names.
void load_model_weights(TransformerModel& model, const std::string& path);

// What load_backbone_weights did with the compression components' tensors (compress.*).
struct BackboneLoad {
  int64_t backbone_tensors = 0;                 // loaded (parameters and buffers)
  std::vector<std::string> loaded_components;   // in the file and the model: loaded
  std::vector<std::string> fresh_components;    // only in the model: keep their initialisation
  std::vector<std::string> ignored_components;  // only in the file: not loaded
};

// Loads a model's backbone from a checkpoint or weights file written for the same backbone with
// any (or no) compression components: the start of fine-tuning learned scorers on a dense model
// (`train --init-from`). Every backbone tensor must be in the file with its shape and dtype
// (one error lists the missing, unexpected and mis-shaped names); a checkpoint's checksums are
// verified first. Components are matched by name as the result says; a component tensor with
// another shape than the model's throws.
BackboneLoad load_backbone_weights(TransformerModel& model, const std::string& path);

// The `config` text stored by save_model_weights.
std::string read_weights_config(const std::string& path);

}  // namespace winnow::train
