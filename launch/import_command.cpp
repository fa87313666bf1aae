// `winnow import`: a PyTorch state dict (torchvision VisionTransformer, nanoGPT GPT) as winnow
// weights with the config that rebuilds the same model (docs/interop.md).
#include <iostream>

#include "data/atomic_file.h"
#include "launch/commands.h"
#include "launch/config.h"
#include "launch/run_setup.h"
#include "launch/stored_model.h"
#include "train/interop_nanogpt.h"
#include "train/interop_state_dict.h"
#include "train/interop_torchvision.h"
#include "train/model_weights.h"

namespace winnow::launch {
namespace po = boost::program_options;

std::pair<std::string, Args> split_positional(const Args& args, const std::string& command) {
  std::vector<std::string> positional;
  Args options;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    const bool flag = a == "--help" || a == "-h" || a.find('=') != std::string::npos;
    if (a.rfind("-", 0) == 0) {
      options.push_back(a);
      if (!flag && i + 1 < args.size()) options.push_back(args[++i]);
    } else {
      positional.push_back(a);
    }
  }
  if (positional.size() > 1)
    throw ConfigError(command + ": expected one input file, got " +
                      std::to_string(positional.size()) + " (" + positional[0] + ", " +
                      positional[1] + ", ...)");
  return {positional.empty() ? std::string() : positional[0], options};
}

namespace {

void print_spec(const train::ModelSpec& s) {
  std::cout << "  model   " << s.kind << ": dim " << s.dim << ", depth " << s.depth << ", heads "
            << s.heads << ", mlp hidden " << static_cast<int64_t>(s.dim * s.mlp_ratio)
            << ", norm_eps " << s.norm_eps;
  if (s.kind == "vit")
    std::cout << ", patch " << s.patch << ", images " << s.image_channels << "x" << s.image_height
              << "x" << s.image_width << ", " << s.num_classes << " classes\n";
  else
    std::cout << ", vocabulary " << s.vocab_size << ", context " << s.context << "\n";
}

// A batch the model accepts: images [2, C, H, W] or tokens [2, T].
torch::Tensor probe_input(const train::ModelSpec& s) {
  if (s.kind == "vit") return torch::randn({2, s.image_channels, s.image_height, s.image_width});
  return torch::randint(s.vocab_size, {2, s.context}, torch::kInt64);
}

}  // namespace

int import_command(const Args& all_args) {
  std::string format, out, ini;
  int64_t heads = 0;
  po::options_description extra("Import");
  extra.add_options()("format", po::value(&format)->value_name("FORMAT"),
                      "torchvision-vit | nanogpt: what the input file holds")(
      "out", po::value(&out)->value_name("FILE"), "the winnow weights file to write (.h5)")(
      "heads", po::value(&heads)->default_value(0),
      "attention heads (not visible in state-dict shapes); 0 = from a nanoGPT ckpt.pt's "
      "model_args.n_head")(
      "ini", po::value(&ini)->value_name("FILE"),
      "also write the stored config as an INI file (for winnow train --config FILE --init-from "
      "OUT.h5)");
  auto [input, args] = split_positional(all_args, "import");
  RunConfig config;
  bool help = false;
  parse_run_config(args, extra, config, help);
  if (help) {
    std::cout
        << "usage: winnow import --format torchvision-vit|nanogpt IN.pt --out OUT.h5 "
           "[--heads N] [--ini FILE] [--section.key=value ...]\n\n"
           "Reads a state dict saved with torch.save (torchvision's VisionTransformer, or\n"
           "nanoGPT's GPT: a state dict or a ckpt.pt with 'model' and 'model_args'), infers the\n"
           "model's shape from the tensor shapes, renames the tensors to winnow's names and\n"
           "writes winnow weights with the effective config. The [model] section is set from\n"
           "the file; other options given here (e.g. --data.train, --data.eval) are stored too.\n"
           "Then: winnow eval --weights OUT.h5 ..., or fine-tune with\n"
           "winnow train --init-from OUT.h5 --config FILE.ini ... (--ini FILE.ini; "
           "docs/interop.md).\n\n"
        << extra << run_options(config) << std::endl;
    return 0;
  }
  if (format != "torchvision-vit" && format != "nanogpt")
    throw ConfigError("--format: expected torchvision-vit or nanogpt, got '" + format + "'");
  if (input.empty()) throw ConfigError("import: expected the input file (IN.pt)");
  if (out.empty()) throw ConfigError("--out: required (the winnow weights file to write)");

  const auto contents = train::read_torch_file(input);
  const auto theirs = train::state_dict_of(contents, input);
  train::ModelSpec spec;
  train::StateDict ours;
  if (format == "torchvision-vit") {
    if (heads <= 0)
      throw ConfigError(
          "--heads: required for torchvision-vit (vit_b_* 12, vit_l_* 16, "
          "vit_h_14 16)");
    spec = train::torchvision_vit_spec(theirs, heads);
    ours = train::vit_from_torchvision(theirs, spec.depth);
  } else {
    if (heads <= 0) heads = train::nanogpt_heads_in(contents);
    if (heads <= 0)
      throw ConfigError("--heads: required (n_head; the file has no model_args.n_head)");
    spec = train::nanogpt_spec(theirs, heads);
    ours = train::gpt_from_nanogpt(theirs, spec.depth);
  }

  auto model = train::make_model(spec);
  train::load_state_dict_into(*model, ours, "'" + input + "' (" + format + ")");
  config.model = spec;
  if (spec.kind == "gpt") config.data.context = spec.context;
  train::save_model_weights(*model, out, to_ini(config));
  if (!ini.empty()) data::write_file_atomically(ini, to_ini(config));

  // What eval and train will build from the stored config must be this model, bit for bit.
  auto stored = load_stored_model(out);
  torch::NoGradGuard no_grad;
  model->eval();
  stored.model->eval();
  const auto probe = probe_input(spec);
  TORCH_CHECK(
      torch::equal(model->forward(probe, {}).logits, stored.model->forward(probe, {}).logits),
      "import: the model rebuilt from ", out,
      "'s stored config computes other logits "
      "than the imported one (a bug: please report it)");

  int64_t parameters = 0;
  for (const auto& p : model->parameters()) parameters += p.numel();
  std::cout << "winnow import: " << input << " (" << format << ", " << theirs.size()
            << " tensors) -> " << out << "\n";
  print_spec(spec);
  std::cout << "  params  " << si(static_cast<double>(parameters)) << "\n";
  if (spec.kind == "vit")
    std::cout << "  note    inputs are used as given: normalise images as the source model "
                 "expects (torchvision: ImageNet mean/std)\n";
  std::cout << "  check   the model rebuilt from the stored config gives identical logits\n";
  return 0;
}

}  // namespace winnow::launch
