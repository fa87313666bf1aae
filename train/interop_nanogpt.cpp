// nanoGPT GPT interop. Names and shapes are those of karpathy/nanoGPT model.py (GPT, Block,
// CausalSelfAttention, MLP, LayerNorm with an optional bias).
#include "train/interop_nanogpt.h"

#include "train/interop_state_dict.h"

namespace winnow::train {
namespace {

const char* kFormat = "nanogpt";

std::string layer_prefix(int64_t i) {
  return "transformer.h." + std::to_string(i) + ".";
}

// "transformer.h.<i>.attn.bias": the [1, 1, T, T] causal mask buffer.
bool is_mask_buffer(const std::string& name) {
  const std::string head = "transformer.h.", tail = ".attn.bias";
  return name.size() > head.size() + tail.size() && name.rfind(head, 0) == 0 &&
         name.compare(name.size() - tail.size(), tail.size(), tail) == 0 &&
         name.find_first_not_of("0123456789", head.size()) == name.size() - tail.size();
}

torch::Tensor causal_mask(int64_t context) {  // [1, 1, T, T]
  return torch::ones({context, context}).tril().view({1, 1, context, context});
}

}  // namespace

std::vector<NameMapping> nanogpt_mapping(int64_t depth) {
  std::vector<NameMapping> rows = {
      {"transformer.wte.weight", "tok_embed.weight"},
      {"transformer.wpe.weight", "pos_embed", /*drop_leading_one=*/true},
  };
  auto layer = [&](const std::string& theirs, const std::string& ours) {
    rows.push_back({theirs + ".weight", ours + ".weight"});
    rows.push_back({theirs + ".bias", ours + ".bias", false, /*optional_bias=*/true});
  };
  for (int64_t i = 0; i < depth; ++i) {
    const std::string t = layer_prefix(i), o = "blocks." + std::to_string(i) + ".";
    layer(t + "ln_1", o + "norm1");
    layer(t + "attn.c_attn", o + "attn.qkv");
    layer(t + "attn.c_proj", o + "attn.proj");
    layer(t + "ln_2", o + "norm2");
    layer(t + "mlp.c_fc", o + "mlp.fc1");
    layer(t + "mlp.c_proj", o + "mlp.fc2");
  }
  layer("transformer.ln_f", "norm");
  return rows;
}

ModelSpec nanogpt_spec(const StateDict& nanogpt, int64_t heads) {
  const std::string what = "nanogpt state dict";
  const auto wte = require_tensor(nanogpt, "transformer.wte.weight", what);  // [V, C]
  const auto wpe = require_tensor(nanogpt, "transformer.wpe.weight", what);  // [T, C]
  TORCH_CHECK(wte.dim() == 2 && wpe.dim() == 2 && wte.size(1) == wpe.size(1), what,
              ": expected transformer.wte.weight [V, C] and transformer.wpe.weight [T, C], got ",
              wte.sizes(), " and ", wpe.sizes());
  ModelSpec spec;
  spec.kind = "gpt";
  spec.vocab_size = wte.size(0);
  spec.dim = wte.size(1);
  spec.context = wpe.size(0);
  spec.depth = count_blocks(nanogpt, "transformer.h.", ".ln_1.weight");
  TORCH_CHECK(spec.depth > 0, what, ": expected transformer.h.0.ln_1.weight");
  const auto fc = require_tensor(nanogpt, layer_prefix(0) + "mlp.c_fc.weight", what);  // [4C, C]
  spec.mlp_ratio = mlp_ratio_for(spec.dim, fc.size(0));
  TORCH_CHECK(heads > 0 && spec.dim % heads == 0, what, ": expected --heads (n_head) dividing ",
              "n_embd ", spec.dim,
              " (GPT-2: 12 for n_embd 768, 16 for 1024, 20 for 1280, 25 "
              "for 1600), got ",
              heads);
  spec.heads = heads;
  spec.norm_eps = 1e-5;  // nanoGPT's LayerNorm
  return spec;
}

int64_t nanogpt_heads_in(const c10::IValue& contents) {
  if (!contents.isGenericDict()) return 0;
  auto dict = contents.toGenericDict();
  auto args = dict.find(c10::IValue("model_args"));
  if (args == dict.end() || !args->value().isGenericDict()) return 0;
  auto model_args = args->value().toGenericDict();
  auto heads = model_args.find(c10::IValue("n_head"));
  return heads != model_args.end() && heads->value().isInt() ? heads->value().toInt() : 0;
}

StateDict gpt_from_nanogpt(const StateDict& nanogpt, int64_t depth) {
  const auto wte = require_tensor(nanogpt, "transformer.wte.weight", "nanogpt state dict");
  const auto head = find_tensor(nanogpt, "lm_head.weight");
  TORCH_CHECK(!head.defined() || torch::equal(head, wte),
              "nanogpt state dict: lm_head.weight differs from transformer.wte.weight; winnow's "
              "GPT ties its head to the token embedding as nanoGPT does");
  for (const auto& [name, tensor] : nanogpt) {
    if (!is_mask_buffer(name)) continue;
    const int64_t context = tensor.size(-1);
    TORCH_CHECK(tensor.dim() == 4 && torch::equal(tensor.to(torch::kFloat32), causal_mask(context)),
                "nanogpt state dict: expected ", name,
                " to be the causal mask buffer "
                "tril(ones(T, T)) [1, 1, T, T], got another tensor ",
                tensor.sizes());
  }
  return import_by_mapping(
      nanogpt, nanogpt_mapping(depth),
      [](const std::string& name) { return name == "lm_head.weight" || is_mask_buffer(name); },
      kFormat);
}

StateDict gpt_to_nanogpt(const StateDict& ours, int64_t depth,
                         const NanoGptExportOptions& options) {
  StateDict theirs = export_by_mapping(ours, nanogpt_mapping(depth), options.bias, kFormat);
  theirs.emplace_back("lm_head.weight", require_tensor(ours, "tok_embed.weight", "winnow gpt"));
  if (options.causal_mask_buffers) {
    const auto context = require_tensor(ours, "pos_embed", "winnow gpt").size(1);
    for (int64_t i = 0; i < depth; ++i)
      theirs.emplace_back(layer_prefix(i) + "attn.bias", causal_mask(context));
  }
  return theirs;
}

}  // namespace winnow::train
