// PyTorch `torch.save` files: reading the zip format (its pickle is read by
// train/torch_pickle_reader.h: the subset state dicts and training checkpoints use) into IValues,
// and writing a flat name -> tensor dict that `torch.load` returns.
#pragma once

#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

namespace winnow::train {

// A state dict: parameter names in their order, each with its tensor.
using StateDict = std::vector<std::pair<std::string, torch::Tensor>>;

// Reads a file written by `torch.save` (the zip format, PyTorch >= 1.6). Dicts (also
// collections.OrderedDict, which LibTorch's own torch::pickle_load rejects before 2.6: pytorch
// issue 100741) become GenericDicts, lists GenericLists, tuples Tuples, tensors and parameters
// Tensors (their storages read from the archive), numbers, strings, booleans and None themselves.
// Objects of other classes become the string "<module.Class object>". A damaged or hostile file is
// an error naming the file (bytes from it shown escaped), never a crash.
c10::IValue read_torch_file(const std::string& path);

// The state dict inside a loaded torch file: the top-level dict of tensors, or the dict under
// "model" / "state_dict" (training checkpoints such as nanoGPT's ckpt.pt). The prefixes
// "_orig_mod." (torch.compile) and "module." (DistributedDataParallel) are removed from names.
StateDict state_dict_of(const c10::IValue& file_contents, const std::string& path);

// Writes `state` in torch.save's zip format: `torch.load` (also with weights_only=True, the default
// from PyTorch 2.6) returns a dict in this order that `Module.load_state_dict(strict=True)`
// accepts. torch::pickle_save is not used: its dicts carry a torch.jit._pickle.restore_type_tag
// that weights_only loading refuses. Written via a temporary file and a rename: a failed write
// (disk full) throws naming the file and the reason, and leaves no partial file.
void write_torch_state_dict(const StateDict& state, const std::string& path);

// The tensor named `name`, or an undefined tensor.
torch::Tensor find_tensor(const StateDict& state, const std::string& name);

}  // namespace winnow::train
