// CheckpointPolicy: the checkpoint reason after each step.
#include "train/checkpoint_policy.h"

#include <csignal>

namespace winnow::train {

CheckpointPolicy::CheckpointPolicy(const CheckpointOptions& options, int64_t total_steps,
                                   int64_t end_step)
    : enabled_(!options.dir.empty()),
      every_(options.every),
      minutes_(options.minutes),
      at_end_(options.at_end),
      total_steps_(total_steps),
      end_step_(end_step),
      last_save_(std::chrono::steady_clock::now()) {}

bool CheckpointPolicy::time_due() const {
  return time_due_after(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - last_save_).count());
}

bool CheckpointPolicy::time_due_after(double seconds_since_save) const {
  return enabled_ && minutes_ > 0 && seconds_since_save >= minutes_ * 60.0;
}

std::string CheckpointPolicy::reason(int64_t completed_steps, int stop_signal,
                                     bool time_due) const {
  if (!enabled_) return "";
  const bool last = completed_steps == total_steps_;
  if (stop_signal != 0) return stop_signal_reason(stop_signal);
  if (last && at_end_) return "end";
  if (!last && completed_steps == end_step_) return "stop_at";
  if (every_ > 0 && completed_steps % every_ == 0) return "interval";
  if (time_due) return "time";
  return "";
}

bool CheckpointPolicy::stops(int64_t completed_steps, int stop_signal) const {
  return stop_signal != 0 || completed_steps == end_step_;
}

std::string stop_signal_reason(int signal) {
  if (signal == SIGTERM) return "signal SIGTERM";
  if (signal == SIGUSR1) return "signal SIGUSR1";
  return "signal " + std::to_string(signal);
}

}  // namespace winnow::train
