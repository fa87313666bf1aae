// A run's checkpoint folder: naming, the `latest` link, retention, choosing what to resume.
#include "train/checkpoint_directory.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iomanip>
#include <regex>
#include <sstream>

namespace winnow::train {
namespace fs = std::filesystem;
namespace {

const std::regex kStepFile(R"(step-(\d{8,})\.h5)");

void fsync_folder(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

// Step files of `dir`, newest first.
std::vector<std::pair<int64_t, std::string>> step_files(const std::string& dir) {
  std::vector<std::pair<int64_t, std::string>> files;
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(dir, error)) {
    const std::string name = entry.path().filename().string();
    std::smatch match;
    if (entry.is_regular_file() && std::regex_match(name, match, kStepFile))
      files.emplace_back(std::stoll(match[1].str()), entry.path().string());
  }
  std::sort(files.rbegin(), files.rend());
  return files;
}

}  // namespace

CheckpointDirectory::CheckpointDirectory(std::string dir, int64_t keep)
    : dir_(std::move(dir)), keep_(keep) {
  TORCH_CHECK(!dir_.empty(), "checkpoint.dir: expected a directory, got an empty path");
  TORCH_CHECK(keep_ >= 0, "checkpoint.keep: expected >= 0 (0 keeps all), got ", keep_);
}

std::string CheckpointDirectory::path_for(int64_t step) const {
  std::ostringstream name;
  name << "step-" << std::setw(8) << std::setfill('0') << step << ".h5";
  return (fs::path(dir_) / name.str()).string();
}

std::string CheckpointDirectory::save(const TransformerModel& model,
                                      const torch::optim::AdamW* optimizer,
                                      const CheckpointMeta& meta,
                                      const SaveStageCallback& on_stage) {
  fs::create_directories(dir_);
  remove_stale_temporaries();
  const std::string path = path_for(meta.step);
  write_checkpoint(path, model, optimizer, meta, on_stage);
  if (on_stage) on_stage(SaveStage::kBeforePointer);
  point_latest_at(path);
  apply_retention();
  return path;
}

void CheckpointDirectory::point_latest_at(const std::string& file) const {
  const fs::path link = fs::path(dir_) / "latest";
  const fs::path temporary = fs::path(dir_) / ("latest.tmp." + std::to_string(::getpid()));
  std::error_code error;
  fs::remove(temporary, error);
  // Relative target, so the folder can be moved or copied whole.
  fs::create_symlink(fs::path(file).filename(), temporary, error);
  TORCH_CHECK(!error, "checkpoint: cannot create the link ", temporary.string(), ": ",
              error.message());
  TORCH_CHECK(std::rename(temporary.c_str(), link.c_str()) == 0, "checkpoint: cannot rename ",
              temporary.string(), " to ", link.string());
  fsync_folder(dir_);
}

void CheckpointDirectory::remove_stale_temporaries() const {
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(dir_, error)) {
    if (entry.path().filename().string().find(".tmp.") != std::string::npos)
      fs::remove(entry.path(), error);
  }
}

void CheckpointDirectory::apply_retention() const {
  if (keep_ == 0) return;
  const auto files = step_files(dir_);
  const auto pointed = latest();
  for (size_t i = static_cast<size_t>(keep_); i < files.size(); ++i) {
    if (pointed && fs::equivalent(*pointed, files[i].second)) continue;
    std::error_code error;
    fs::remove(files[i].second, error);
  }
}

std::vector<std::string> CheckpointDirectory::checkpoints() const {
  std::vector<std::string> paths;
  for (const auto& [step, path] : step_files(dir_)) paths.push_back(path);
  return paths;
}

std::optional<std::string> CheckpointDirectory::latest() const {
  const fs::path link = fs::path(dir_) / "latest";
  std::error_code error;
  if (!fs::is_symlink(link, error) || !fs::exists(link, error)) return std::nullopt;
  return (fs::path(dir_) / fs::read_symlink(link)).string();
}

ResumeChoice resolve_resume(const std::string& file_or_dir,
                            const std::function<void(const std::string&)>& try_load) {
  ResumeChoice choice;
  TORCH_CHECK(fs::exists(file_or_dir), "--resume: '", file_or_dir, "' does not exist");
  if (!fs::is_directory(file_or_dir)) {
    try_load(file_or_dir);
    choice.path = file_or_dir;
    return choice;
  }
  // A run directory holds checkpoints/; a checkpoint directory holds step files.
  std::string dir = file_or_dir;
  if (fs::is_directory(fs::path(dir) / "checkpoints"))
    dir = (fs::path(dir) / "checkpoints").string();
  const auto files = step_files(dir);
  TORCH_CHECK(!files.empty(), "--resume: no checkpoint (step-*.h5) in '", dir, "'");
  for (const auto& [step, path] : files) {
    try {
      try_load(path);
      choice.path = path;
      return choice;
    } catch (const c10::Error& e) {
      choice.rejected.push_back(path + ": " + e.msg());
    }
  }
  std::string tried;
  for (const auto& r : choice.rejected) tried += "\n  " + r;
  TORCH_CHECK(false, "--resume: no checkpoint in '", dir, "' could be loaded:", tried);
}

}  // namespace winnow::train
