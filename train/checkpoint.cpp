// HDF5 checkpoints: atomic write, verified read, summary for `winnow inspect`.
#include "train/checkpoint.h"

#include <zlib.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "data/atomic_file.h"
#include "data/error_text.h"
#include "data/h5_file.h"
#include "train/model_tensors.h"
#include "train/optimizer.h"
#include "winnow/version.h"

namespace winnow::train {
namespace {

using data::H5File;

// Checkpoints favour speed over size: parameters barely compress.
const data::H5WriteOptions kRawLayout{/*compression_level=*/0, /*shuffle=*/false,
                                      /*chunk_bytes=*/int64_t{4} << 20};

// CRC-32 (zlib's polynomial, as Python's zlib.crc32) of a tensor's bytes in row-major order.
int64_t crc32_of(const torch::Tensor& tensor) {
  const torch::Tensor flat = tensor.contiguous().cpu();
  const auto* bytes = static_cast<const Bytef*>(flat.data_ptr());
  size_t left = static_cast<size_t>(flat.numel()) * flat.element_size();
  uLong crc = crc32(0L, Z_NULL, 0);
  while (left > 0) {
    const uInt piece = static_cast<uInt>(std::min<size_t>(left, 1u << 30));
    crc = crc32(crc, bytes, piece);
    bytes += piece;
    left -= piece;
  }
  return static_cast<int64_t>(crc);
}

// Writes a dataset with its checksum attribute; counts it for /meta dataset_count.
void write_checked(H5File& file, const std::string& name, const torch::Tensor& tensor,
                   int64_t& count) {
  const torch::Tensor value = tensor.detach().cpu().contiguous();
  file.write_tensor(name, value, kRawLayout);
  file.set_attr_int(name, "crc32", crc32_of(value));
  ++count;
}

// Reads a dataset and checks its checksum; the error names the file and the dataset.
torch::Tensor read_checked(const H5File& file, const std::string& name) {
  torch::Tensor value;
  try {
    value = file.read_tensor(name);
  } catch (const c10::Error& e) {
    TORCH_CHECK(false, "checkpoint '", file.path(), "': dataset /", data::escaped_bytes(name, 200),
                " cannot be read (truncated or corrupted file?): ", e.msg());
  }
  TORCH_CHECK(file.has_attr(name, "crc32"), "checkpoint '", file.path(), "': dataset /",
              data::escaped_bytes(name, 200),
              " has no crc32 attribute (not written by winnow, or damaged)");
  const int64_t stored = file.attr_int(name, "crc32");
  const int64_t actual = crc32_of(value);
  TORCH_CHECK(stored == actual, "checkpoint '", file.path(), "': dataset /",
              data::escaped_bytes(name, 200), " fails its checksum (stored crc32 ", stored,
              ", computed ", actual, "): the file is corrupted");
  return value;
}

// Name of every parameter, keyed by the optimizer's state key.
std::map<OptimizerStateKey, std::string> parameter_names(const TransformerModel& model) {
  std::map<OptimizerStateKey, std::string> names;
  for (const auto& item : model.named_parameters())
    names[optimizer_state_key(item.value())] = item.key();
  return names;
}

std::string model_dataset(const std::string& name) {
  return "model/" + name;
}
std::string compression_dataset(const std::string& name) {
  return "compression/" + name;
}
std::string state_group(const std::string& name) {
  return "optimizer/state/" + name;
}

void write_optimizer(H5File& file, const TransformerModel& model,
                     const torch::optim::AdamW& optimizer, int64_t& count) {
  const auto names = parameter_names(model);
  file.create_group("optimizer/state");
  const auto& groups = optimizer.param_groups();
  file.set_attr_int("/optimizer", "groups", static_cast<int64_t>(groups.size()));
  file.set_attr_string("/optimizer", "kind", "adamw");
  for (size_t g = 0; g < groups.size(); ++g) {
    const std::string group = "optimizer/groups/" + std::to_string(g);
    file.create_group(group);
    const auto& options = static_cast<const torch::optim::AdamWOptions&>(groups[g].options());
    file.set_attr_double(group, "lr", options.lr());
    file.set_attr_double(group, "weight_decay", options.weight_decay());
    file.set_attr_double(group, "beta1", std::get<0>(options.betas()));
    file.set_attr_double(group, "beta2", std::get<1>(options.betas()));
    file.set_attr_double(group, "eps", options.eps());
    file.set_attr_int(group, "amsgrad", options.amsgrad() ? 1 : 0);
    std::vector<std::string> members;
    for (const auto& p : groups[g].params()) {
      const auto it = names.find(optimizer_state_key(p));
      TORCH_CHECK(it != names.end(), "checkpoint: an optimizer parameter is not a model parameter");
      members.push_back(it->second);
    }
    file.set_attr_strings(group, "parameters", members);
  }
  for (const auto& [key, name] : names) {
    const auto it = optimizer.state().find(key);
    if (it == optimizer.state().end()) continue;  // never updated: no state to keep
    const auto& state = static_cast<const torch::optim::AdamWParamState&>(*it->second);
    const std::string group = state_group(name);
    write_checked(file, group + "/exp_avg", state.exp_avg(), count);
    write_checked(file, group + "/exp_avg_sq", state.exp_avg_sq(), count);
    if (state.max_exp_avg_sq().defined())
      write_checked(file, group + "/max_exp_avg_sq", state.max_exp_avg_sq(), count);
    file.set_attr_int(group, "step", state.step());
  }
}

void write_meta(H5File& file, const TransformerModel& model, const CheckpointMeta& meta) {
  file.create_group("meta");
  file.set_attr_string("/meta", "format", kCheckpointFormat);
  file.set_attr_int("/meta", "schema_version", kCheckpointSchemaVersion);
  file.set_attr_int("/meta", "step", meta.step);
  file.set_attr_int("/meta", "epoch", meta.epoch);
  file.set_attr_int("/meta", "samples_consumed", meta.samples_consumed);
  file.set_attr_int("/meta", "world_size", meta.world_size);
  file.set_attr_string("/meta", "reason", meta.reason);
  file.set_attr_string("/meta", "winnow_version", WINNOW_VERSION);
  file.set_attr_string("/meta", "model_kind", model.kind());
  file.set_attr_string("/meta", "config", meta.config_ini);
  if (!meta.removed_layers.empty())
    file.set_attr_tensor("/meta", "removed_layers",
                         torch::tensor(meta.removed_layers, torch::kInt64));

  file.create_group("schedule");
  file.set_attr_double("/schedule", "peak_lr", meta.lr_schedule.peak_lr);
  file.set_attr_int("/schedule", "warmup_steps", meta.lr_schedule.warmup_steps);
  file.set_attr_int("/schedule", "total_steps", meta.lr_schedule.total_steps);
  file.set_attr_double("/schedule", "min_lr_ratio", meta.lr_schedule.min_lr_ratio);
  file.set_attr_double("/schedule", "lr_at_step", meta.lr_schedule.at(meta.step));
  file.set_attr_string("/schedule", "token_schedule", meta.token_schedule);

  file.create_group("data");
  file.set_attr_int("/data", "samples_consumed", meta.samples_consumed);
  file.set_attr_int("/data", "global_batch", meta.global_batch);
  file.set_attr_int("/data", "epoch", meta.epoch);
  file.set_attr_int("/data", "seed", static_cast<int64_t>(meta.seed));

  // Room for later compression state (learned scorers are model parameters; a co-scheduler
  // writes its state under /compression).
  file.create_group("compression");
  file.set_attr_string("/compression", "token_schedule", meta.token_schedule);
}

// Opens `path` as a checkpoint and checks format and schema version (the first things a damaged
// or foreign file fails).
H5File open_checkpoint(const std::string& path) {
  TORCH_CHECK(std::filesystem::exists(path), "checkpoint '", path, "' does not exist");
  std::unique_ptr<H5File> file;
  try {
    file = std::make_unique<H5File>(path, H5File::Mode::kRead);
  } catch (const c10::Error& e) {
    TORCH_CHECK(false, "checkpoint '", path,
                "' is not a readable HDF5 file (truncated, corrupted or not HDF5): ", e.msg());
  }
  try {
    TORCH_CHECK(file->exists("meta") && file->has_attr("/meta", "format"),
                "no /meta group with a format attribute");
    const std::string format = file->attr_string("/meta", "format");
    TORCH_CHECK(format == kCheckpointFormat, "/meta format is '", data::escaped_bytes(format),
                "', expected '", kCheckpointFormat, "'");
    const int64_t version = file->attr_int("/meta", "schema_version");
    TORCH_CHECK(version >= 1 && version <= kCheckpointSchemaVersion, "schema version ", version,
                " is not supported by this winnow (reads 1..", kCheckpointSchemaVersion, ")");
    TORCH_CHECK(file->has_attr("/meta", "dataset_count"),
                "/meta has no dataset_count: the save did not finish");
  } catch (const c10::Error& e) {
    TORCH_CHECK(false, "'", path, "' is not a complete winnow checkpoint: ", e.msg());
  }
  return std::move(*file);
}

CheckpointMeta read_meta(const H5File& file) {
  CheckpointMeta meta;
  try {
    meta.schema_version = file.attr_int("/meta", "schema_version");
    meta.step = file.attr_int("/meta", "step");
    meta.epoch = file.attr_int("/meta", "epoch");
    meta.samples_consumed = file.attr_int("/data", "samples_consumed");
    meta.global_batch = file.attr_int("/data", "global_batch");
    meta.seed = static_cast<uint64_t>(file.attr_int("/data", "seed"));
    meta.world_size = file.attr_int("/meta", "world_size");
    meta.reason = file.attr_string("/meta", "reason");
    meta.winnow_version = file.attr_string("/meta", "winnow_version");
    meta.model_kind = file.attr_string("/meta", "model_kind");
    meta.config_ini = file.attr_string("/meta", "config");
    meta.token_schedule = file.attr_string("/schedule", "token_schedule");
    meta.lr_schedule.peak_lr = file.attr_double("/schedule", "peak_lr");
    meta.lr_schedule.warmup_steps = file.attr_int("/schedule", "warmup_steps");
    meta.lr_schedule.total_steps = file.attr_int("/schedule", "total_steps");
    meta.lr_schedule.min_lr_ratio = file.attr_double("/schedule", "min_lr_ratio");
    if (file.has_attr("/meta", "removed_layers"))
      for (double layer : file.attr_doubles("/meta", "removed_layers"))
        meta.removed_layers.push_back(static_cast<int64_t>(layer));
  } catch (const c10::Error& e) {
    TORCH_CHECK(false, "checkpoint '", file.path(), "': damaged metadata: ", e.msg());
  }
  return meta;
}

}  // namespace

const char* to_string(SaveStage stage) {
  switch (stage) {
    case SaveStage::kWritingData:
      return "writing";
    case SaveStage::kBeforeRename:
      return "before_rename";
    case SaveStage::kBeforePointer:
      return "before_pointer";
  }
  return "?";
}

void write_checkpoint(const std::string& path, const TransformerModel& model,
                      const torch::optim::AdamW* optimizer, const CheckpointMeta& meta,
                      const SaveStageCallback& on_stage) {
  // The temporary file is removed on every failure (disk full, I/O error), so a failed save
  // leaves the folder as it was.
  data::AtomicFile atomic(path);
  {
    int64_t count = 0;
    H5File file(atomic.temporary_path(), H5File::Mode::kCreate);
    write_meta(file, model, meta);
    for (const auto& item : model.named_parameters())
      write_checked(file, model_dataset(item.key()), item.value(), count);
    for (const auto& item : model.named_buffers()) {
      write_checked(file, model_dataset(item.key()), item.value(), count);
      file.set_attr_int(model_dataset(item.key()), "buffer", 1);
    }
    if (on_stage) on_stage(SaveStage::kWritingData);
    if (optimizer != nullptr) write_optimizer(file, model, *optimizer, count);
    if (!meta.compression.empty()) file.create_group("compression");
    for (const auto& [name, tensor] : meta.compression)
      write_checked(file, compression_dataset(name), tensor, count);
    // Written last: a file without it never counts as complete.
    file.set_attr_int("/meta", "dataset_count", count);
    file.close();
  }
  data::sync_file(atomic.temporary_path());
  if (on_stage) on_stage(SaveStage::kBeforeRename);
  atomic.commit();
}

CheckpointMeta read_checkpoint_meta(const std::string& path) {
  return read_meta(open_checkpoint(path));
}

CheckpointMeta read_checkpoint(const std::string& path, TransformerModel& model,
                               torch::optim::AdamW* optimizer) {
  H5File file = open_checkpoint(path);
  CheckpointMeta meta = read_meta(file);
  TORCH_CHECK(meta.model_kind == model.kind(), "checkpoint '", path, "' holds a ",
              data::escaped_bytes(meta.model_kind), " model, but the configured model is a ",
              model.kind());

  // Model tensors: names, shapes and dtypes against the model, then checksums.
  try {
    check_stored_model_fits(file, model, "checkpoint");
  } catch (const c10::Error& e) {
    if (meta.removed_layers.empty()) throw;
    std::ostringstream removed;
    for (size_t i = 0; i < meta.removed_layers.size(); ++i)
      removed << (i ? "," : "") << meta.removed_layers[i];
    TORCH_CHECK(false, e.msg(), "\n(the checkpoint holds the model without blocks ", removed.str(),
                ", removed when the co-scheduler's heal phase began: `winnow train --resume` "
                "removes them before loading; the run's model.h5 holds the smaller model with "
                "its configuration)");
  }
  const auto wanted = model_tensors(model);
  int64_t verified = 0;
  std::vector<torch::Tensor> values;
  for (const auto& [name, tensor] : wanted) {
    values.push_back(read_checked(file, model_dataset(name)));
    ++verified;
  }

  // Optimizer state, keyed by parameter name.
  struct LoadedState {
    std::string name;
    torch::Tensor parameter, exp_avg, exp_avg_sq, max_exp_avg_sq;
    int64_t step = 0;
  };
  std::vector<LoadedState> states;
  std::vector<torch::optim::AdamWOptions> group_options;
  const bool file_has_optimizer = file.exists("optimizer");
  if (optimizer != nullptr && file_has_optimizer) {
    std::map<std::string, torch::Tensor> parameters;
    for (const auto& item : model.named_parameters()) parameters[item.key()] = item.value();
    const auto names = parameter_names(model);
    auto& groups = optimizer->param_groups();
    const int64_t stored_groups = file.attr_int("/optimizer", "groups");
    TORCH_CHECK(stored_groups == static_cast<int64_t>(groups.size()), "checkpoint '", path,
                "': optimizer has ", stored_groups, " parameter groups, expected ", groups.size());
    for (size_t g = 0; g < groups.size(); ++g) {
      const std::string group = "/optimizer/groups/" + std::to_string(g);
      std::vector<std::string> members;
      for (const auto& p : groups[g].params()) members.push_back(names.at(optimizer_state_key(p)));
      const auto stored_members = file.attr_strings(group, "parameters");
      TORCH_CHECK(stored_members == members, "checkpoint '", path, "': optimizer group ", g,
                  " holds different parameters than the configured model's group (",
                  stored_members.size(), " vs ", members.size(), " parameters)");
      torch::optim::AdamWOptions options;
      options.lr(file.attr_double(group, "lr"))
          .weight_decay(file.attr_double(group, "weight_decay"))
          .betas(
              std::make_tuple(file.attr_double(group, "beta1"), file.attr_double(group, "beta2")))
          .eps(file.attr_double(group, "eps"))
          .amsgrad(file.attr_int(group, "amsgrad") != 0);
      group_options.push_back(options);
    }
    for (const auto& name : file.children("optimizer/state")) {
      const auto it = parameters.find(name);
      TORCH_CHECK(it != parameters.end(), "checkpoint '", path, "': optimizer state for '",
                  data::escaped_bytes(name, 200),
                  "', which is not a parameter of the configured model");
      LoadedState s;
      s.name = name;
      s.parameter = it->second;
      const std::string group = state_group(name);
      s.exp_avg = read_checked(file, group + "/exp_avg");
      s.exp_avg_sq = read_checked(file, group + "/exp_avg_sq");
      verified += 2;
      if (file.exists(group + "/max_exp_avg_sq")) {
        s.max_exp_avg_sq = read_checked(file, group + "/max_exp_avg_sq");
        ++verified;
      }
      TORCH_CHECK(
          s.exp_avg.sizes() == s.parameter.sizes() && s.exp_avg_sq.sizes() == s.parameter.sizes(),
          "checkpoint '", path, "': optimizer moments of '", name, "' have shape ",
          s.exp_avg.sizes(), ", the parameter has ", s.parameter.sizes());
      s.step = file.attr_int(group, "step");
      states.push_back(std::move(s));
    }
  }
  if (file.exists("compression")) {
    for (const auto& name : file.children("compression")) {
      meta.compression[name] = read_checked(file, compression_dataset(name));
      ++verified;
    }
  }
  if (optimizer == nullptr || !file_has_optimizer) {
    // Without the optimizer section, the datasets still must all be there.
    if (file_has_optimizer)
      for (const auto& name : file.children("optimizer/state"))
        verified += static_cast<int64_t>(file.children(state_group(name)).size());
  }
  const int64_t declared = file.attr_int("/meta", "dataset_count");
  TORCH_CHECK(verified == declared, "checkpoint '", path, "' declares ", declared,
              " datasets but holds ", verified, ": the file is incomplete or damaged");

  // Every check passed: now modify the model and the optimizer.
  {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < wanted.size(); ++i)
      wanted[i].second.copy_(values[i].to(wanted[i].second.device()));
  }
  if (optimizer != nullptr && file_has_optimizer) {
    auto& groups = optimizer->param_groups();
    for (size_t g = 0; g < groups.size(); ++g)
      static_cast<torch::optim::AdamWOptions&>(groups[g].options()) = group_options[g];
    optimizer->state().clear();
    for (auto& s : states) {
      auto state = std::make_unique<torch::optim::AdamWParamState>();
      const auto options = s.parameter.options().requires_grad(false);
      state->step(s.step);
      state->exp_avg(s.exp_avg.to(options));
      state->exp_avg_sq(s.exp_avg_sq.to(options));
      if (s.max_exp_avg_sq.defined()) state->max_exp_avg_sq(s.max_exp_avg_sq.to(options));
      optimizer->state()[optimizer_state_key(s.parameter)] = std::move(state);
    }
  }
  return meta;
}

CheckpointSummary summarize_checkpoint(const std::string& path, bool verify_checksums) {
  H5File file = open_checkpoint(path);
  CheckpointSummary summary;
  summary.meta = read_meta(file);
  summary.file_bytes = static_cast<int64_t>(std::filesystem::file_size(path));
  for (const auto& name : file.children("model")) {
    const std::string dataset = model_dataset(name);
    const auto info = file.dataset_info(dataset);
    CheckpointTensor row;
    row.name = name;
    row.shape = info.shape;
    row.dtype = info.type_name;
    row.count = 1;
    for (const int64_t d : info.shape) row.count *= d;
    row.buffer = file.has_attr(dataset, "buffer");
    if (!row.buffer) summary.parameters += row.count;
    if (verify_checksums) read_checked(file, dataset);
    summary.tensors.push_back(row);
  }
  if (file.exists("compression")) {
    for (const auto& name : file.children("compression")) {
      const auto info = file.dataset_info(compression_dataset(name));
      CheckpointTensor row;
      row.name = name;
      row.shape = info.shape;
      row.dtype = info.type_name;
      row.count = 1;
      for (const int64_t d : info.shape) row.count *= d;
      if (verify_checksums) read_checked(file, compression_dataset(name));
      summary.compression.push_back(row);
    }
  }
  summary.has_optimizer = file.exists("optimizer");
  if (summary.has_optimizer) {
    const auto names = file.children("optimizer/state");
    summary.optimizer_entries = static_cast<int64_t>(names.size());
    if (verify_checksums)
      for (const auto& name : names)
        for (const auto& moment : file.children(state_group(name)))
          read_checked(file, state_group(name) + "/" + moment);
  }
  return summary;
}

}  // namespace winnow::train
