// TokenDataset: a token stream held in memory, served as fixed-length next-token windows.
#pragma once

#include <cstdint>
#include <string>

#include "data/dataset.h"
#include "data/token_file.h"

namespace winnow::data {

// Sample i is the window tokens[i*T, i*T + T + 1) of the stream, for context length T:
// inputs = its first T tokens, targets = its last T (the next token at every position). Windows
// overlap by one token and may span document boundaries; size() = floor((num_tokens - 1) / T),
// and the tail of the stream that does not fill a window is unused.
class TokenDataset : public Dataset {
 public:
  // Loads and validates a winnow.tokens file; throws if it holds fewer than T + 1 tokens.
  TokenDataset(const std::string& path, int64_t context_length);
  // From a stream already in memory: tokens [T] int32 (or any integer dtype), ids in [0, vocab).
  TokenDataset(torch::Tensor tokens, int64_t vocab_size, int64_t context_length, std::string name);

  int64_t size() const override { return num_windows_; }
  // inputs int64 [B, T], targets int64 [B, T], sample_ids int64 [B].
  Batch fetch(const std::vector<int64_t>& sample_ids) const override;
  std::string describe() const override;
  SampleShape sample_shape() const override { return SampleShape::of_tokens(vocab_size_); }

  int64_t vocab_size() const { return vocab_size_; }
  int64_t context_length() const { return context_length_; }
  int64_t num_tokens() const { return tokens_.size(0); }
  // Number of documents (1 for an in-memory stream without offsets).
  int64_t num_documents() const { return num_documents_; }
  const std::string& name() const { return name_; }

 private:
  void init();

  torch::Tensor tokens_;  // [num_tokens] int32
  int64_t vocab_size_ = 0;
  int64_t context_length_ = 0;
  int64_t num_windows_ = 0;
  int64_t num_documents_ = 1;
  std::string name_;
};

}  // namespace winnow::data
