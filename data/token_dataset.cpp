// Implements TokenDataset: window arithmetic over an in-memory token stream.
#include "data/token_dataset.h"

#include <sstream>

namespace winnow::data {

TokenDataset::TokenDataset(const std::string& path, int64_t context_length)
    : context_length_(context_length), name_(path) {
  TokenFileContents contents = read_token_file(path);
  tokens_ = contents.tokens.contiguous();
  vocab_size_ = contents.vocab_size;
  num_documents_ = contents.doc_offsets.size(0) - 1;
  init();
}

TokenDataset::TokenDataset(torch::Tensor tokens, int64_t vocab_size, int64_t context_length,
                           std::string name)
    : vocab_size_(vocab_size), context_length_(context_length), name_(std::move(name)) {
  TORCH_CHECK(tokens.defined() && tokens.dim() == 1 && !tokens.is_floating_point(),
              "token dataset '", name_, "': expected a 1-d integer token tensor, got ",
              tokens.defined() ? tokens.sizes() : c10::IntArrayRef{});
  TokenFileContents contents;
  contents.tokens = tokens.to(torch::kInt32).contiguous();
  contents.doc_offsets = torch::tensor({int64_t{0}, tokens.size(0)}, torch::kInt64);
  contents.vocab_size = vocab_size;
  validate_token_contents(contents, name_);
  tokens_ = contents.tokens;
  init();
}

void TokenDataset::init() {
  TORCH_CHECK(context_length_ >= 1, "token dataset '", name_,
              "': expected context length >= 1, got ", context_length_);
  TORCH_CHECK(tokens_.size(0) >= context_length_ + 1, "token dataset '", name_,
              "' dataset '/tokens': text shorter than one window: expected at least ",
              context_length_ + 1, " tokens (context length + 1), got ", tokens_.size(0));
  num_windows_ = (tokens_.size(0) - 1) / context_length_;
}

Batch TokenDataset::fetch(const std::vector<int64_t>& sample_ids) const {
  check_sample_ids(sample_ids, size(), "token dataset '" + name_ + "'");
  const int64_t batch_size = static_cast<int64_t>(sample_ids.size());
  const int64_t window = context_length_ + 1;
  torch::Tensor windows = torch::empty({batch_size, window}, torch::kInt64);  // [B, T + 1]
  const auto* source = tokens_.data_ptr<int32_t>();
  auto* target = windows.data_ptr<int64_t>();
  for (int64_t b = 0; b < batch_size; ++b) {
    const int32_t* begin = source + sample_ids[b] * context_length_;
    std::copy(begin, begin + window, target + b * window);
  }
  Batch batch;
  batch.inputs = windows.slice(1, 0, context_length_).contiguous();        // [B, T] int64
  batch.targets = windows.slice(1, 1, window).contiguous();                // [B, T] int64
  batch.sample_ids = torch::tensor(sample_ids, torch::kInt64).view({-1});  // [B]
  return batch;
}

std::string TokenDataset::describe() const {
  std::ostringstream out;
  out << "tokens '" << name_ << "': " << size() << " windows of " << context_length_ << " from "
      << num_tokens() << " tokens in " << num_documents_ << " document(s), vocab " << vocab_size_;
  return out.str();
}

}  // namespace winnow::data
