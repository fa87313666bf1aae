// Implements the byte-level text converter: documents, seeded train/val split, token files.
#include "data/text_tokens.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <sstream>

#include "data/keyed_random.h"
#include "data/token_file.h"

#include <torch/torch.h>

namespace winnow::data {
namespace {

// Separates the train/val split stream from every other use of the same seed.
constexpr uint64_t kTextSplitDomain = 0x7465787473706c74ULL;  // "textsplt"

std::string read_whole_file(const std::string& path) {
  std::error_code ec;
  TORCH_CHECK(std::filesystem::exists(path, ec), "text_tokens: input file '", path, "' not found");
  TORCH_CHECK(std::filesystem::is_regular_file(path, ec), "text_tokens: input '", path,
              "' is not a regular file");
  std::ifstream in(path, std::ios::binary);
  TORCH_CHECK(in.is_open(), "text_tokens: cannot open input file '", path, "'");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  TORCH_CHECK(!in.bad(), "text_tokens: cannot read input file '", path, "'");
  std::string text = buffer.str();
  TORCH_CHECK(!text.empty(), "text_tokens: input file '", path,
              "' is empty; expected at least one byte of text");
  return text;
}

bool only_whitespace(const std::string& text) {
  return std::all_of(text.begin(), text.end(),
                     [](unsigned char c) { return std::isspace(c) != 0; });
}

// Concatenates documents into a token stream with document boundaries.
std::pair<torch::Tensor, torch::Tensor> to_tokens(const std::vector<const std::string*>& docs) {
  int64_t total = 0;
  for (const auto* doc : docs) total += static_cast<int64_t>(doc->size());
  torch::Tensor tokens = torch::empty({total}, torch::kInt32);  // [T]
  torch::Tensor offsets =
      torch::empty({static_cast<int64_t>(docs.size()) + 1}, torch::kInt64);  // [D+1]
  auto* token_data = tokens.data_ptr<int32_t>();
  auto* offset_data = offsets.data_ptr<int64_t>();
  int64_t position = 0;
  offset_data[0] = 0;
  for (size_t d = 0; d < docs.size(); ++d) {
    for (unsigned char byte : *docs[d]) token_data[position++] = byte;
    offset_data[d + 1] = position;
  }
  return {tokens, offsets};
}

}  // namespace

std::vector<std::string> split_documents(const std::string& text, const std::string& separator) {
  std::vector<std::string> documents;
  std::string current;
  auto finish = [&] {
    if (!only_whitespace(current)) documents.push_back(current);
    current.clear();
  };
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    const size_t next = end == std::string::npos ? text.size() : end + 1;
    if (end == std::string::npos) end = text.size();
    size_t content_end = end;
    if (content_end > start && text[content_end - 1] == '\r') --content_end;
    const bool is_separator = !separator.empty() &&
                              text.compare(start, content_end - start, separator) == 0 &&
                              content_end - start == separator.size();
    if (is_separator) {
      finish();
    } else {
      current.append(text, start, next - start);
    }
    start = next;
  }
  finish();
  return documents;
}

TextPrepareSummary prepare_text(const std::vector<std::string>& input_files,
                                const std::string& out_dir, double val_fraction, uint64_t seed,
                                const std::string& doc_separator) {
  TORCH_CHECK(!input_files.empty(), "text_tokens: no input files; expected at least one");
  TORCH_CHECK(val_fraction > 0 && val_fraction < 1,
              "text_tokens: val_fraction must be in (0, 1), got ", val_fraction);

  std::vector<std::string> documents;
  for (const auto& path : input_files) {
    auto file_documents = split_documents(read_whole_file(path), doc_separator);
    for (auto& doc : file_documents) documents.push_back(std::move(doc));
  }
  const int64_t count = static_cast<int64_t>(documents.size());
  TORCH_CHECK(count >= 2, "text_tokens: found ", count, " document(s) in ", input_files.size(),
              " input file(s); a train/val split needs at least 2 (pass several files, or "
              "separate documents with lines equal to '",
              doc_separator, "')");

  // Seeded Fisher-Yates over document indices; the first val_count are the val split.
  std::vector<int64_t> order(static_cast<size_t>(count));
  std::iota(order.begin(), order.end(), 0);
  SplitMix64 stream(hash_keys({seed, kTextSplitDomain}));
  for (int64_t i = count - 1; i > 0; --i) {
    std::swap(order[i], order[stream.below(static_cast<uint64_t>(i) + 1)]);
  }
  const int64_t val_count =
      std::clamp<int64_t>(std::llround(val_fraction * static_cast<double>(count)), 1, count - 1);
  std::vector<bool> is_val(static_cast<size_t>(count), false);
  for (int64_t i = 0; i < val_count; ++i) is_val[order[i]] = true;
  std::vector<const std::string*> train_docs, val_docs;
  for (int64_t d = 0; d < count; ++d) (is_val[d] ? val_docs : train_docs).push_back(&documents[d]);

  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  TORCH_CHECK(!ec, "text_tokens: cannot create output directory '", out_dir, "': ", ec.message());

  std::string files;
  for (const auto& path : input_files) files += (files.empty() ? "" : ", ") + path;
  TextPrepareSummary summary;
  summary.num_documents = count;
  summary.train_path = (std::filesystem::path(out_dir) / "train.h5").string();
  summary.val_path = (std::filesystem::path(out_dir) / "val.h5").string();
  auto write_split = [&](const std::vector<const std::string*>& docs, const std::string& path,
                         const char* name) {
    TokenFileContents contents;
    std::tie(contents.tokens, contents.doc_offsets) = to_tokens(docs);
    contents.vocab_size = kByteVocabSize;
    contents.source = std::string("byte-level tokens (vocab 256), ") + name + " split (seed " +
                      std::to_string(seed) + ", val_fraction " + std::to_string(val_fraction) +
                      ") of documents separated by lines equal to '" + doc_separator +
                      "' in: " + files;
    write_token_file(path, contents);
    return contents.tokens.size(0);
  };
  summary.train_documents = static_cast<int64_t>(train_docs.size());
  summary.val_documents = static_cast<int64_t>(val_docs.size());
  summary.train_tokens = write_split(train_docs, summary.train_path, "train");
  summary.val_tokens = write_split(val_docs, summary.val_path, "val");
  return summary;
}

}  // namespace winnow::data
