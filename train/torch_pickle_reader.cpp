// The data.pkl reader. Opcodes and their stack semantics are those of Python's pickle protocol
// (CPython's Lib/pickletools.py documents them); tensors are rebuilt as torch/_utils.py's
// _rebuild_tensor_v2 does, from storages named by persistent ids (torch/serialization.py).
#include "train/torch_pickle_reader.h"

#include <cstring>
#include <memory>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "data/error_text.h"

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
  // kTuple: shared, so the memo and DUP copy a tuple in O(1) however large it is.
  std::shared_ptr<const std::vector<Node>> items;
  int64_t depth = 0;  // kTuple: 1 + the deepest item

  static Node of(c10::IValue v) {
    Node n;
    n.value = std::move(v);
    return n;
  }
};

const char* opcode_name(uint8_t op) {
  switch (op) {
    case 'a':
      return "APPEND";
    case 'e':
      return "APPENDS";
    case 's':
      return "SETITEM";
    case 'u':
      return "SETITEMS";
    case 'q':
      return "BINPUT";
    case 'r':
      return "LONG_BINPUT";
    case 0x94:
      return "MEMOIZE";
    case '2':
      return "DUP";
    case 'b':
      return "BUILD";
    case '0':
      return "POP";
    case '1':
      return "POP_MARK";
    case 't':
      return "TUPLE";
    case 'l':
      return "LIST";
    case 'd':
      return "DICT";
    case 0x85:
      return "TUPLE1";
    case 0x86:
      return "TUPLE2";
    case 0x87:
      return "TUPLE3";
    case 0x93:
      return "STACK_GLOBAL";
    case 'R':
      return "REDUCE";
    case 0x81:
      return "NEWOBJ";
    case 'Q':
      return "BINPERSID";
    case '.':
      return "STOP";
    case 'h':
      return "BINGET";
    case 'j':
      return "LONG_BINGET";
    case 0x80:
      return "PROTO";
    case 0x95:
      return "FRAME";
    case 'c':
      return "GLOBAL";
    case 'J':
    case 'K':
    case 'M':
    case 0x8a:
    case 0x8b:
      return "an integer";
    case 'X':
    case 'T':
    case 'B':
    case 0x8c:
    case 'U':
    case 'C':
    case 0x8d:
    case 0x8e:
      return "a string";
    default:
      return "opcode";
  }
}

c10::impl::GenericDict empty_dict() {
  return c10::impl::GenericDict(c10::AnyType::get(), c10::AnyType::get());
}

bool is_container(const c10::IValue& value) {
  return value.isGenericDict() || value.isList();
}

class PickleReader {
 public:
  PickleReader(const std::string& pickle, const std::string& source,
               const TorchStorageLoader& load_storage, const TorchPickleLimits& limits)
      : pickle_(pickle), source_(source), load_storage_(load_storage), limits_(limits) {}

  c10::IValue run() {
    while (true) {
      TORCH_CHECK(at_ < pickle_.size(), "torch file '", source_, "': data.pkl ends at byte ", at_,
                  " without STOP");
      op_at_ = at_;
      op_ = read_u8();
      if (op_ == '.') break;  // STOP
      step();
    }
    check(stack_.size() == 1, "expected one object at STOP, found ", stack_.size(),
          " entries on the stack");
    return to_ivalue(value_at_top());
  }

 private:
  // Throws "torch file 'F': data.pkl byte B (OPCODE): <parts>".
  template <typename... Parts>
  void check(bool condition, const Parts&... parts) const {
    if (condition) return;
    TORCH_CHECK(false, "torch file '", source_, "': data.pkl byte ", op_at_, " (", opcode_name(op_),
                "): ", parts...);
  }

  uint8_t read_u8() {
    check(at_ < pickle_.size(), "data.pkl is truncated");
    return static_cast<uint8_t>(pickle_[at_++]);
  }
  uint64_t read_le(size_t bytes) {
    check(bytes <= pickle_.size() - at_, "data.pkl is truncated");
    uint64_t value = 0;
    for (size_t i = 0; i < bytes; ++i)
      value |= static_cast<uint64_t>(static_cast<uint8_t>(pickle_[at_ + i])) << (8 * i);
    at_ += bytes;
    return value;
  }
  std::string read_bytes(uint64_t count) {
    // Compared as "count <= what is left", which cannot overflow (count may be any 64-bit value).
    check(count <= pickle_.size() - at_, "a string of ", count, " bytes runs past the end (",
          pickle_.size() - at_, " bytes left)");
    std::string s(pickle_.data() + at_, static_cast<size_t>(count));
    at_ += static_cast<size_t>(count);
    return s;
  }
  std::string read_line() {
    const size_t end = pickle_.find('\n', at_);
    check(end != std::string::npos, "data.pkl is truncated (a line without its newline)");
    std::string s = pickle_.substr(at_, end - at_);
    at_ = end + 1;
    return s;
  }

  // --- the stack ----------------------------------------------------------------------------
  void push(Node n) { stack_.push_back(std::move(n)); }
  Node pop() {
    check(!stack_.empty(), "expected a value on the stack, found it empty");
    Node n = std::move(stack_.back());
    stack_.pop_back();
    return n;
  }
  // Pops a value (not a MARK).
  Node pop_value() {
    Node n = pop();
    check(n.kind != Node::Kind::kMark, "expected a value on the stack, found a MARK");
    return n;
  }
  // The value on top of the stack (not a MARK), left there.
  Node& value_at_top() {
    check(!stack_.empty(), "expected a value on the stack, found it empty");
    check(stack_.back().kind != Node::Kind::kMark, "expected a value on the stack, found a MARK");
    return stack_.back();
  }
  // The nodes above the topmost MARK, in order; the MARK is removed.
  std::vector<Node> pop_to_mark() {
    std::vector<Node> items;
    while (true) {
      check(!stack_.empty(), "expected a MARK on the stack, found none");
      Node n = std::move(stack_.back());
      stack_.pop_back();
      if (n.kind == Node::Kind::kMark) break;
      items.push_back(std::move(n));
    }
    return {std::make_move_iterator(items.rbegin()), std::make_move_iterator(items.rend())};
  }

  // --- containers: nesting depth, and no change after being placed in another ------------------
  int64_t depth_of(const Node& node) const {
    if (node.kind == Node::Kind::kTuple) return node.depth;
    if (node.kind != Node::Kind::kValue || !is_container(node.value)) return 0;
    const auto it = container_depth_.find(node.value.internalToPointer());
    return it == container_depth_.end() ? 1 : it->second;
  }
  // `node` is now inside another container: it may no longer change (so no cycles can form, and
  // the depth recorded for it stays true).
  void seal(const Node& node) {
    if (node.kind == Node::Kind::kValue && is_container(node.value))
      sealed_.insert(node.value.internalToPointer());
  }
  Node new_container(c10::IValue container) {
    container_depth_[container.internalToPointer()] = 1;
    containers_.push_back(container);  // alive until the end, so no address is ever reused
    return Node::of(std::move(container));
  }
  // Records that `target` now holds `items`; checks it may still change and the depth limit.
  void grow(const Node& target, const std::vector<Node>& items) {
    for (const auto& item : items) {
      check(item.kind != Node::Kind::kMark, "a MARK cannot be an element");
      seal(item);
    }
    const void* key = target.value.internalToPointer();
    check(sealed_.count(key) == 0,
          "a container is changed after it was placed in another one (recursive structures "
          "are not supported; expected a state dict saved with torch.save)");
    int64_t& depth = container_depth_[key];
    for (const auto& item : items) depth = std::max(depth, depth_of(item) + 1);
    check(depth <= limits_.max_depth, "containers nested deeper than ", limits_.max_depth,
          " levels");
  }
  Node tuple_of(std::vector<Node> items) {
    Node n;
    n.kind = Node::Kind::kTuple;
    n.depth = 1;
    for (const auto& item : items) {
      check(item.kind != Node::Kind::kMark, "a MARK cannot be an element");
      seal(item);
      n.depth = std::max(n.depth, depth_of(item) + 1);
    }
    check(n.depth <= limits_.max_depth, "containers nested deeper than ", limits_.max_depth,
          " levels");
    n.items = std::make_shared<const std::vector<Node>>(std::move(items));
    return n;
  }
  void set_items(const Node& target, const std::vector<Node>& pairs) {
    check(pairs.size() % 2 == 0, "expected key/value pairs, got an odd number (", pairs.size(),
          ") of values");
    if (target.kind != Node::Kind::kValue || !target.value.isGenericDict()) return;  // opaque
    grow(target, pairs);
    auto dict = target.value.toGenericDict();
    for (size_t i = 0; i + 1 < pairs.size(); i += 2)
      dict.insert_or_assign(to_ivalue(pairs[i]), to_ivalue(pairs[i + 1]));
  }
  void append_items(const Node& target, const std::vector<Node>& items) {
    if (target.kind != Node::Kind::kValue || !target.value.isList()) return;  // opaque
    grow(target, items);
    auto list = target.value.toList();
    for (const auto& item : items) list.push_back(to_ivalue(item));
  }

  c10::IValue to_ivalue(const Node& node) {
    check(++values_ <= limits_.max_values, "more than ", limits_.max_values,
          " values (a pickle that refers to its tuples over and over?)");
    switch (node.kind) {
      case Node::Kind::kValue:
        return node.value;
      case Node::Kind::kTuple: {
        // A tuple shared through the memo is materialised once, so sharing stays linear.
        const auto cached = tuples_.find(node.items.get());
        if (cached != tuples_.end()) return cached->second.second;
        std::vector<c10::IValue> items;
        items.reserve(node.items->size());
        for (const auto& item : *node.items) items.push_back(to_ivalue(item));
        auto tuple = c10::IValue(c10::ivalue::Tuple::create(std::move(items)));
        tuples_.emplace(node.items.get(), std::make_pair(node.items, tuple));
        return tuple;
      }
      case Node::Kind::kOpaque:
        return c10::IValue("<" + node.name + " object>");
      case Node::Kind::kGlobal:
        return c10::IValue("<" + node.name + ">");
      case Node::Kind::kMark:
        break;
    }
    check(false, "a MARK was used as a value");
    return {};
  }

  // --- typed operands -------------------------------------------------------------------------
  std::string string_of(const Node& node, const char* what) {
    check(node.kind == Node::Kind::kValue && node.value.isString(), "expected ", what,
          " to be a string");
    return node.value.toStringRef();
  }
  int64_t int_of(const Node& node, const char* what) {
    check(node.kind == Node::Kind::kValue && node.value.isInt(), "expected ", what,
          " to be an integer");
    return node.value.toInt();
  }
  std::vector<int64_t> ints_of(const Node& node, const char* what) {
    check(node.kind == Node::Kind::kTuple, "expected ", what, " to be a tuple of integers");
    std::vector<int64_t> values;
    for (const auto& item : *node.items) values.push_back(int_of(item, what));
    return values;
  }

  c10::ScalarType storage_dtype(const std::string& storage_class) {
    static const std::pair<const char*, c10::ScalarType> kStorages[] = {
        {"torch.FloatStorage", torch::kFloat32}, {"torch.DoubleStorage", torch::kFloat64},
        {"torch.HalfStorage", torch::kFloat16},  {"torch.BFloat16Storage", torch::kBFloat16},
        {"torch.LongStorage", torch::kInt64},    {"torch.IntStorage", torch::kInt32},
        {"torch.ShortStorage", torch::kInt16},   {"torch.CharStorage", torch::kInt8},
        {"torch.ByteStorage", torch::kUInt8},    {"torch.BoolStorage", torch::kBool},
    };
    for (const auto& [name, dtype] : kStorages)
      if (storage_class == name) return dtype;
    check(false, "unsupported storage type '", data::escaped_bytes(storage_class),
          "' (expected float, double, half, bfloat16 or an integer/bool storage)");
    return torch::kFloat32;
  }

  // A persistent id ('storage', torch.<Type>Storage, key, location, numel) -> [numel] tensor.
  torch::Tensor storage(const Node& pid) {
    check(pid.kind == Node::Kind::kTuple && pid.items->size() == 5,
          "expected a persistent id ('storage', type, key, location, numel)");
    const auto& items = *pid.items;
    check(string_of(items[0], "the persistent id's tag") == "storage",
          "expected a persistent id starting with 'storage'");
    check(items[1].kind == Node::Kind::kGlobal,
          "expected the persistent id's type to be a storage class");
    const std::string key = string_of(items[2], "the storage key");
    const int64_t numel = int_of(items[4], "the storage size");
    check(numel >= 0, "storage '", data::escaped_bytes(key), "' has a negative size ", numel);
    const auto dtype = storage_dtype(items[1].name);
    const auto cached = storages_.find(key);
    if (cached != storages_.end()) {
      check(cached->second.scalar_type() == dtype && cached->second.numel() == numel, "storage '",
            data::escaped_bytes(key), "' is named twice with different types");
      return cached->second;
    }
    torch::Tensor tensor = load_storage_(key, dtype, numel);
    check(tensor.defined() && tensor.dim() == 1 && tensor.numel() == numel &&
              tensor.scalar_type() == dtype,
          "storage '", data::escaped_bytes(key), "' did not load as ", numel, " elements");
    storages_.emplace(key, tensor);
    return tensor;
  }

  // torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...): a view of the storage,
  // after checking that every element it addresses lies inside it.
  Node rebuild_tensor(const std::string& f, const std::vector<Node>& a) {
    check(a.size() >= 4 && a[0].kind == Node::Kind::kValue && a[0].value.isTensor(),
          "expected the arguments (storage, offset, size, stride, ...) of ", f);
    const torch::Tensor storage_tensor = a[0].value.toTensor();  // [numel]
    const int64_t offset = int_of(a[1], "the storage offset");
    const auto size = ints_of(a[2], "the tensor size");
    const auto stride = ints_of(a[3], "the tensor strides");
    check(size.size() == stride.size(), "the tensor size has ", size.size(), " dimensions, ",
          "its strides ", stride.size());
    check(offset >= 0, "negative storage offset ", offset);
    // The last element addressed is offset + sum((size - 1) * stride); computed in 128 bits so
    // that no size or stride from the file can overflow it.
    __int128 last = offset;
    bool empty = false;
    for (size_t d = 0; d < size.size(); ++d) {
      check(size[d] >= 0 && stride[d] >= 0, "negative size or stride in dimension ", d);
      if (size[d] == 0) empty = true;
      last += static_cast<__int128>(size[d] > 0 ? size[d] - 1 : 0) * stride[d];
    }
    check(empty || last < storage_tensor.numel(), "the tensor of size ", c10::IntArrayRef(size),
          " and strides ", c10::IntArrayRef(stride), " at offset ", offset,
          " reaches past its storage of ", storage_tensor.numel(), " elements");
    if (empty) return Node::of(torch::empty(size, storage_tensor.options()));
    return Node::of(storage_tensor.as_strided(size, stride, offset));
  }

  Node reduce(const Node& callable, const Node& args) {
    check(callable.kind == Node::Kind::kGlobal || callable.kind == Node::Kind::kOpaque,
          "expected a class or function to call, found a value");
    check(args.kind == Node::Kind::kTuple, "expected a tuple of arguments");
    const std::string& f = callable.name;
    const auto& a = *args.items;
    if (f == "collections.OrderedDict" || f == "builtins.dict") return new_container(empty_dict());
    if (f == "torch._utils._rebuild_tensor_v2" || f == "torch._utils._rebuild_tensor")
      return rebuild_tensor(f, a);
    if (f == "torch.jit._pickle.restore_type_tag" || f == "torch._utils._rebuild_parameter" ||
        f == "torch._utils._rebuild_parameter_with_state") {
      check(!a.empty(), data::escaped_bytes(f), " without arguments");
      return a[0];
    }
    Node opaque;
    opaque.kind = Node::Kind::kOpaque;
    opaque.name = f;
    return opaque;
  }

  void step() {
    switch (op_) {
      case 0x80:  // PROTO
        read_u8();
        return;
      case 0x95:  // FRAME
        read_le(8);
        return;
      case '(': {  // MARK
        Node m;
        m.kind = Node::Kind::kMark;
        push(m);
        return;
      }
      case '}':
        push(new_container(empty_dict()));
        return;
      case ']':
        push(new_container(c10::impl::GenericList(c10::AnyType::get())));
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
        std::vector<Node> items(op_ - 0x84);
        for (auto it = items.rbegin(); it != items.rend(); ++it) *it = pop_value();
        push(tuple_of(std::move(items)));
        return;
      }
      case 'l': {  // LIST
        auto items = pop_to_mark();
        Node list = new_container(c10::impl::GenericList(c10::AnyType::get()));
        append_items(list, items);
        push(list);
        return;
      }
      case 'd': {  // DICT
        auto items = pop_to_mark();
        Node dict = new_container(empty_dict());
        set_items(dict, items);
        push(dict);
        return;
      }
      case 'a': {  // APPEND
        Node item = pop_value();
        append_items(value_at_top(), {item});
        return;
      }
      case 'e': {  // APPENDS
        auto items = pop_to_mark();
        append_items(value_at_top(), items);
        return;
      }
      case 's': {  // SETITEM
        Node value = pop_value();
        Node key = pop_value();
        set_items(value_at_top(), {key, value});
        return;
      }
      case 'u': {  // SETITEMS
        auto items = pop_to_mark();
        set_items(value_at_top(), items);
        return;
      }
      case 'q':  // BINPUT
        memo_put(read_u8());
        return;
      case 'r':  // LONG_BINPUT
        memo_put(static_cast<uint32_t>(read_le(4)));
        return;
      case 0x94:  // MEMOIZE
        memo_put(static_cast<uint32_t>(memo_.size()));
        return;
      case 'h':  // BINGET
        push(memo_at(read_u8()));
        return;
      case 'j':  // LONG_BINGET
        push(memo_at(static_cast<uint32_t>(read_le(4))));
        return;
      case 'X':  // BINUNICODE
      case 'T':  // BINSTRING
      case 'B':  // BINBYTES
        push(Node::of(read_bytes(read_le(4))));
        return;
      case 0x8c:  // SHORT_BINUNICODE
      case 'U':   // SHORT_BINSTRING
      case 'C':   // SHORT_BINBYTES
        push(Node::of(read_bytes(read_u8())));
        return;
      case 0x8d:  // BINUNICODE8
      case 0x8e:  // BINBYTES8
        push(Node::of(read_bytes(read_le(8))));
        return;
      case 'J':  // BININT
        push(Node::of(static_cast<int64_t>(static_cast<int32_t>(read_le(4)))));
        return;
      case 'K':  // BININT1
        push(Node::of(static_cast<int64_t>(read_u8())));
        return;
      case 'M':  // BININT2
        push(Node::of(static_cast<int64_t>(read_le(2))));
        return;
      case 0x8a:
      case 0x8b: {  // LONG1, LONG4: little-endian two's complement
        const uint64_t count = op_ == 0x8a ? read_u8() : read_le(4);
        check(count <= 8, "an integer of ", count, " bytes (expected at most 64 bits)");
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
        const std::string name = string_of(pop_value(), "the class name");
        const std::string module = string_of(pop_value(), "the module name");
        Node g;
        g.kind = Node::Kind::kGlobal;
        g.name = module + "." + name;
        push(g);
        return;
      }
      case 'R':
      case 0x81: {  // REDUCE, NEWOBJ
        Node args = pop_value();
        Node callable = pop_value();
        push(reduce(callable, args));
        return;
      }
      case 'Q':  // BINPERSID
        push(Node::of(storage(pop_value())));
        return;
      case 'b':  // BUILD: object state (OrderedDict._metadata, a module's __dict__); not needed
        pop_value();
        value_at_top();
        return;
      case '0':  // POP
        pop();
        return;
      case '1':  // POP_MARK
        pop_to_mark();
        return;
      case '2':  // DUP
        push(value_at_top());
        return;
      default:
        TORCH_CHECK(false, "torch file '", source_, "': unsupported pickle opcode 0x", std::hex,
                    static_cast<int>(op_), std::dec, " at byte ", op_at_,
                    " of data.pkl (expected a state dict saved with torch.save)");
    }
  }

  void memo_put(uint32_t index) { memo_[index] = value_at_top(); }
  const Node& memo_at(uint32_t index) {
    const auto it = memo_.find(index);
    check(it != memo_.end(), "memo entry ", index, " was never set");
    return it->second;
  }

  const std::string& pickle_;
  const std::string& source_;
  const TorchStorageLoader& load_storage_;
  TorchPickleLimits limits_;
  size_t at_ = 0, op_at_ = 0;
  uint8_t op_ = 0;
  int64_t values_ = 0;
  std::vector<Node> stack_;
  std::unordered_map<uint32_t, Node> memo_;
  std::unordered_map<std::string, torch::Tensor> storages_;
  std::unordered_map<const void*, int64_t> container_depth_;
  std::unordered_set<const void*> sealed_;
  std::vector<c10::IValue> containers_;  // every list and dict made, kept alive
  // Materialised tuples, with their items kept alive (the key is their address).
  std::unordered_map<const void*, std::pair<std::shared_ptr<const std::vector<Node>>, c10::IValue>>
      tuples_;
};

}  // namespace

c10::IValue read_torch_pickle(const std::string& pickle, const std::string& source,
                              const TorchStorageLoader& load_storage,
                              const TorchPickleLimits& limits) {
  return PickleReader(pickle, source, load_storage, limits).run();
}

}  // namespace winnow::train
