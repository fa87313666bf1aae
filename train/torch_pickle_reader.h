// The pickle inside a torch.save file (data.pkl), read into IValues: the subset of Python's pickle
// protocol (0-5) that state dicts and training checkpoints use. The input is untrusted: every
// opcode checks the stack, the memo and its operands before using them, nesting is bounded, and
// no Python object is ever built — a malformed or hostile pickle is an error, never a crash.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <string>

namespace winnow::train {

// Loads the storage a persistent id names ('storage', torch.<Type>Storage, key, location, numel):
// a 1-d CPU tensor of `numel` elements of `dtype` (numel >= 0 is checked before the call). It
// must throw (naming the key) when the archive has no such record or its size differs.
using TorchStorageLoader =
    std::function<torch::Tensor(const std::string& key, c10::ScalarType dtype, int64_t numel)>;

// Limits that keep a hostile pickle from exhausting the stack or memory.
struct TorchPickleLimits {
  int64_t max_depth = 64;            // nesting of tuples, lists and dicts
  int64_t max_values = 100'000'000;  // elements materialised into IValues, all told
};

// Reads `pickle` (the bytes of data.pkl). `source` names the file in error messages. Dicts (also
// collections.OrderedDict) become GenericDicts, lists GenericLists, tuples Tuples, tensors and
// parameters Tensors (storages via `load_storage`), numbers, strings, booleans and None
// themselves; objects of other classes become the string "<module.Class object>". Recursive
// structures (a container modified after it was placed in another) are refused.
c10::IValue read_torch_pickle(const std::string& pickle, const std::string& source,
                              const TorchStorageLoader& load_storage,
                              const TorchPickleLimits& limits = {});

}  // namespace winnow::train
