// Model weights in HDF5: a checkpoint without optimizer state (/meta, /model/<dotted parameter
// name>, checksums; train/checkpoint.h), written atomically, loaded with a check of every name,
// shape, dtype and checksum against the model.
#pragma once

#include <string>

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

// The `config` text stored by save_model_weights.
std::string read_weights_config(const std::string& path);

}  // namespace winnow::train
