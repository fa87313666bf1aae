// `winnow export`: winnow weights as a PyTorch state dict for torchvision's VisionTransformer or
// nanoGPT's GPT, loadable with torch.load + load_state_dict(strict=True) (docs/interop.md).
#include <iostream>

#include "launch/commands.h"
#include "launch/config.h"
#include "launch/stored_model.h"
#include "train/interop_nanogpt.h"
#include "train/interop_state_dict.h"
#include "train/interop_torchvision.h"

namespace winnow::launch {
namespace po = boost::program_options;

int export_command(const Args& all_args) {
  std::string format, out, components = "drop";
  bool bias = true, mask_buffers = false;
  po::options_description options("Export");
  options.add_options()("help,h", "show this help")(
      "format", po::value(&format)->value_name("FORMAT"),
      "torchvision-vit | nanogpt: the PyTorch model the state dict is for")(
      "out", po::value(&out)->value_name("FILE"), "the state dict file to write (.pt)")(
      "components", po::value(&components)->value_name("drop|keep")->default_value(components),
      "learned compression components (compress.*: a predictor's or router's parameters): drop "
      "= the plain backbone, loadable with strict=True; keep = also write them under their winnow "
      "names (load with strict=False, or into a model that has them)")(
      "nanogpt.bias", po::value(&bias)->default_value(bias),
      "nanogpt: GPTConfig.bias; false writes no biases (each must then be all zeros, as after "
      "importing a bias=False model)")(
      "nanogpt.mask_buffers", po::value(&mask_buffers)->default_value(mask_buffers),
      "nanogpt: also write the causal-mask buffers transformer.h.<i>.attn.bias that nanoGPT "
      "registers when PyTorch has no scaled_dot_product_attention (PyTorch < 2.0, e.g. Debian's "
      "1.13)");
  auto [input, args] = split_positional(all_args, "export");
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(options).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw ConfigError(e.what());
  }
  if (vm.count("help")) {
    std::cout << "usage: winnow export --format torchvision-vit|nanogpt IN.h5 --out OUT.pt "
                 "[options]\n\n"
                 "Writes the weights of a winnow ViT or GPT (model.h5, a checkpoint, or `winnow\n"
                 "import` output) as a state dict in torch.save's format, named for torchvision's\n"
                 "VisionTransformer or nanoGPT's GPT. In Python:\n"
                 "  model.load_state_dict(torch.load('OUT.pt'), strict=True)\n"
                 "with the model built for the shape this command prints (docs/interop.md).\n\n"
              << options << std::endl;
    return 0;
  }
  if (format != "torchvision-vit" && format != "nanogpt")
    throw ConfigError("--format: expected torchvision-vit or nanogpt, got '" + format + "'");
  if (components != "drop" && components != "keep")
    throw ConfigError("--components: expected drop or keep, got '" + components + "'");
  if (input.empty()) throw ConfigError("export: expected the winnow weights file (IN.h5)");
  if (out.empty()) throw ConfigError("--out: required (the .pt file to write)");

  const auto stored = load_stored_model(input);
  const auto& s = stored.spec;
  const auto ours = train::model_state_dict(*stored.model);
  train::StateDict theirs;
  std::vector<std::string> notes;
  const std::string kind = format == "torchvision-vit" ? "vit" : "gpt";
  if (s.kind != kind)
    throw ConfigError("--format " + format + ": expected a " + kind + " model, '" + input +
                      "' holds a " + s.kind + " model");
  std::cout << "winnow export: " << input << " -> " << out << " (" << format << ")\n";
  if (format == "torchvision-vit") {
    theirs = train::vit_to_torchvision(ours, s.depth);
    std::cout << "  build   torchvision.models.VisionTransformer(image_size=" << s.image_height
              << ", patch_size=" << s.patch << ", num_layers=" << s.depth
              << ", num_heads=" << s.heads << ", hidden_dim=" << s.dim << ", mlp_dim="
              << train::BlockOptions(s.dim, s.heads).mlp_ratio(s.mlp_ratio).mlp_hidden()
              << ", num_classes=" << s.num_classes << ")\n";
    if (s.image_channels != 3)
      notes.push_back("torchvision's VisionTransformer takes 3 input channels; this model takes " +
                      std::to_string(s.image_channels) + " (replace conv_proj before loading)");
    if (s.norm_eps != train::kTorchvisionNormEps)
      notes.push_back("this model's LayerNorm epsilon is " + std::to_string(s.norm_eps) +
                      "; pass norm_layer=partial(nn.LayerNorm, eps=" + std::to_string(s.norm_eps) +
                      ") to compute the same function");
  } else {
    train::NanoGptExportOptions o;
    o.bias = bias;
    o.causal_mask_buffers = mask_buffers;
    theirs = train::gpt_to_nanogpt(ours, s.depth, o);
    std::cout << "  build   GPT(GPTConfig(block_size=" << s.context
              << ", vocab_size=" << s.vocab_size << ", n_layer=" << s.depth
              << ", n_head=" << s.heads << ", n_embd=" << s.dim
              << ", dropout=0.0, bias=" << (bias ? "True" : "False") << "))\n";
    const int64_t hidden = train::BlockOptions(s.dim, s.heads).mlp_ratio(s.mlp_ratio).mlp_hidden();
    if (hidden != 4 * s.dim)
      notes.push_back("nanoGPT's MLP is 4 * n_embd = " + std::to_string(4 * s.dim) +
                      " wide; this model's is " + std::to_string(hidden));
    if (s.norm_eps != 1e-5)
      notes.push_back("nanoGPT's LayerNorm epsilon is 1e-5; this model's is " +
                      std::to_string(s.norm_eps));
  }
  if (!stored.components.empty()) {
    if (components == "keep") {
      for (const auto& item : stored.components) theirs.push_back(item);
      notes.push_back("kept " + std::to_string(stored.components.size()) +
                      " compression-component tensors (compress.*): load_state_dict(..., "
                      "strict=False) into the plain model");
    } else {
      notes.push_back("dropped " + std::to_string(stored.components.size()) +
                      " compression-component tensors (compress.*; --components keep writes "
                      "them)");
    }
  }
  train::write_torch_state_dict(theirs, out);
  std::cout << "  wrote   " << theirs.size() << " tensors\n";
  for (const auto& note : notes) std::cout << "  note    " << note << "\n";
  return 0;
}

}  // namespace winnow::launch
