// nanoGPT's GPT (karpathy/nanoGPT model.py) <-> winnow's GPT: the name mapping and the model spec
// a nanoGPT state dict implies. Both are pre-LN decoders with exact GELU, LayerNorm eps 1e-5,
// learned positions and a head tied to the token embedding (docs/interop.md).
#pragma once

#include <vector>

#include "train/interop_mapping.h"
#include "train/model_registry.h"

namespace winnow::train {

// One row per tensor of a `depth`-layer model. Biases are optional rows (nanoGPT's bias=False
// has none; winnow always has them, zero after import). wpe.weight [T, C] is winnow's
// pos_embed [1, T, C]. The tied lm_head.weight is handled beside the table.
std::vector<NameMapping> nanogpt_mapping(int64_t depth);

// The winnow GPT that holds a nanoGPT state dict: vocabulary, width, context (block_size),
// depth and MLP width from the shapes; `heads` given (c_attn's [3C, C] is the same for every
// head count).
ModelSpec nanogpt_spec(const StateDict& nanogpt, int64_t heads);

// n_head from a nanoGPT training checkpoint's model_args (ckpt.pt), or 0 when the file has none.
int64_t nanogpt_heads_in(const c10::IValue& file_contents);

// nanoGPT names -> winnow names. lm_head.weight must equal transformer.wte.weight (tied);
// the causal-mask buffers h.<i>.attn.bias that nanoGPT registers on PyTorch < 2.0 must be the
// lower-triangular ones they always are, and are dropped (winnow builds its mask).
StateDict gpt_from_nanogpt(const StateDict& nanogpt, int64_t depth);

struct NanoGptExportOptions {
  bool bias = true;                  // nanoGPT's GPTConfig.bias
  bool causal_mask_buffers = false;  // write h.<i>.attn.bias, as PyTorch < 2.0 nanoGPT expects
};

// winnow names -> nanoGPT names, loadable with GPT.load_state_dict(strict=True).
StateDict gpt_to_nanogpt(const StateDict& ours, int64_t depth, const NanoGptExportOptions& options);

}  // namespace winnow::train
