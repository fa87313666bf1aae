// Writes the pickle of a dict of tensors as torch.save does.
#include "train/torch_pickle_writer.h"

#include <cstdint>

namespace winnow::train {
namespace {

const char* storage_class(c10::ScalarType dtype) {
  switch (dtype) {
    case torch::kFloat32:
      return "FloatStorage";
    case torch::kFloat64:
      return "DoubleStorage";
    case torch::kFloat16:
      return "HalfStorage";
    case torch::kBFloat16:
      return "BFloat16Storage";
    case torch::kInt64:
      return "LongStorage";
    case torch::kInt32:
      return "IntStorage";
    case torch::kInt16:
      return "ShortStorage";
    case torch::kInt8:
      return "CharStorage";
    case torch::kUInt8:
      return "ByteStorage";
    case torch::kBool:
      return "BoolStorage";
    default:
      break;
  }
  TORCH_CHECK(false, "torch file: cannot write tensors of type ", dtype);
}

// Emits the opcodes of state_dict_pickle.
class StateDictPickler {
 public:
  void dict(const StateDict& state) {
    op(0x80), op(2);  // PROTO 2
    op('}');          // EMPTY_DICT
    op('(');          // MARK
    for (size_t i = 0; i < state.size(); ++i) {
      text(state[i].first);
      tensor(state[i].second, std::to_string(i));
    }
    op('u'), op('.');  // SETITEMS, STOP
  }
  const std::string& bytes() const { return out_; }

 private:
  void op(int code) { out_.push_back(static_cast<char>(code)); }
  void le(uint64_t value, int bytes) {
    for (int i = 0; i < bytes; ++i) out_.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
  }
  void text(const std::string& s) { op('X'), le(s.size(), 4), out_ += s; }  // BINUNICODE
  void integer(int64_t v) {
    if (v >= INT32_MIN && v <= INT32_MAX) {
      op('J'), le(static_cast<uint64_t>(static_cast<int32_t>(v)) & 0xffffffffULL, 4);  // BININT
    } else {
      op(0x8a), op(8), le(static_cast<uint64_t>(v), 8);  // LONG1
    }
  }
  void global(const std::string& module, const std::string& name) {
    op('c'), out_ += module + "\n" + name + "\n";
  }
  void int_tuple(c10::IntArrayRef values) {
    op('(');
    for (auto v : values) integer(v);
    op('t');
  }
  void tensor(const torch::Tensor& t, const std::string& key) {  // t contiguous, on the CPU
    global("torch._utils", "_rebuild_tensor_v2");
    op('(');
    op('('), text("storage"), global("torch", storage_class(t.scalar_type())), text(key),
        text("cpu"), integer(t.numel()), op('t'), op('Q');  // persistent id, BINPERSID
    integer(0);                                             // storage offset
    int_tuple(t.sizes());
    int_tuple(t.strides());
    op(0x89);                                                // requires_grad False
    global("collections", "OrderedDict"), op(')'), op('R');  // backward hooks
    op('t'), op('R');
  }

  std::string out_;
};

}  // namespace

std::string state_dict_pickle(const StateDict& state) {
  StateDictPickler pickler;
  pickler.dict(state);
  return pickler.bytes();
}

}  // namespace winnow::train
