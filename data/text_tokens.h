// Converts text files into byte-level winnow.tokens HDF5 files (train.h5, val.h5).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace winnow::data {

// Byte-level tokenisation: token id = byte value, so the vocabulary is all 256 bytes.
inline constexpr int64_t kByteVocabSize = 256;

// What prepare_text wrote, for the CLI to print.
struct TextPrepareSummary {
  int64_t num_documents = 0;
  int64_t train_documents = 0;
  int64_t val_documents = 0;
  int64_t train_tokens = 0;
  int64_t val_tokens = 0;
  std::string train_path;
  std::string val_path;
};

// Splits one file's text into documents. A line whose text (without its "\n" or "\r\n") equals
// `separator` ends the current document and is not part of any document; every other byte,
// newlines included, belongs to a document. A file without separator lines is one document, as
// is any file when `separator` is empty. Documents that are empty or only whitespace are
// dropped. With the default "%" this reads the fortune(6) format.
std::vector<std::string> split_documents(const std::string& text, const std::string& separator);

// Reads every input file, splits each into documents (split_documents), and assigns whole
// documents to val or train: a seed-keyed shuffle of the document indices picks
// round(val_fraction * D) documents for val, clamped to [1, D - 1]; each split keeps the
// documents in input order. Writes `out_dir`/train.h5 and `out_dir`/val.h5 atomically.
// Errors: no input files, a missing, unreadable or empty file, val_fraction outside (0, 1),
// fewer than two documents in total. Prints nothing.
TextPrepareSummary prepare_text(const std::vector<std::string>& input_files,
                                const std::string& out_dir, double val_fraction, uint64_t seed,
                                const std::string& doc_separator = "%");

}  // namespace winnow::data
