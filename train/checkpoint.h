// Checkpoint: one HDF5 file holding everything a run needs to continue exactly where it stopped —
// /meta, /model, /optimizer, /compression, /schedule, /data (layout: docs/checkpoint-format.md).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "train/lr_schedule.h"
#include "train/model.h"

namespace winnow::train {

// Version of the layout below; a reader refuses files with a newer version.
inline constexpr int64_t kCheckpointSchemaVersion = 1;
inline constexpr const char* kCheckpointFormat = "winnow.checkpoint";

// /meta and /data: where the run stood when the file was written.
struct CheckpointMeta {
  int64_t schema_version = kCheckpointSchemaVersion;
  int64_t step = 0;              // optimizer steps completed (the next step to run)
  int64_t epoch = 0;             // epoch of the next batch
  int64_t samples_consumed = 0;  // global samples consumed = the sampler position to resume from
  int64_t global_batch = 0;      // samples per step when saved (the sampler position's unit)
  int64_t world_size = 1;        // ranks at save time (informative: resuming on others works)
  uint64_t seed = 0;             // data order and keyed randomness
  std::string reason;            // why it was written: interval, time, signal SIGTERM, stop_at, end
  std::string winnow_version;
  std::string model_kind;
  std::string config_ini;      // the effective configuration (loadable with --config)
  std::string token_schedule;  // the token-reduction schedule, described (a function of step)
  LrSchedule lr_schedule;
  // The blocks of the configured model (config_ini's model.depth) that this one no longer has,
  // ascending: removed when the co-scheduler's heal phase began (/meta removed_layers; absent =
  // none). A resume builds the configured model, removes them, then loads.
  std::vector<int64_t> removed_layers;
  // /compression: the state of compression components across steps (planner controller state,
  // token-evolution EMAs), by name. Written by write_checkpoint, filled by read_checkpoint (not by
  // read_checkpoint_meta).
  std::map<std::string, torch::Tensor> compression;
};

// The stages of a save, in order; a fault-injection callback may end the process at any of them
// to prove that a crash there leaves the previous checkpoint usable.
enum class SaveStage {
  kWritingData,    // the temporary file holds /meta and /model, not yet the optimizer state
  kBeforeRename,   // the temporary file is complete and fsync'ed, not yet renamed
  kBeforePointer,  // the checkpoint file is in place, `latest` still names the previous one
};
const char* to_string(SaveStage stage);
using SaveStageCallback = std::function<void(SaveStage)>;

// Writes `path` atomically (temporary file in the same folder, fsync, rename, fsync folder):
// meta, every model parameter and buffer, and — when `optimizer` is given — AdamW's per-parameter
// moments and step counts and each group's settings. Every dataset carries a CRC-32 of its bytes.
void write_checkpoint(const std::string& path, const TransformerModel& model,
                      const torch::optim::AdamW* optimizer, const CheckpointMeta& meta,
                      const SaveStageCallback& on_stage = {});

// Reads /meta (and /data) only; throws naming the file when it is not a readable checkpoint.
CheckpointMeta read_checkpoint_meta(const std::string& path);

// Restores the model (and the optimizer state when `optimizer` is given and the file has one)
// from `path` after checking the schema version, every name, shape and dtype against the model
// (one error lists the missing, unexpected and mis-shaped names) and every checksum (an error
// names the file and the dataset). Nothing is modified unless every check passes.
CheckpointMeta read_checkpoint(const std::string& path, TransformerModel& model,
                               torch::optim::AdamW* optimizer);

// One row of the parameter table `winnow inspect` prints.
struct CheckpointTensor {
  std::string name;  // dotted parameter name
  std::vector<int64_t> shape;
  std::string dtype;
  int64_t count = 0;
  bool buffer = false;  // a model buffer, not a parameter
};

// What a checkpoint holds, without building a model: meta, the model tensors, whether it has
// optimizer state (and for how many parameters), and the compression state it records.
struct CheckpointSummary {
  CheckpointMeta meta;
  std::vector<CheckpointTensor> tensors;
  int64_t parameters = 0;  // elements over parameters (buffers excluded)
  bool has_optimizer = false;
  int64_t optimizer_entries = 0;              // parameters with AdamW state
  std::vector<CheckpointTensor> compression;  // /compression: component state across steps
  int64_t file_bytes = 0;
};
CheckpointSummary summarize_checkpoint(const std::string& path, bool verify_checksums);

}  // namespace winnow::train
