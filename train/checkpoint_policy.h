// CheckpointPolicy: whether the trainer saves a checkpoint after a step, and why (the `reason`
// stored in the checkpoint and its metrics line).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "train/checkpoint.h"

namespace winnow::train {

// When and where the trainer writes checkpoints (see train/checkpoint_directory.h).
struct CheckpointOptions {
  std::string dir;         // empty = no checkpoints
  int64_t every = 500;     // steps between saves; 0 = no step interval
  double minutes = 30.0;   // minutes between saves (rank 0's clock, decided in lockstep); 0 = off
  int64_t keep = 3;        // newest step files kept; 0 = all
  bool at_end = true;      // save after the last step
  std::string config_ini;  // the effective configuration, stored in /meta
  std::string token_schedule;  // the planner, described, stored in /meta token_schedule
  // Fault injection (tests): called with the step being saved at each stage of a save.
  std::function<void(int64_t step, SaveStage stage)> on_stage;
};

// The decision after each step, from inputs every rank agrees on (the stop signal and the timed
// save are all-reduced by the trainer first), so all ranks save after the same steps. Reasons,
// first match wins:
//   "signal SIGTERM" (or SIGUSR1, or the number) — a stop signal; the run stops after saving
//   "end"      — the last step of train.steps (with checkpoint.at_end)
//   "stop_at"  — the last step of this run, train.stop_at, before train.steps
//   "interval" — every checkpoint.every steps
//   "time"     — checkpoint.minutes since the last save (or the start), by rank 0's clock
class CheckpointPolicy {
 public:
  // `total_steps` is train.steps; `end_step` the step this run stops after (stop_at or steps).
  CheckpointPolicy(const CheckpointOptions& options, int64_t total_steps, int64_t end_step);

  // Whether checkpoints are written at all (checkpoint.dir is set).
  bool enabled() const { return enabled_; }
  // Whether checkpoint.minutes have passed since the last save, by this process's clock.
  bool time_due() const;
  // The same for a given time since the last save (pure; time_due() passes the clock's).
  bool time_due_after(double seconds_since_save) const;
  // Restarts the clock of checkpoint.minutes (after every save).
  void saved() { last_save_ = std::chrono::steady_clock::now(); }

  // Why to save after `completed_steps` steps, or "" for no checkpoint (also when disabled).
  // `stop_signal` is the agreed pending signal (0: none), `time_due` the agreed timed save.
  std::string reason(int64_t completed_steps, int stop_signal, bool time_due) const;
  // Whether the run stops after `completed_steps` (a stop signal, or the end step reached).
  bool stops(int64_t completed_steps, int stop_signal) const;

 private:
  bool enabled_;
  int64_t every_;
  double minutes_;
  bool at_end_;
  int64_t total_steps_, end_step_;
  std::chrono::steady_clock::time_point last_save_;
};

// "signal SIGTERM", "signal SIGUSR1", or "signal <number>" for another one.
std::string stop_signal_reason(int signal);

}  // namespace winnow::train
