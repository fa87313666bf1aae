// Implements the winnow.tokens format: validation, atomic writing and validated reading.
#include "data/token_file.h"

#include "data/format_attrs.h"
#include "data/h5_file.h"
#include "data/sample_rows.h"

namespace winnow::data {

void validate_token_contents(const TokenFileContents& contents, const std::string& where) {
  const auto& tokens = contents.tokens;
  const auto& offsets = contents.doc_offsets;
  TORCH_CHECK(contents.vocab_size >= 1, "token_file: '", where,
              "' attribute 'vocab_size': expected >= 1, got ", contents.vocab_size);
  TORCH_CHECK(tokens.defined() && tokens.scalar_type() == torch::kInt32, "token_file: '", where,
              "' dataset '/tokens': expected dtype int32, got ",
              tokens.defined() ? h5_dtype_name(tokens.scalar_type()) : "nothing");
  TORCH_CHECK(tokens.dim() == 1, "token_file: '", where,
              "' dataset '/tokens': expected rank 1 [T], got shape ",
              shape_text(tokens.sizes().vec()));
  TORCH_CHECK(tokens.size(0) > 0, "token_file: '", where,
              "' dataset '/tokens': expected at least one token, got T = 0 (empty dataset)");
  const int64_t min_token = tokens.min().item<int64_t>();
  const int64_t max_token = tokens.max().item<int64_t>();
  TORCH_CHECK(min_token >= 0, "token_file: '", where,
              "' dataset '/tokens': expected token ids >= 0, got ", min_token, " at index ",
              tokens.argmin().item<int64_t>());
  TORCH_CHECK(max_token < contents.vocab_size, "token_file: '", where,
              "' dataset '/tokens': expected token ids < vocab_size = ", contents.vocab_size,
              ", got ", max_token, " at index ", tokens.argmax().item<int64_t>());

  TORCH_CHECK(offsets.defined() && offsets.scalar_type() == torch::kInt64, "token_file: '", where,
              "' dataset '/doc_offsets': expected dtype int64, got ",
              offsets.defined() ? h5_dtype_name(offsets.scalar_type()) : "nothing");
  TORCH_CHECK(offsets.dim() == 1 && offsets.size(0) >= 2, "token_file: '", where,
              "' dataset '/doc_offsets': expected shape [D + 1] with D >= 1 documents, got ",
              shape_text(offsets.sizes().vec()));
  const int64_t first = offsets[0].item<int64_t>();
  const int64_t last = offsets[-1].item<int64_t>();
  TORCH_CHECK(first == 0, "token_file: '", where,
              "' dataset '/doc_offsets': expected the first offset to be 0, got ", first);
  TORCH_CHECK(last == tokens.size(0), "token_file: '", where,
              "' dataset '/doc_offsets': expected the last offset to be T = ", tokens.size(0),
              ", got ", last);
  const torch::Tensor steps = offsets.slice(0, 1) - offsets.slice(0, 0, -1);
  if (steps.lt(0).any().item<bool>()) {
    const int64_t bad = steps.lt(0).nonzero()[0][0].item<int64_t>();
    TORCH_CHECK(false, "token_file: '", where,
                "' dataset '/doc_offsets': expected non-decreasing offsets, got ",
                offsets[bad].item<int64_t>(), " followed by ", offsets[bad + 1].item<int64_t>(),
                " at index ", bad);
  }
}

void write_token_file(const std::string& path, const TokenFileContents& contents) {
  validate_token_contents(contents, path);
  h5_write_atomically(path, [&](H5File& file) {
    write_format_attrs(file, kTokenFormatName, kTokenFormatVersion);
    file.set_attr_int("/", "vocab_size", contents.vocab_size);
    file.set_attr_string("/", "source", contents.source);
    file.write_tensor("/tokens", contents.tokens);
    file.write_tensor("/doc_offsets", contents.doc_offsets);
  });
}

TokenFileContents read_token_file(const std::string& path) {
  const H5File file(path, H5File::Mode::kRead);
  check_format_attrs(file, kTokenFormatName, kTokenFormatVersion);

  const H5DatasetInfo tokens_info =
      require_dataset(file, "token_file", "/tokens", torch::kInt32, 1, "[T]");
  TORCH_CHECK(tokens_info.shape[0] > 0, "token_file: '", path,
              "' dataset '/tokens': expected at least one token, got T = 0 (empty dataset)");
  require_dataset(file, "token_file", "/doc_offsets", torch::kInt64, 1, "[D + 1]");
  require_root_attrs(file, "token_file", {"vocab_size"});

  TokenFileContents contents;
  contents.vocab_size = file.attr_int("/", "vocab_size");
  contents.source = file.has_attr("/", "source") ? file.attr_string("/", "source") : "";
  contents.tokens = read_sample_rows(file, "/tokens", "tokens");
  contents.doc_offsets = read_sample_rows(file, "/doc_offsets", "document offsets");
  validate_token_contents(contents, path);
  return contents;
}

}  // namespace winnow::data
