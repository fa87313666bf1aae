// The pickle (data.pkl) of a flat name -> tensor dict, as torch.save writes it, so that torch.load
// also reads it with weights_only=True (the default from PyTorch 2.6).
#pragma once

#include <string>

#include "train/interop_torch_file.h"

namespace winnow::train {

// Protocol 2: a dict whose i-th entry is state[i].first -> a tensor rebuilt by
// torch._utils._rebuild_tensor_v2 from the storage with persistent id
// ('storage', torch.<Type>Storage, "<i>", 'cpu', numel). Tensors must be contiguous CPU tensors
// (their storages are written as archive records data/<i> by the caller). torch::pickle_save is
// not used: its dicts carry a torch.jit._pickle.restore_type_tag that weights_only refuses.
std::string state_dict_pickle(const StateDict& state);

}  // namespace winnow::train
