// CheckpointDirectory: a run's checkpoints/ folder — step-numbered files, a `latest` pointer
// updated atomically, retention of the last K, and finding the newest complete checkpoint.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "train/checkpoint.h"

namespace winnow::train {

// Layout of a directory:
//   step-00001200.h5   one complete checkpoint per saved step (renamed into place when complete)
//   latest             a symbolic link to the newest step file, replaced atomically (rename)
//   *.tmp.<pid>        a save in progress, or the remains of a crashed one (never read; removed
//                      by the next save)
class CheckpointDirectory {
 public:
  // `keep` = how many step files to keep (the newest ones); 0 keeps all.
  CheckpointDirectory(std::string dir, int64_t keep);

  const std::string& dir() const { return dir_; }
  std::string path_for(int64_t step) const;

  // Writes the checkpoint for meta.step (write_checkpoint), then points `latest` at it, then
  // deletes step files beyond the newest `keep`. Returns the new file's path.
  std::string save(const TransformerModel& model, const torch::optim::AdamW* optimizer,
                   const CheckpointMeta& meta, const SaveStageCallback& on_stage = {});

  // Step files present, newest first (complete by construction: only renamed files match).
  std::vector<std::string> checkpoints() const;
  // The file `latest` points to, if any.
  std::optional<std::string> latest() const;

 private:
  void point_latest_at(const std::string& file) const;
  void remove_stale_temporaries() const;
  void apply_retention() const;

  std::string dir_;
  int64_t keep_;
};

// What --resume found: the file to load and how it was chosen.
struct ResumeChoice {
  std::string path;
  std::vector<std::string> rejected;  // newer files that failed to load, with the reason
};

// Resolves --resume: a file is used as is (errors propagate); a directory (a checkpoints/ folder
// or a run directory holding one) yields its newest step file for which `try_load` succeeds —
// when a newer file is damaged, the next older one is used and the rejection is reported.
// Throws when no checkpoint loads, listing every file tried and why it failed.
ResumeChoice resolve_resume(const std::string& file_or_dir,
                            const std::function<void(const std::string&)>& try_load);

}  // namespace winnow::train
