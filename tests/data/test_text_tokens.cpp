// Tests the byte-level text converter: document splitting, the seeded split, files, errors.
#include "data/text_tokens.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "data/token_dataset.h"
#include "data/token_file.h"
#include "tests/data/test_support.h"

namespace winnow::data {
namespace {

using ::testing::ElementsAre;
using testing::error_of;
using ::testing::HasSubstr;
using testing::TempDir;

std::string write_text(const TempDir& dir, const std::string& name, const std::string& text) {
  std::ofstream(dir.file(name), std::ios::binary) << text;
  return dir.file(name);
}

std::string bytes_of(const torch::Tensor& tokens) {
  std::string out;
  for (int64_t i = 0; i < tokens.size(0); ++i) out += static_cast<char>(tokens[i].item<int>());
  return out;
}

TEST(TextTokens, SplitsFortuneEntriesAtSeparatorLines) {
  EXPECT_THAT(split_documents("one\ntwo\n%\nthree\n%\n", "%"),
              ElementsAre("one\ntwo\n", "three\n"));
  EXPECT_THAT(split_documents("a\r\n%\r\nb", "%"), ElementsAre("a\r\n", "b"));
  // Only a line that is exactly the separator splits; "%%" or " %" or "100%" do not.
  EXPECT_THAT(split_documents("x %\n%%\n100%\n", "%"), ElementsAre("x %\n%%\n100%\n"));
  // Empty and whitespace-only documents are dropped.
  EXPECT_THAT(split_documents("%\n%\n  \n%\nq\n%", "%"), ElementsAre("q\n"));
  // No separator line, or an empty separator: one document.
  EXPECT_THAT(split_documents("plain text\n", "%"), ElementsAre("plain text\n"));
  EXPECT_THAT(split_documents("a\n%\nb\n", ""), ElementsAre("a\n%\nb\n"));
  EXPECT_THAT(split_documents("a\n---\nb\n", "---"), ElementsAre("a\n", "b\n"));
}

TEST(TextTokens, WritesDeterministicDocumentSplit) {
  TempDir in, out;
  std::string fortunes;
  std::vector<std::string> entries;
  for (int i = 0; i < 20; ++i) {
    entries.push_back("entry " + std::to_string(i) + " says hello\n");
    fortunes += entries.back() + "%\n";
  }
  const std::string a = write_text(in, "fortunes", fortunes);
  const std::string b = write_text(in, "book.txt", "A whole book.\nWith % signs, 100%.\n");

  const TextPrepareSummary summary = prepare_text({a, b}, out.file("s1"), 0.25, 7);
  EXPECT_EQ(summary.num_documents, 21);
  EXPECT_EQ(summary.val_documents, 5);  // round(0.25 * 21)
  EXPECT_EQ(summary.train_documents, 16);

  const TokenFileContents train = read_token_file(summary.train_path);
  const TokenFileContents val = read_token_file(summary.val_path);
  EXPECT_EQ(train.vocab_size, 256);
  EXPECT_EQ(train.doc_offsets.size(0), 17);
  EXPECT_EQ(val.doc_offsets.size(0), 6);
  EXPECT_EQ(summary.train_tokens + summary.val_tokens,
            static_cast<int64_t>(fortunes.size() - 20 * 2 + 34));  // minus the "%\n" lines
  // Every document lands in exactly one split, unchanged, and each split keeps input order.
  std::vector<std::string> seen;
  for (const auto* split : {&train, &val}) {
    for (int64_t d = 0; d + 1 < split->doc_offsets.size(0); ++d) {
      seen.push_back(bytes_of(split->tokens.slice(0, split->doc_offsets[d].item<int64_t>(),
                                                  split->doc_offsets[d + 1].item<int64_t>())));
    }
  }
  entries.push_back("A whole book.\nWith % signs, 100%.\n");
  std::vector<std::string> sorted_seen = seen, sorted_entries = entries;
  std::sort(sorted_seen.begin(), sorted_seen.end());
  std::sort(sorted_entries.begin(), sorted_entries.end());
  EXPECT_EQ(sorted_seen, sorted_entries);

  // Same seed: identical files; another seed: another split.
  const TextPrepareSummary again = prepare_text({a, b}, out.file("s2"), 0.25, 7);
  EXPECT_TRUE(torch::equal(read_token_file(again.val_path).tokens, val.tokens));
  const TextPrepareSummary other = prepare_text({a, b}, out.file("s3"), 0.25, 8);
  EXPECT_FALSE(torch::equal(read_token_file(other.val_path).doc_offsets, val.doc_offsets) &&
               torch::equal(read_token_file(other.val_path).tokens, val.tokens));

  // The files are usable as datasets.
  const TokenDataset dataset(summary.train_path, 16);
  EXPECT_EQ(dataset.vocab_size(), 256);
  EXPECT_EQ(dataset.num_documents(), 16);
}

TEST(TextTokens, TwoDocumentsGiveOneInEachSplit) {
  TempDir in, out;
  const std::string a = write_text(in, "a.txt", "first document\n");
  const std::string b = write_text(in, "b.txt", "second document\n");
  for (double fraction : {0.01, 0.5, 0.99}) {
    const TextPrepareSummary s = prepare_text({a, b}, out.path().string(), fraction, 3, "");
    EXPECT_EQ(s.train_documents, 1) << fraction;
    EXPECT_EQ(s.val_documents, 1) << fraction;
  }
}

TEST(TextTokens, ReportsBadInputs) {
  TempDir in, out;
  const std::string good = write_text(in, "good", "a\n%\nb\n");
  const std::string empty = write_text(in, "empty", "");
  const std::string single = write_text(in, "single", "just one document\n");
  EXPECT_THAT(error_of([&] { prepare_text({}, out.path().string(), 0.1, 0); }),
              HasSubstr("no input files"));
  EXPECT_THAT(error_of([&] {
                prepare_text({good, in.file("nope")}, out.path().string(), 0.1, 0);
              }),
              HasSubstr("input file '" + in.file("nope") + "' not found"));
  EXPECT_THAT(error_of([&] {
                prepare_text({good, empty}, out.path().string(), 0.1, 0);
              }),
              HasSubstr("input file '" + empty + "' is empty"));
  EXPECT_THAT(error_of([&] { prepare_text({single}, out.path().string(), 0.1, 0); }),
              HasSubstr("found 1 document(s) in 1 input file(s); a train/val split needs at "
                        "least 2"));
  EXPECT_THAT(error_of([&] { prepare_text({good}, out.path().string(), 1.0, 0); }),
              HasSubstr("val_fraction must be in (0, 1), got 1"));
  EXPECT_FALSE(std::filesystem::exists(out.file("train.h5")));
}

TEST(TextTokens, ConvertsInstalledFortunes) {
  const std::string path = "/usr/share/games/fortunes/fortunes";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " is not installed";
  TempDir out;
  const TextPrepareSummary s = prepare_text({path}, out.path().string(), 0.1, 0);
  EXPECT_GT(s.num_documents, 100);
  EXPECT_GE(s.val_documents, 1);
  const TokenDataset val(s.val_path, 64);
  EXPECT_GT(val.size(), 0);
}

}  // namespace
}  // namespace winnow::data
