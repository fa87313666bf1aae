// Reading and writing PyTorch torch.save files: the zip archive (torch/serialization.py's layout:
// archive/data.pkl, archive/data/<storage key>, archive/byteorder); the pickle inside is read by
// train/torch_pickle_reader and written by train/torch_pickle_writer. See docs/interop.md.
#include "train/interop_torch_file.h"

#include <caffe2/serialize/inline_container.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include "data/atomic_file.h"
#include "data/error_text.h"
#include "train/torch_pickle_reader.h"
#include "train/torch_pickle_writer.h"

namespace winnow::train {
namespace {

bool is_zip(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  TORCH_CHECK(in, "cannot read torch file '", path, "': ", data::system_error_text(errno));
  char magic[4] = {};
  in.read(magic, 4);
  return in.gcount() == 4 && std::memcmp(magic, "PK\x03\x04", 4) == 0;
}

std::string record_text(caffe2::serialize::PyTorchStreamReader& archive, const std::string& name) {
  auto [data, size] = archive.getRecord(name);
  return std::string(static_cast<const char*>(data.get()), size);
}

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
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> archive;
  std::string pickle;
  try {
    archive = std::make_unique<caffe2::serialize::PyTorchStreamReader>(path);
    TORCH_CHECK(archive->hasRecord("data.pkl"), "the archive has no data.pkl");
    pickle = record_text(*archive, "data.pkl");
    if (archive->hasRecord("byteorder")) {
      const std::string order = record_text(*archive, "byteorder");
      TORCH_CHECK(order == "little", "expected little-endian storages, got byteorder '",
                  data::escaped_bytes(order), "'");
    }
  } catch (const c10::Error& e) {
    TORCH_CHECK(false, "torch file '", path,
                "' is not a readable torch.save archive: ", data::error_message(e));
  }
  const auto load_storage = [&](const std::string& key, c10::ScalarType dtype, int64_t numel) {
    const std::string record = "data/" + key;
    TORCH_CHECK(archive->hasRecord(record), "torch file '", path, "': storage '",
                data::escaped_bytes(key), "' has no record ", data::escaped_bytes(record),
                " in the archive");
    // Checked before allocating, with no overflow: numel comes from the file.
    const int64_t element = static_cast<int64_t>(c10::elementSize(dtype));
    TORCH_CHECK(numel <= INT64_MAX / element, "torch file '", path, "': storage '",
                data::escaped_bytes(key), "' declares ", numel, " elements");
    const size_t expected_bytes = static_cast<size_t>(numel) * static_cast<size_t>(element);
    auto [bytes, size] = archive->getRecord(record);
    TORCH_CHECK(size == expected_bytes, "torch file '", path, "': storage '",
                data::escaped_bytes(key), "' holds ", size, " bytes, expected ", expected_bytes,
                " (", numel, " elements of ", c10::toString(dtype), ")");
    auto tensor = torch::empty({numel}, torch::TensorOptions().dtype(dtype));
    if (size > 0) std::memcpy(tensor.data_ptr(), bytes.get(), size);
    return tensor;
  };
  return read_torch_pickle(pickle, path, load_storage);
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
    if (!item.key().isString() || !item.value().isTensor()) {
      std::ostringstream key;
      key << item.key();
      TORCH_CHECK(false, "torch file '", path,
                  "': expected a dict of name -> tensor, got an entry ",
                  data::escaped_bytes(key.str()), " of type ", item.value().tagKind());
    }
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
  const std::string pickle = state_dict_pickle(cpu);
  data::AtomicFile atomic(path);  // removes the temporary file on any failure
  std::FILE* out = std::fopen(atomic.temporary_path().c_str(), "wb");
  TORCH_CHECK(out != nullptr, "cannot create '", atomic.temporary_path(),
              "': ", data::system_error_text(errno));
  // The writer callback never fails towards PyTorchStreamWriter: a failure there throws, and its
  // destructor then writes the end of the archive and throws again from a destructor, which ends
  // the process (std::terminate). The first error is kept and reported after the archive is done.
  int write_error = 0;
  {
    caffe2::serialize::PyTorchStreamWriter archive([&](const void* data, size_t size) {
      if (write_error == 0 && size > 0 && std::fwrite(data, 1, size, out) != size)
        write_error = errno != 0 ? errno : EIO;
      return size;
    });
    // The zip layout of torch.save: archive/data.pkl, archive/data/<key>, archive/version.
    archive.writeRecord("data.pkl", pickle.data(), pickle.size());
    archive.writeRecord("byteorder", "little", 6);
    for (size_t i = 0; i < cpu.size(); ++i)
      archive.writeRecord("data/" + std::to_string(i), cpu[i].second.data_ptr(),
                          static_cast<size_t>(cpu[i].second.nbytes()));
    archive.writeEndOfFile();
  }
  if (write_error == 0 && std::fflush(out) != 0) write_error = errno;
  if (std::fclose(out) != 0 && write_error == 0) write_error = errno;
  TORCH_CHECK(write_error == 0, "cannot write '", path,
              "': ", data::system_error_text(write_error));
  atomic.commit();
}

torch::Tensor find_tensor(const StateDict& state, const std::string& name) {
  for (const auto& [key, tensor] : state)
    if (key == name) return tensor;
  return {};
}

}  // namespace winnow::train
