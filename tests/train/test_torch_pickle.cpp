// The torch.save pickle reader on hand-made pickles: the writer's output reads back; every
// opcode that takes from the stack or the memo fails with a message (never undefined behaviour)
// when they are empty or hold the wrong thing; nesting, sharing and recursion stay bounded.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "tests/data/test_support.h"
#include "train/torch_pickle_reader.h"
#include "train/torch_pickle_writer.h"

namespace winnow::train {
namespace {

using ::testing::HasSubstr;
using namespace std::string_literals;  // "...\x00..."s keeps its NUL bytes
using ::winnow::data::testing::error_of;

// Storages of `numel` elements of 1, 2, 3, ... (any key).
torch::Tensor counting_storage(const std::string&, c10::ScalarType dtype, int64_t numel) {
  return torch::arange(1, numel + 1).to(dtype);
}

c10::IValue read(const std::string& pickle, const TorchPickleLimits& limits = {}) {
  return read_torch_pickle(pickle, "test.pt", counting_storage, limits);
}

std::string read_error(const std::string& pickle, const TorchPickleLimits& limits = {}) {
  return error_of([&] { read(pickle, limits); });
}

// Little-endian 4-byte length + bytes: the operand of BINUNICODE ('X').
std::string text(const std::string& s) {
  std::string out = "X";
  for (int i = 0; i < 4; ++i) out += static_cast<char>((s.size() >> (8 * i)) & 0xff);
  return out + s;
}

// A pickle that rebuilds a float tensor of `size` with `stride` over a storage of `numel`.
std::string tensor_pickle(int numel, const std::string& size, const std::string& stride,
                          const std::string& offset = "K\x00"s) {
  return std::string("\x80\x02}(") + text("w") + "ctorch._utils\n_rebuild_tensor_v2\n((" +
         text("storage") + "ctorch\nFloatStorage\n" + text("0") + text("cpu") + "K" +
         static_cast<char>(numel) + "tQ" + offset + size + stride +
         "\x89"
         "ccollections\nOrderedDict\n)RtRu.";
}

TEST(TorchPickle, WriterOutputReadsBack) {
  StateDict state = {{"a.weight", torch::arange(6, torch::kFloat32).view({2, 3})},
                     {"b", torch::tensor({7, 8}, torch::kInt64)}};
  const std::string pickle = state_dict_pickle(state);
  const auto load = [&](const std::string& key, c10::ScalarType dtype, int64_t numel) {
    const auto& tensor = state.at(std::stoul(key)).second;
    EXPECT_EQ(tensor.scalar_type(), dtype);
    EXPECT_EQ(tensor.numel(), numel);
    return tensor.flatten();
  };
  const auto value = read_torch_pickle(pickle, "test.pt", load);
  ASSERT_TRUE(value.isGenericDict());
  const auto dict = value.toGenericDict();
  ASSERT_EQ(dict.size(), 2u);
  EXPECT_TRUE(torch::equal(dict.at("a.weight").toTensor(), state[0].second));
  EXPECT_TRUE(torch::equal(dict.at("b").toTensor(), state[1].second));
}

TEST(TorchPickle, ValidTensorViews) {
  const auto dict = read(tensor_pickle(6, "K\x02K\x03\x86", "K\x03K\x01\x86")).toGenericDict();
  EXPECT_TRUE(
      torch::equal(dict.at("w").toTensor(), torch::arange(1, 7).view({2, 3}).to(torch::kFloat32)));
  // A zero-size dimension: any strides, nothing addressed.
  const auto empty = read(tensor_pickle(1, "K\x00K\x09\x86"s, "K\x09K\x01\x86")).toGenericDict();
  EXPECT_EQ(empty.at("w").toTensor().numel(), 0);
}

// Each row: a malformed pickle and a piece of the error it must give.
struct Malformed {
  const char* name;
  std::string pickle;
  const char* error;
};

TEST(TorchPickle, EveryOpcodeChecksItsStackAndMemo) {
  const std::string empty_stack = "expected a value on the stack, found it empty";
  const std::vector<Malformed> table = {
      {"nothing", "", "ends at byte 0 without STOP"},
      {"STOP on an empty stack", ".", "expected one object at STOP, found 0"},
      {"two objects at STOP", "NN.", "found 2 entries"},
      {"APPEND, empty", "a.", empty_stack.c_str()},
      {"APPEND, one value", "Na.", empty_stack.c_str()},
      {"APPENDS without MARK",
       "]N"
       "e.",
       "expected a MARK on the stack, found none"},
      {"APPENDS, nothing under the MARK", "(e.", empty_stack.c_str()},
      {"SETITEM, empty", "s.", empty_stack.c_str()},
      {"SETITEM, no target", "NNs.", empty_stack.c_str()},
      {"SETITEMS without MARK", "}NNu.", "expected a MARK"},
      {"SETITEMS, odd", "}(Nu.", "odd number"},
      {"SETITEMS, nothing under the MARK", "(NNu.", empty_stack.c_str()},
      {"BINPUT, empty", "q\x00."s, empty_stack.c_str()},
      {"LONG_BINPUT, empty", std::string("r\x00\x00\x00\x00.", 6), empty_stack.c_str()},
      {"MEMOIZE, empty", "\x94.", empty_stack.c_str()},
      {"BINPUT of a MARK", "(q\x00."s, "found a MARK"},
      {"BINGET unset", "h\x05.", "memo entry 5 was never set"},
      {"LONG_BINGET unset", std::string("j\x01\x00\x00\x00.", 6), "memo entry 1 was never set"},
      {"DUP, empty", "2.", empty_stack.c_str()},
      {"DUP of a MARK", "(2.", "found a MARK"},
      {"POP, empty", "0.", empty_stack.c_str()},
      {"POP_MARK without MARK", "N1.", "expected a MARK"},
      {"BUILD, empty", "b.", empty_stack.c_str()},
      {"BUILD without target", "Nb.", empty_stack.c_str()},
      {"TUPLE without MARK", "Nt.", "expected a MARK"},
      {"TUPLE2, one value", "N\x86.", empty_stack.c_str()},
      {"TUPLE3 over a MARK", "(NN\x87.", "found a MARK"},
      {"LIST without MARK", "l.", "expected a MARK"},
      {"DICT, odd", "(Nd.", "odd number"},
      {"STACK_GLOBAL, empty", "\x93.", empty_stack.c_str()},
      {"STACK_GLOBAL of ints", "K\x01K\x02\x93.", "expected the class name to be a string"},
      {"REDUCE, empty", "R.", empty_stack.c_str()},
      {"REDUCE of a value", "N)R.", "expected a class or function"},
      {"REDUCE without a tuple", "cbuiltins\ndict\nNR.", "expected a tuple of arguments"},
      {"NEWOBJ, one value", ")\x81.", empty_stack.c_str()},
      {"BINPERSID, empty", "Q.", empty_stack.c_str()},
      {"BINPERSID of an int", "K\x01Q.", "expected a persistent id"},
      {"MARK as the result", "(.", "found a MARK"},
      {"truncated BININT", "J\x01\x02.", "truncated"},
      {"truncated PROTO", "\x80", "truncated"},
      {"BINUNICODE8 of 2^64-1 bytes", "\x8d\xff\xff\xff\xff\xff\xff\xff\xff.", "runs past the end"},
      {"BINUNICODE longer than the file", "X\x00\x00\x00\x01"s + "abc.", "runs past the end"},
      {"LONG4 of 4 GB", "\x8b\xff\xff\xff\xff.", "at most 64 bits"},
      {"GLOBAL without newline", "cfoo", "truncated"},
      {"unknown opcode", "\xfe.", "unsupported pickle opcode 0xfe"},
      {"persistent id with a negative size",
       "(" + text("storage") + "ctorch\nFloatStorage\n" + text("0") + text("cpu") +
           "J\xff\xff\xff\xfftQ.",
       "negative size"},
      {"storage class with escapes",
       "(" + text("storage") + "ctorch\nEvil\x1b[2J\n" + text("0") + text("cpu") + "K\x01tQ.",
       "unsupported storage type 'torch.Evil\\x1b[2J'"},
      {"tensor past its storage", tensor_pickle(4, "Kd\x85", "K\x01\x85"),
       "reaches past its storage of 4 elements"},
      {"tensor with a huge stride",
       tensor_pickle(4, "K\x02\x85", "\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x40\x85"s),
       "reaches past its storage"},
      {"tensor with a negative stride", tensor_pickle(4, "K\x02\x85", "J\xff\xff\xff\xff\x85"),
       "negative size or stride"},
      {"tensor at a negative offset",
       tensor_pickle(4, "K\x01\x85", "K\x01\x85", "J\xff\xff\xff\xff"), "negative storage offset"},
      {"tensor sizes and strides differ", tensor_pickle(4, "K\x01K\x01\x86", "K\x01\x85"),
       "dimensions"},
      {"tensor sizes not ints", tensor_pickle(4, "N\x85", "K\x01\x85"),
       "expected the tensor size to be an integer"},
  };
  for (const auto& row : table) {
    const std::string error = read_error(row.pickle);
    EXPECT_THAT(error, HasSubstr(row.error)) << row.name;
    EXPECT_THAT(error, HasSubstr("test.pt")) << row.name;
  }
}

TEST(TorchPickle, RecursiveStructuresAreRefused) {
  // A list appended to itself (DUP, APPEND), and a list changed after it was put in a dict.
  EXPECT_THAT(read_error("]2a."), HasSubstr("recursive structures are not supported"));
  EXPECT_THAT(read_error("}q\x00"s + text("k") + "]q\x01s" + "h\x01Na."),
              HasSubstr("changed after it was placed in another"));
}

TEST(TorchPickle, NestingIsBounded) {
  // 100 000 nested lists or tuples: refused at the limit, no stack overflow.
  std::string lists;
  for (int i = 0; i < 100000; ++i) lists += "(";
  for (int i = 0; i < 100000; ++i) lists += "l";
  EXPECT_THAT(read_error(lists + "."), HasSubstr("nested deeper than 64"));
  std::string tuples(100000, '(');
  tuples += ")" + std::string(99999, 't');  // () then 99 999 TUPLEs around it
  EXPECT_THAT(read_error(tuples + "."), HasSubstr("nested deeper than 64"));
  EXPECT_THAT(read_error(std::string(100000, '(') + "."), HasSubstr("found 100000 entries"));
}

TEST(TorchPickle, SharingStaysLinear) {
  // t = (None, None); then 60 times t = (t, t) through the memo: 2^60 leaves if copied.
  std::string pickle = "NN\x86";
  for (int i = 0; i < 60; ++i) pickle += "q\x00"s + "0" + "h\x00h\x00\x86"s;  // PUT, POP, GET, GET
  const auto value = read(pickle + ".");  // returns at once: each shared tuple is built once
  EXPECT_TRUE(value.isTuple());
  // The same through DUP, past the depth limit: refused, not exponential.
  std::string deep = "NN\x86";
  for (int i = 0; i < 100; ++i) deep += "2\x86";
  EXPECT_THAT(read_error(deep + "."), HasSubstr("nested deeper than 64"));
  // A small budget of values is enforced.
  TorchPickleLimits small;
  small.max_values = 10;
  EXPECT_THAT(read_error("(NNNNNNNNNNNNNNNNNNNNl.", small), HasSubstr("more than 10 values"));
}

}  // namespace
}  // namespace winnow::train
