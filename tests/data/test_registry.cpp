// Registry (data/registry.h): the shape shared by every extension point, and the registry of
// data-file formats with the SampleShape the datasets report.
#include "data/registry.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "data/data_file.h"
#include "data/synthetic_dataset.h"

namespace winnow::data {
namespace {

using ::testing::HasSubstr;

// A registry of greetings: the product is a string made from a name.
using Greetings = Registry<std::string, const std::string&>;

Greetings greetings() {
  return Greetings(
      "unknown greeting '{name}'; known greetings: {names}",
      {
          {"hello", "the plain one", [](const std::string& who) { return "hello " + who; }},
          {"hi", "the short one", [](const std::string& who) { return "hi " + who; }},
          {"ahoy", "the nautical one", [](const std::string& who) { return "ahoy " + who; }},
      });
}

std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const c10::Error& error) {
    return error.msg();
  }
  return "no error";
}

TEST(Registry, CreatesTheNamedEntry) {
  const auto registry = greetings();
  EXPECT_EQ(registry.create("hi", "there"), "hi there");
  EXPECT_TRUE(registry.contains("ahoy"));
  EXPECT_FALSE(registry.contains("Hi"));  // names are exact
  ASSERT_NE(registry.find("hello"), nullptr);
  EXPECT_EQ(registry.find("hello")->help, "the plain one");
  EXPECT_EQ(registry.find("bye"), nullptr);
}

TEST(Registry, NamesKeepTheListOrder) {
  EXPECT_EQ(greetings().names(), (std::vector<std::string>{"hello", "hi", "ahoy"}));
  EXPECT_EQ(greetings().entries().size(), 3u);
}

TEST(Registry, UnknownNameListsTheKnownOnes) {
  EXPECT_EQ(error_of([] { greetings().create("bye", "x"); }),
            "unknown greeting 'bye'; known greetings: hello, hi, ahoy");
  // The name asked for is inserted once, never expanded as a pattern itself.
  EXPECT_EQ(greetings().unknown_name_message("{names}"),
            "unknown greeting '{names}'; known greetings: hello, hi, ahoy");
}

TEST(Registry, DuplicateRegistrationIsRefused) {
  auto same = [](const std::string& who) { return who; };
  EXPECT_THAT(error_of([&] {
                Greetings("{name}", {{"a", "", same}, {"b", "", same}, {"a", "", same}});
              }),
              HasSubstr("'a' is registered twice (entries 0 and 2)"));
  EXPECT_THAT(error_of([&] { Greetings("{name}", {{"", "", same}}); }), HasSubstr("empty name"));
  EXPECT_THAT(error_of([&] {
                Greetings("{name}", {{"a", "", nullptr}});
              }),
              HasSubstr("'a' has no factory"));
}

TEST(DataFileFormats, ListsTheFormatsOfWinnowPrepare) {
  EXPECT_EQ(data_file_formats().names(),
            (std::vector<std::string>{"winnow.images", "winnow.tokens"}));
  EXPECT_EQ(data_file_formats().unknown_name_message("csv"),
            "unknown format 'csv'; expected one of winnow.images, winnow.tokens");
}

TEST(SampleShape, EveryDatasetDescribesItsSamples) {
  SyntheticImageOptions images;
  images.channels = 3, images.height = 8, images.width = 6, images.num_classes = 5;
  const SampleShape image_shape = SyntheticImageDataset(images).sample_shape();
  EXPECT_TRUE(image_shape.images());
  EXPECT_EQ(image_shape.image_shape, (std::vector<int64_t>{3, 8, 6}));
  EXPECT_EQ(image_shape.num_classes, 5);

  SyntheticTokenOptions tokens;
  tokens.vocab_size = 17;
  const SampleShape token_shape = make_synthetic_token_dataset(tokens)->sample_shape();
  EXPECT_FALSE(token_shape.images());
  EXPECT_EQ(token_shape.vocab_size, 17);
  EXPECT_TRUE(token_shape.image_shape.empty());
}

}  // namespace
}  // namespace winnow::data
