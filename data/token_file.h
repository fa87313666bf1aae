// The winnow.tokens HDF5 format: writing a token stream file and reading it back validated.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>

namespace winnow::data {

inline constexpr const char* kTokenFormatName = "winnow.tokens";
inline constexpr int64_t kTokenFormatVersion = 1;

// Everything a token dataset file holds (see docs/data-format.md).
struct TokenFileContents {
  torch::Tensor tokens;  // [T] int32: all documents concatenated, each id in [0, vocab_size)
  torch::Tensor
      doc_offsets;  // [D + 1] int64: document d is tokens[doc_offsets[d], doc_offsets[d+1])
  int64_t vocab_size = 0;
  std::string source;  // free text: where the text came from and how it was tokenised
};

// Checks the invariants the readers rely on (dtypes, ranks, T > 0, ids in range, offsets start
// at 0, never decrease and end at T). `where` names the file in error messages.
void validate_token_contents(const TokenFileContents& contents, const std::string& where);

// Validates and writes `contents` atomically (temporary file + rename), chunked and compressed.
void write_token_file(const std::string& path, const TokenFileContents& contents);

// Reads and validates a whole token file; errors name the file, the dataset or attribute, and
// the expected vs found value.
TokenFileContents read_token_file(const std::string& path);

}  // namespace winnow::data
