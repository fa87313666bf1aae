// Reading and writing PyTorch torch.save files. The pickle opcodes and their stack semantics are
// those of Python's pickle protocol (documented in CPython's Lib/pickletools.py); the archive
// layout (data.pkl, data/<storage key>, persistent ids ('storage', type, key, location, numel))
// is that of torch/serialization.py. See docs/interop.md.
#include "train/interop_torch_file.h"

#include <caffe2/serialize/inline_container.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <unordered_map>

namespace winnow::train {
namespace {

// One entry of the unpickler's stack: a finished value, a class or function named by GLOBAL, a
// tuple (kept as nodes because persistent ids hold classes), a MARK, or an object of a class we
// do not rebuild (kept as its class name, so the rest of the file still loads).
struct Node {
  enum class Kind { kValue, kGlobal, kTuple, kMark, kOpaque };
  Kind kind = Kind::kValue;
  c10::IValue value;
  std::string name;  // kGlobal, kOpaque: "module.qualname"
  std::vector<Node> items;

  static Node of(c10::IValue v) {
    Node n;
    n.value = std::move(v);
    return n;
  }
};

c10::IValue to_ivalue(const Node& node) {
  switch (node.kind) {
    case Node::Kind::kValue:
      return node.value;
    case Node::Kind::kTuple: {
      std::vector<c10::IValue> items;
      for (const auto& item : node.items) items.push_back(to_ivalue(item));
      return c10::ivalue::Tuple::create(std::move(items));
    }
    case Node::Kind::kOpaque:
      return c10::IValue("<" + node.name + " object>");
    case Node::Kind::kGlobal:
      return c10::IValue("<" + node.name + ">");
    case Node::Kind::kMark:
      break;
  }
  TORCH_CHECK(false, "torch file: a pickle MARK was used as a value (corrupt file?)");
}

c10::impl::GenericDict empty_dict() {
  return c10::impl::GenericDict(c10::AnyType::get(), c10::AnyType::get());
}

c10::ScalarType storage_dtype(const std::string& storage_class, const std::string& path) {
  static const std::pair<const char*, c10::ScalarType> kStorages[] = {
      {"torch.FloatStorage", torch::kFloat32}, {"torch.DoubleStorage", torch::kFloat64},
      {"torch.HalfStorage", torch::kFloat16},  {"torch.BFloat16Storage", torch::kBFloat16},
      {"torch.LongStorage", torch::kInt64},    {"torch.IntStorage", torch::kInt32},
      {"torch.ShortStorage", torch::kInt16},   {"torch.CharStorage", torch::kInt8},
      {"torch.ByteStorage", torch::kUInt8},    {"torch.BoolStorage", torch::kBool},
  };
  for (const auto& [name, dtype] : kStorages)
    if (storage_class == name) return dtype;
  TORCH_CHECK(false, "torch file '", path, "': unsupported storage type ", storage_class,
              " (expected float, double, half, bfloat16 or an integer/bool storage)");
}

class Unpickler {
 public:
  Unpickler(caffe2::serialize::PyTorchStreamReader& archive, const std::string& path)
      : archive_(archive), path_(path) {
    auto [data, size] = archive_.getRecord("data.pkl");
    const char* bytes = static_cast<const char*>(data.get());
    pickle_.assign(bytes, bytes + size);
    if (archive_.hasRecord("byteorder")) {
      auto [order, order_size] = archive_.getRecord("byteorder");
      const std::string text(static_cast<const char*>(order.get()), order_size);
      TORCH_CHECK(text == "little", "torch file '", path_,
                  "': expected little-endian storages, got byteorder '", text, "'");
    }
  }

  c10::IValue run() {
    while (true) {
      TORCH_CHECK(at_ < pickle_.size(), "torch file '", path_, "': data.pkl ends without STOP");
      const uint8_t op = read_u8();
      if (op == '.') break;  // STOP
      step(op);
    }
    TORCH_CHECK(stack_.size() == 1, "torch file '", path_, "': expected one object, got ",
                stack_.size());
    return to_ivalue(stack_.back());
  }

 private:
  uint8_t read_u8() { return static_cast<uint8_t>(pickle_.at(at_++)); }
  uint64_t read_le(size_t bytes) {
    TORCH_CHECK(at_ + bytes <= pickle_.size(), "torch file '", path_, "': data.pkl truncated");
    uint64_t value = 0;
    for (size_t i = 0; i < bytes; ++i)
      value |= static_cast<uint64_t>(static_cast<uint8_t>(pickle_[at_ + i])) << (8 * i);
    at_ += bytes;
    return value;
  }
  std::string read_bytes(uint64_t count) {
    TORCH_CHECK(at_ + count <= pickle_.size(), "torch file '", path_, "': data.pkl truncated");
    std::string s(pickle_.data() + at_, count);
    at_ += count;
    return s;
  }
  std::string read_line() {
    const size_t end = pickle_.find('\n', at_);
    TORCH_CHECK(end != std::string::npos, "torch file '", path_, "': data.pkl truncated");
    std::string s = pickle_.substr(at_, end - at_);
    at_ = end + 1;
    return s;
  }

  Node pop() {
    TORCH_CHECK(!stack_.empty(), "torch file '", path_, "': pickle stack underflow");
    Node n = std::move(stack_.back());
    stack_.pop_back();
    return n;
  }
  // The nodes above the topmost MARK, which is removed.
  std::vector<Node> pop_to_mark() {
    std::vector<Node> items;
    while (true) {
      Node n = pop();
      if (n.kind == Node::Kind::kMark) break;
      items.push_back(std::move(n));
    }
    return {std::make_move_iterator(items.rbegin()), std::make_move_iterator(items.rend())};
  }
  void push(Node n) { stack_.push_back(std::move(n)); }

  static Node tuple_of(std::vector<Node> items) {
    Node n;
    n.kind = Node::Kind::kTuple;
    n.items = std::move(items);
    return n;
  }

  void set_items(Node& target, const std::vector<Node>& pairs) {
    if (target.kind != Node::Kind::kValue || !target.value.isGenericDict()) return;  // opaque
    auto dict = target.value.toGenericDict();
    for (size_t i = 0; i + 1 < pairs.size(); i += 2)
      dict.insert_or_assign(to_ivalue(pairs[i]), to_ivalue(pairs[i + 1]));
  }
  void append_items(Node& target, const std::vector<Node>& items) {
    if (target.kind != Node::Kind::kValue || !target.value.isList()) return;  // opaque
    auto list = target.value.toList();
    for (const auto& item : items) list.push_back(to_ivalue(item));
  }

  torch::Tensor storage(const Node& pid) {
    TORCH_CHECK(pid.kind == Node::Kind::kTuple && pid.items.size() == 5 &&
                    to_ivalue(pid.items[0]) == c10::IValue("storage") &&
                    pid.items[1].kind == Node::Kind::kGlobal,
                "torch file '", path_,
                "': expected persistent ids ('storage', type, key, location, numel)");
    const std::string key = to_ivalue(pid.items[2]).toStringRef();
    auto cached = storages_.find(key);
    if (cached != storages_.end()) return cached->second;
    const auto dtype = storage_dtype(pid.items[1].name, path_);
    const int64_t numel = to_ivalue(pid.items[4]).toInt();
    auto [data, size] = archive_.getRecord("data/" + key);
    auto tensor = torch::empty({numel}, torch::TensorOptions().dtype(dtype));
    TORCH_CHECK(size == static_cast<size_t>(tensor.nbytes()), "torch file '", path_, "': storage ",
                key, " holds ", size, " bytes, expected ", tensor.nbytes());
    if (size > 0) std::memcpy(tensor.data_ptr(), data.get(), size);
    storages_.emplace(key, tensor);
    return tensor;
  }

  Node reduce(const Node& callable, const Node& args) {
    TORCH_CHECK(callable.kind == Node::Kind::kGlobal || callable.kind == Node::Kind::kOpaque,
                "torch file '", path_, "': REDUCE on something that is not a class");
    const std::string& f = callable.name;
    const auto& a = args.items;
    if (f == "collections.OrderedDict" || f == "builtins.dict") return Node::of(empty_dict());
    if (f == "torch._utils._rebuild_tensor_v2" || f == "torch._utils._rebuild_tensor") {
      TORCH_CHECK(a.size() >= 4 && a[0].kind == Node::Kind::kValue && a[0].value.isTensor(),
                  "torch file '", path_, "': unexpected arguments of ", f);
      auto storage_tensor = a[0].value.toTensor();  // [numel]
      const int64_t offset = to_ivalue(a[1]).toInt();
      const auto sizes = to_ivalue(a[2]).toTupleRef().elements();
      const auto strides = to_ivalue(a[3]).toTupleRef().elements();
      std::vector<int64_t> size, stride;
      for (const auto& s : sizes) size.push_back(s.toInt());
      for (const auto& s : strides) stride.push_back(s.toInt());
      return Node::of(storage_tensor.as_strided(size, stride, offset));
    }
    if (f == "torch.jit._pickle.restore_type_tag") {  // (container, "Dict[str, Tensor]")
      TORCH_CHECK(!a.empty(), "torch file '", path_, "': ", f, " without arguments");
      return a[0];
    }
    if (f == "torch._utils._rebuild_parameter" ||
        f == "torch._utils._rebuild_parameter_with_state") {
      TORCH_CHECK(!a.empty(), "torch file '", path_, "': ", f, " without arguments");
      return a[0];
    }
    Node opaque;
    opaque.kind = Node::Kind::kOpaque;
    opaque.name = f;
    return opaque;
  }

  void step(uint8_t op) {
    switch (op) {
      case 0x80:
        read_u8();
        return;  // PROTO
      case 0x95:
        read_le(8);
        return;  // FRAME
      case '(': {
        Node m;
        m.kind = Node::Kind::kMark;
        push(m);
        return;
      }
      case '}':
        push(Node::of(empty_dict()));
        return;
      case ']':
        push(Node::of(c10::impl::GenericList(c10::AnyType::get())));
        return;
      case ')':
        push(tuple_of({}));
        return;
      case 't':
        push(tuple_of(pop_to_mark()));
        return;
      case 0x85:
      case 0x86:
      case 0x87: {  // TUPLE1..3
        std::vector<Node> items(op - 0x84);
        for (auto it = items.rbegin(); it != items.rend(); ++it) *it = pop();
        push(tuple_of(std::move(items)));
        return;
      }
      case 'l': {  // LIST
        auto items = pop_to_mark();
        Node list = Node::of(c10::impl::GenericList(c10::AnyType::get()));
        append_items(list, items);
        push(list);
        return;
      }
      case 'd': {  // DICT
        auto items = pop_to_mark();
        Node dict = Node::of(empty_dict());
        set_items(dict, items);
        push(dict);
        return;
      }
      case 'a': {
        Node item = pop();
        append_items(stack_.back(), {item});
        return;
      }
      case 'e': {
        auto items = pop_to_mark();
        append_items(stack_.back(), items);
        return;
      }
      case 's': {
        Node value = pop(), key = pop();
        set_items(stack_.back(), {key, value});
        return;
      }
      case 'u': {
        auto items = pop_to_mark();
        set_items(stack_.back(), items);
        return;
      }
      case 'q':
        memo_[read_u8()] = stack_.back();
        return;  // BINPUT
      case 'r':
        memo_[static_cast<uint32_t>(read_le(4))] = stack_.back();
        return;  // LONG_BINPUT
      case 0x94:
        memo_[static_cast<uint32_t>(memo_.size())] = stack_.back();
        return;  // MEMOIZE
      case 'h':
        push(memo_at(read_u8()));
        return;  // BINGET
      case 'j':
        push(memo_at(static_cast<uint32_t>(read_le(4))));
        return;  // LONG_BINGET
      case 'X':
        push(Node::of(read_bytes(read_le(4))));
        return;  // BINUNICODE
      case 0x8c:
        push(Node::of(read_bytes(read_u8())));
        return;  // SHORT_BINUNICODE
      case 0x8d:
        push(Node::of(read_bytes(read_le(8))));
        return;  // BINUNICODE8
      case 'T':
      case 'B':
        push(Node::of(read_bytes(read_le(4))));
        return;  // BINSTRING, BINBYTES
      case 'U':
      case 'C':
        push(Node::of(read_bytes(read_u8())));
        return;  // SHORT_BINSTRING/BYTES
      case 'J':
        push(Node::of(static_cast<int64_t>(static_cast<int32_t>(read_le(4)))));
        return;
      case 'K':
        push(Node::of(static_cast<int64_t>(read_u8())));
        return;
      case 'M':
        push(Node::of(static_cast<int64_t>(read_le(2))));
        return;
      case 0x8a:
      case 0x8b: {  // LONG1, LONG4: little-endian two's complement
        const uint64_t count = op == 0x8a ? read_u8() : read_le(4);
        TORCH_CHECK(count <= 8, "torch file '", path_, "': integer wider than 64 bits");
        uint64_t value = count ? read_le(count) : 0;
        if (count > 0 && count < 8 && (value >> (8 * count - 1)) & 1) value |= ~0ULL << (8 * count);
        push(Node::of(static_cast<int64_t>(value)));
        return;
      }
      case 'G': {  // BINFLOAT: big-endian IEEE double
        uint64_t bits = 0;
        for (int i = 0; i < 8; ++i) bits = (bits << 8) | read_u8();
        double value;
        std::memcpy(&value, &bits, sizeof value);
        push(Node::of(value));
        return;
      }
      case 'N':
        push(Node::of(c10::IValue()));
        return;
      case 0x88:
        push(Node::of(true));
        return;
      case 0x89:
        push(Node::of(false));
        return;
      case 'c': {  // GLOBAL
        Node g;
        g.kind = Node::Kind::kGlobal;
        g.name = read_line();
        g.name += "." + read_line();
        push(g);
        return;
      }
      case 0x93: {  // STACK_GLOBAL
        Node name = pop(), module = pop();
        Node g;
        g.kind = Node::Kind::kGlobal;
        g.name = to_ivalue(module).toStringRef() + "." + to_ivalue(name).toStringRef();
        push(g);
        return;
      }
      case 'R':
      case 0x81: {  // REDUCE, NEWOBJ
        Node args = pop(), callable = pop();
        push(reduce(callable, args));
        return;
      }
      case 'Q': {
        Node pid = pop();
        push(Node::of(storage(pid)));
        return;
      }  // BINPERSID
      case 'b':
        pop();
        return;  // BUILD: object state (OrderedDict._metadata); not needed
      case '0':
        pop();
        return;
      case '1':
        pop_to_mark();
        return;
      case '2':
        push(stack_.back());
        return;
      default:
        TORCH_CHECK(false, "torch file '", path_, "': unsupported pickle opcode 0x", std::hex,
                    static_cast<int>(op), " at byte ", std::dec, at_ - 1,
                    " (expected a state dict saved with torch.save)");
    }
  }

  const Node& memo_at(uint32_t index) {
    auto it = memo_.find(index);
    TORCH_CHECK(it != memo_.end(), "torch file '", path_, "': pickle memo ", index, " unset");
    return it->second;
  }

  caffe2::serialize::PyTorchStreamReader& archive_;
  std::string path_;
  std::string pickle_;
  size_t at_ = 0;
  std::vector<Node> stack_;
  std::unordered_map<uint32_t, Node> memo_;
  std::unordered_map<std::string, torch::Tensor> storages_;
};

bool is_zip(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  TORCH_CHECK(in, "cannot read torch file '", path, "'");
  char magic[4] = {};
  in.read(magic, 4);
  return in.gcount() == 4 && std::memcmp(magic, "PK\x03\x04", 4) == 0;
}

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

// Writes the pickle of a dict of tensors as torch.save does (protocol 2, tensors rebuilt by
// torch._utils._rebuild_tensor_v2 from storages named by persistent ids), so that torch.load
// reads it also with weights_only=True (the default from PyTorch 2.6), which refuses the
// torch.jit._pickle.restore_type_tag that torch::pickle_save adds.
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

std::string strip_prefixes(std::string name) {
  for (const std::string prefix : {"_orig_mod.", "module."})
    if (name.rfind(prefix, 0) == 0) name = name.substr(prefix.size());
  return name;
}

}  // namespace

c10::IValue read_torch_file(const std::string& path) {
  TORCH_CHECK(is_zip(path), "torch file '", path,
              "': expected the zip format of torch.save (PyTorch >= 1.6); re-save it with "
              "torch.save(obj, path) from a current PyTorch");
  caffe2::serialize::PyTorchStreamReader archive(path);
  return Unpickler(archive, path).run();
}

StateDict state_dict_of(const c10::IValue& contents, const std::string& path) {
  TORCH_CHECK(contents.isGenericDict(), "torch file '", path,
              "': expected a dict (a state dict or a checkpoint with a 'model' entry), got ",
              contents.tagKind());
  auto dict = contents.toGenericDict();
  for (const char* key : {"model", "state_dict"}) {
    auto it = dict.find(c10::IValue(key));
    if (it != dict.end() && it->value().isGenericDict()) return state_dict_of(it->value(), path);
  }
  StateDict state;
  for (const auto& item : dict) {
    TORCH_CHECK(item.key().isString() && item.value().isTensor(), "torch file '", path,
                "': expected a dict of name -> tensor, got an entry ", item.key(), " of type ",
                item.value().tagKind());
    state.emplace_back(strip_prefixes(item.key().toStringRef()), item.value().toTensor());
  }
  return state;
}

void write_torch_state_dict(const StateDict& state, const std::string& path) {
  StateDict cpu;
  std::unordered_map<std::string, bool> seen;
  for (const auto& [name, tensor] : state) {
    TORCH_CHECK(!seen[name], "state dict: the name ", name, " appears twice");
    seen[name] = true;
    cpu.emplace_back(name, tensor.detach().to(torch::kCPU).contiguous());
  }
  StateDictPickler pickler;
  pickler.dict(cpu);
  const std::string temporary = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(temporary, std::ios::binary);
    TORCH_CHECK(out, "cannot write '", temporary, "'");
    // The zip layout of torch.save: archive/data.pkl, archive/data/<key>, archive/version.
    caffe2::serialize::PyTorchStreamWriter archive([&](const void* data, size_t size) {
      out.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
      return out.good() ? size : 0;
    });
    archive.writeRecord("data.pkl", pickler.bytes().data(), pickler.bytes().size());
    archive.writeRecord("byteorder", "little", 6);
    for (size_t i = 0; i < cpu.size(); ++i)
      archive.writeRecord("data/" + std::to_string(i), cpu[i].second.data_ptr(),
                          static_cast<size_t>(cpu[i].second.nbytes()));
    archive.writeEndOfFile();
    TORCH_CHECK(out.good(), "writing '", temporary, "' failed");
  }
  TORCH_CHECK(std::rename(temporary.c_str(), path.c_str()) == 0, "cannot rename ", temporary,
              " to ", path);
}

torch::Tensor find_tensor(const StateDict& state, const std::string& name) {
  for (const auto& [key, tensor] : state)
    if (key == name) return tensor;
  return {};
}

}  // namespace winnow::train
