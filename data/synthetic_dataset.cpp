// Implements the synthetic image and token datasets from keyed hashes.
#include "data/synthetic_dataset.h"

#include <cmath>
#include <numeric>
#include <sstream>

#include "data/keyed_random.h"

namespace winnow::data {
namespace {

// Domains keep the different uses of one seed independent.
constexpr uint64_t kPrototypeDomain = 1;
constexpr uint64_t kLabelDomain = 2;
constexpr uint64_t kNoiseDomain = 3;
constexpr uint64_t kChainDomain = 4;

}  // namespace

SyntheticImageDataset::SyntheticImageDataset(SyntheticImageOptions options) : options_(options) {
  TORCH_CHECK(options_.size >= 1, "synthetic images: expected size >= 1, got ", options_.size);
  TORCH_CHECK(options_.channels >= 1 && options_.height >= 1 && options_.width >= 1,
              "synthetic images: expected channels, height, width >= 1, got [", options_.channels,
              ", ", options_.height, ", ", options_.width, "]");
  TORCH_CHECK(options_.num_classes >= 1, "synthetic images: expected num_classes >= 1, got ",
              options_.num_classes);
  TORCH_CHECK(options_.noise >= 0 && std::isfinite(options_.noise),
              "synthetic images: expected noise >= 0, got ", options_.noise);
  const int64_t pixels = options_.channels * options_.height * options_.width;
  prototypes_ =
      torch::empty({options_.num_classes, options_.channels, options_.height, options_.width},
                   torch::kFloat32);  // [K, C, H, W]
  auto* data = prototypes_.data_ptr<float>();
  for (int64_t k = 0; k < options_.num_classes; ++k) {
    for (int64_t p = 0; p < pixels; ++p) {
      const uint64_t h = hash_keys(
          {options_.seed, kPrototypeDomain, static_cast<uint64_t>(k), static_cast<uint64_t>(p)});
      data[k * pixels + p] = (h & 1) ? 1.0f : -1.0f;
    }
  }
}

uint64_t SyntheticImageDataset::sample_key(int64_t sample_id) const {
  return static_cast<uint64_t>(sample_id) + (options_.split << 40);
}

int64_t SyntheticImageDataset::label_of(int64_t sample_id) const {
  const uint64_t h = hash_keys({options_.seed, kLabelDomain, sample_key(sample_id)});
  return static_cast<int64_t>(h % static_cast<uint64_t>(options_.num_classes));
}

Batch SyntheticImageDataset::fetch(const std::vector<int64_t>& sample_ids) const {
  check_sample_ids(sample_ids, size(), "synthetic images");
  const int64_t batch_size = static_cast<int64_t>(sample_ids.size());
  const int64_t pixels = options_.channels * options_.height * options_.width;
  // Uniform on [-a, a] has std a / sqrt(3).
  const double amplitude = options_.noise * std::sqrt(3.0);
  Batch batch;
  batch.inputs = torch::empty({batch_size, options_.channels, options_.height, options_.width},
                              torch::kFloat32);               // [B, C, H, W]
  batch.targets = torch::empty({batch_size}, torch::kInt64);  // [B]
  auto* inputs = batch.inputs.data_ptr<float>();
  auto* targets = batch.targets.data_ptr<int64_t>();
  const auto* prototypes = prototypes_.data_ptr<float>();
  for (int64_t b = 0; b < batch_size; ++b) {
    const int64_t label = label_of(sample_ids[b]);
    targets[b] = label;
    const uint64_t noise_key = hash_keys({options_.seed, kNoiseDomain, sample_key(sample_ids[b])});
    for (int64_t p = 0; p < pixels; ++p) {
      const double u = unit_interval(hash_keys({noise_key, static_cast<uint64_t>(p)}));
      inputs[b * pixels + p] =
          prototypes[label * pixels + p] + static_cast<float>(amplitude * (2.0 * u - 1.0));
    }
  }
  batch.sample_ids = torch::tensor(sample_ids, torch::kInt64).view({-1});  // [B]
  return batch;
}

std::string SyntheticImageDataset::describe() const {
  std::ostringstream out;
  out << "synthetic images (seed " << options_.seed << ", split " << options_.split
      << "): " << size() << " x [" << options_.channels << ", " << options_.height << ", "
      << options_.width << "], " << options_.num_classes << " classes, noise " << options_.noise;
  return out.str();
}

torch::Tensor synthetic_token_stream(const SyntheticTokenOptions& options) {
  TORCH_CHECK(options.num_windows >= 1, "synthetic tokens: expected num_windows >= 1, got ",
              options.num_windows);
  TORCH_CHECK(options.vocab_size >= 2 && options.vocab_size <= (int64_t{1} << 31),
              "synthetic tokens: expected vocab_size in [2, 2^31], got ", options.vocab_size);
  TORCH_CHECK(options.context_length >= 1, "synthetic tokens: expected context_length >= 1, got ",
              options.context_length);
  TORCH_CHECK(options.noise >= 0 && options.noise <= 1,
              "synthetic tokens: expected noise in [0, 1], got ", options.noise);
  const uint64_t vocab = static_cast<uint64_t>(options.vocab_size);
  SplitMix64 stream(hash_keys({options.seed, kChainDomain}));
  // successor: a random permutation of the vocabulary (Fisher-Yates), so every token has one
  // likely next token and the chain visits the whole vocabulary.
  std::vector<int32_t> successor(vocab);
  std::iota(successor.begin(), successor.end(), 0);
  for (uint64_t i = vocab - 1; i > 0; --i) std::swap(successor[i], successor[stream.below(i + 1)]);
  // Another split draws its own tokens from the same chain.
  if (options.split != 0)
    stream = SplitMix64(hash_keys({options.seed, kChainDomain, options.split}));

  const int64_t length = options.num_windows * options.context_length + 1;
  torch::Tensor tokens = torch::empty({length}, torch::kInt32);  // [num_windows * T + 1]
  auto* data = tokens.data_ptr<int32_t>();
  data[0] = static_cast<int32_t>(stream.below(vocab));
  for (int64_t t = 1; t < length; ++t) {
    data[t] = stream.uniform() < options.noise ? static_cast<int32_t>(stream.below(vocab))
                                               : successor[static_cast<size_t>(data[t - 1])];
  }
  return tokens;
}

std::shared_ptr<TokenDataset> make_synthetic_token_dataset(const SyntheticTokenOptions& options) {
  std::ostringstream name;
  name << "synthetic tokens (seed " << options.seed << ", split " << options.split << ", noise "
       << options.noise << ")";
  return std::make_shared<TokenDataset>(synthetic_token_stream(options), options.vocab_size,
                                        options.context_length, name.str());
}

}  // namespace winnow::data
