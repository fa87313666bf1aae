// Weight interop without Python: the torch.save reader against LibTorch's own on the reference
// fixtures, and winnow -> torchvision/nanoGPT names -> torch file -> winnow round trips that must
// give identical tensors and logits. (The comparison with PyTorch itself is tests/interop.)
#include <gtest/gtest.h>
#include <torch/csrc/jit/serialization/pickle.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "tests/data/test_support.h"
#include "tests/fixture_dir.h"
#include "train/gpt.h"
#include "train/interop_nanogpt.h"
#include "train/interop_state_dict.h"
#include "train/interop_torch_file.h"
#include "train/interop_torchvision.h"
#include "train/vit.h"

using namespace winnow::train;

namespace {

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("winnow_interop_" + std::to_string(::getpid()) + "_" + name))
      .string();
}

using ::winnow::data::testing::error_of;  // "<no error>" when nothing throws

// Every parameter random, so a tensor mapped to the wrong place changes the logits.
void randomise(TransformerModel& model, uint64_t seed) {
  torch::manual_seed(seed);
  torch::NoGradGuard no_grad;
  for (auto& p : model.parameters()) p.copy_(torch::randn_like(p) * 0.3);
}

std::shared_ptr<TransformerModel> small_model(const std::string& kind, double norm_eps = 1e-5) {
  ModelSpec spec;
  spec.kind = kind;
  spec.dim = 24;
  spec.depth = 2;
  spec.heads = 3;
  spec.mlp_ratio = kind == "gpt" ? 4.0 : 2.5;
  spec.norm_eps = norm_eps;
  spec.patch = 4;
  spec.image_channels = 3, spec.image_height = 12, spec.image_width = 12, spec.num_classes = 5;
  spec.vocab_size = 40, spec.context = 10;
  return make_model(spec);
}

torch::Tensor input_for(const std::string& kind) {
  torch::manual_seed(11);
  if (kind == "vit") return torch::randn({2, 3, 12, 12});  // [B, C, H, W]
  return torch::randint(40, {2, 9}, torch::kInt64);        // [B, T]
}

torch::Tensor logits_of(TransformerModel& model, const torch::Tensor& input) {
  torch::NoGradGuard no_grad;
  return model.forward(input, {}).logits;
}

void expect_identical(const StateDict& a, const StateDict& b) {
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, tensor] : a) {
    auto other = find_tensor(b, name);
    ASSERT_TRUE(other.defined()) << name;
    EXPECT_TRUE(torch::equal(tensor, other)) << name;
  }
}

std::vector<char> bytes_of(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>()};
}

}  // namespace

TEST(InteropTorchFile, ReadsTheFixturesAsLibTorchDoes) {
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(winnow::testing::fixture_dir())) {
    if (entry.path().extension() != ".pt") continue;
    const std::string path = entry.path().string();
    const auto reference = torch::pickle_load(bytes_of(path)).toGenericDict();  // plain dicts
    const auto ours = state_dict_of(read_torch_file(path), path);
    ASSERT_EQ(ours.size(), reference.size()) << path;
    size_t i = 0;
    for (const auto& item : reference) {  // same order, names, dtypes and values
      EXPECT_EQ(ours[i].first, item.key().toStringRef()) << path;
      EXPECT_TRUE(torch::equal(ours[i].second, item.value().toTensor()))
          << path << " " << ours[i].first;
      EXPECT_EQ(ours[i].second.scalar_type(), item.value().toTensor().scalar_type());
      ++i;
    }
    ++files;
  }
  EXPECT_GE(files, 5);
}

TEST(InteropTorchFile, WriteThenReadKeepsOrderDtypesAndValues) {
  const auto matrix = torch::arange(12, torch::kFloat64).reshape({3, 4});
  StateDict state = {{"z.weight", torch::randn({2, 3})},
                     {"a.view", matrix.t()},  // non-contiguous
                     {"m.count", torch::arange(5, torch::kInt64)},
                     {"k.mask", torch::tensor({true, false, true})},
                     {"h.half", torch::randn({4}).to(torch::kFloat16)}};
  const auto path = temp_path("write.pt");
  write_torch_state_dict(state, path);
  const auto back = state_dict_of(read_torch_file(path), path);
  ASSERT_EQ(back.size(), state.size());
  for (size_t i = 0; i < state.size(); ++i) {
    EXPECT_EQ(back[i].first, state[i].first);
    EXPECT_EQ(back[i].second.scalar_type(), state[i].second.scalar_type());
    EXPECT_TRUE(torch::equal(back[i].second, state[i].second)) << state[i].first;
  }
  std::remove(path.c_str());
}

TEST(InteropTorchFile, RejectsFilesThatAreNotTorchZipArchives) {
  const auto path = temp_path("not_torch.pt");
  std::ofstream(path) << "not a zip";
  EXPECT_NE(error_of([&] { read_torch_file(path); }).find("zip format of torch.save"),
            std::string::npos);
  std::remove(path.c_str());
}

TEST(InteropVit, TorchvisionRoundTripGivesIdenticalTensorsAndLogits) {
  auto model = small_model("vit", kTorchvisionNormEps);
  randomise(*model, 1);
  const auto ours = model_state_dict(*model);
  const auto path = temp_path("vit.pt");
  write_torch_state_dict(vit_to_torchvision(ours, 2), path);

  const auto theirs = state_dict_of(read_torch_file(path), path);
  EXPECT_TRUE(find_tensor(theirs, "encoder.layers.encoder_layer_1.self_attention.in_proj_weight")
                  .defined());
  EXPECT_TRUE(find_tensor(theirs, "heads.head.bias").defined());
  const auto spec = torchvision_vit_spec(theirs, 3);
  EXPECT_EQ(spec.dim, 24);
  EXPECT_EQ(spec.depth, 2);
  EXPECT_EQ(spec.patch, 4);
  EXPECT_EQ(spec.image_height, 12);
  EXPECT_EQ(spec.num_classes, 5);
  EXPECT_EQ(spec.norm_eps, kTorchvisionNormEps);
  auto back = make_model(spec);
  load_state_dict_into(*back, vit_from_torchvision(theirs, spec.depth), path);
  expect_identical(ours, model_state_dict(*back));
  EXPECT_TRUE(
      torch::equal(logits_of(*model, input_for("vit")), logits_of(*back, input_for("vit"))));
  std::remove(path.c_str());
}

TEST(InteropVit, ReadsOlderTorchvisionMlpNames) {
  auto model = small_model("vit", kTorchvisionNormEps);
  randomise(*model, 2);
  StateDict old_names;
  for (auto [name, tensor] : vit_to_torchvision(model_state_dict(*model), 2)) {
    for (const auto& [now, before] :
         {std::pair<std::string, std::string>{".mlp.0.", ".mlp.linear_1."},
          {".mlp.3.", ".mlp.linear_2."}}) {
      const auto at = name.find(now);
      if (at != std::string::npos)
        name = name.substr(0, at) + before + name.substr(at + now.size());
    }
    old_names.emplace_back(name, tensor);
  }
  auto back = make_model(torchvision_vit_spec(old_names, 3));
  load_state_dict_into(*back, vit_from_torchvision(old_names, 2), "old names");
  expect_identical(model_state_dict(*model), model_state_dict(*back));
}

TEST(InteropVit, UnsupportedVariantsAreErrorsThatNameThem) {
  auto theirs = vit_to_torchvision(model_state_dict(*small_model("vit")), 2);
  auto with_extra = theirs;
  with_extra.emplace_back("encoder.extra.weight", torch::zeros({3}));
  EXPECT_NE(error_of([&] { vit_from_torchvision(with_extra, 2); }).find("encoder.extra.weight"),
            std::string::npos);
  auto with_representation = theirs;
  with_representation.emplace_back("heads.pre_logits.weight", torch::zeros({8, 24}));
  EXPECT_NE(error_of([&] { torchvision_vit_spec(with_representation, 3); }).find("representation"),
            std::string::npos);
  EXPECT_NE(error_of([&] { torchvision_vit_spec(theirs, 5); }).find("--heads"), std::string::npos);
  StateDict missing(theirs.begin() + 1, theirs.end());
  EXPECT_NE(error_of([&] { vit_from_torchvision(missing, 2); }).find(theirs.front().first),
            std::string::npos);
}

TEST(InteropVit, NormEpsOptionChangesTheFunction) {
  // Small embeddings: the first LayerNorm's input variance is ~1e-6, where the epsilon matters.
  auto a = small_model("vit", 1e-5), b = small_model("vit", 1e-6);
  randomise(*a, 3);
  {
    torch::NoGradGuard no_grad;
    auto* vit = dynamic_cast<VisionTransformerImpl*>(a.get());
    for (auto* p : {&vit->patch_embed->proj->weight, &vit->patch_embed->proj->bias, &vit->cls_token,
                    &vit->pos_embed})
      p->mul_(3e-3);
  }
  load_state_dict_into(*b, model_state_dict(*a), "a");
  const auto x = input_for("vit");
  const double difference = (logits_of(*a, x) - logits_of(*b, x)).abs().max().item<double>();
  EXPECT_GT(difference, 1e-2 * logits_of(*b, x).abs().max().item<double>());
}

TEST(InteropGpt, NanoGptRoundTripGivesIdenticalTensorsAndLogits) {
  auto model = small_model("gpt");
  randomise(*model, 4);
  const auto ours = model_state_dict(*model);
  const auto path = temp_path("gpt.pt");
  write_torch_state_dict(gpt_to_nanogpt(ours, 2, {}), path);
  const auto theirs = state_dict_of(read_torch_file(path), path);
  const auto wpe = find_tensor(theirs, "transformer.wpe.weight");
  ASSERT_TRUE(wpe.defined());
  EXPECT_EQ(wpe.sizes(), torch::IntArrayRef({10, 24}));  // [T, C]: pos_embed without its 1
  EXPECT_TRUE(torch::equal(find_tensor(theirs, "lm_head.weight"),
                           find_tensor(theirs, "transformer.wte.weight")));
  const auto spec = nanogpt_spec(theirs, 3);
  EXPECT_EQ(spec.vocab_size, 40);
  EXPECT_EQ(spec.context, 10);
  EXPECT_EQ(spec.mlp_ratio, 4.0);
  auto back = make_model(spec);
  load_state_dict_into(*back, gpt_from_nanogpt(theirs, spec.depth), path);
  expect_identical(ours, model_state_dict(*back));
  EXPECT_TRUE(
      torch::equal(logits_of(*model, input_for("gpt")), logits_of(*back, input_for("gpt"))));
  std::remove(path.c_str());
}

TEST(InteropGpt, BiasFreeExportWithMaskBuffersRoundTrips) {
  auto model = small_model("gpt");
  randomise(*model, 5);
  {
    torch::NoGradGuard no_grad;
    for (auto& item : model->named_parameters())
      if (item.key().size() > 5 && item.key().substr(item.key().size() - 5) == ".bias")
        item.value().zero_();
  }
  NanoGptExportOptions options;
  options.bias = false;
  options.causal_mask_buffers = true;
  const auto theirs = gpt_to_nanogpt(model_state_dict(*model), 2, options);
  EXPECT_FALSE(find_tensor(theirs, "transformer.h.0.attn.c_attn.bias").defined());
  EXPECT_FALSE(find_tensor(theirs, "transformer.ln_f.bias").defined());
  const auto mask = find_tensor(theirs, "transformer.h.1.attn.bias");  // [1, 1, T, T]
  ASSERT_TRUE(mask.defined());
  EXPECT_TRUE(torch::equal(mask[0][0], torch::ones({10, 10}).tril()));
  auto back = make_model(nanogpt_spec(theirs, 3));
  load_state_dict_into(*back, gpt_from_nanogpt(theirs, 2), "bias-free");  // biases come back as 0
  expect_identical(model_state_dict(*model), model_state_dict(*back));
}

TEST(InteropGpt, RefusesWhatWouldChangeTheFunction) {
  auto model = small_model("gpt");
  randomise(*model, 6);  // non-zero biases
  NanoGptExportOptions no_bias;
  no_bias.bias = false;
  EXPECT_NE(error_of([&] {
              gpt_to_nanogpt(model_state_dict(*model), 2, no_bias);
            }).find("blocks.0.norm1.bias"),
            std::string::npos);

  auto theirs = gpt_to_nanogpt(model_state_dict(*model), 2, {});
  auto untied = theirs;
  for (auto& [name, tensor] : untied)
    if (name == "lm_head.weight") tensor = tensor + 1.0;
  EXPECT_NE(error_of([&] { gpt_from_nanogpt(untied, 2); }).find("lm_head.weight differs"),
            std::string::npos);
  auto bad_mask = theirs;
  bad_mask.emplace_back("transformer.h.0.attn.bias", torch::ones({1, 1, 10, 10}));
  EXPECT_NE(error_of([&] { gpt_from_nanogpt(bad_mask, 2); }).find("causal mask"),
            std::string::npos);
}

TEST(InteropStateDict, SpecOfStateDictDescribesTheModel) {
  for (const std::string kind : {"vit", "gpt"}) {
    auto model = small_model(kind);
    const auto spec = spec_of_state_dict(model_state_dict(*model), kind, 3, 1e-5);
    auto rebuilt = make_model(spec);
    EXPECT_NO_THROW(load_state_dict_into(*rebuilt, model_state_dict(*model), kind)) << kind;
    EXPECT_EQ(spec.depth, 2) << kind;
  }
}

TEST(InteropStateDict, MlpRatioGivesTheExactHiddenWidthAfterPrinting) {
  for (const auto& [dim, hidden] : std::vector<std::pair<int64_t, int64_t>>{
           {768, 3072}, {768, 1000}, {24, 80}, {7, 100}, {1000, 999}, {384, 1536}}) {
    const double ratio = mlp_ratio_for(dim, hidden);
    std::ostringstream printed;
    printed.precision(17);
    printed << ratio;  // as to_ini writes model.mlp_ratio
    const double parsed = std::stod(printed.str());
    EXPECT_EQ(BlockOptions(dim, 1).mlp_ratio(parsed).mlp_hidden(), hidden) << dim << " " << hidden;
  }
}
