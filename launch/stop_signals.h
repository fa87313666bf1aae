// Stop signals: SIGTERM (Slurm preemption, `scancel`, `kill`) and SIGUSR1 (Slurm's
// `--signal=USR1@T` warning before the time limit) ask a training run to save and stop.
#pragma once

namespace winnow::launch {

// Installs the handlers (idempotent). `winnow train` installs them when its training loop
// starts: before that (loading data, resuming) a stop signal has its default action. A second
// signal of the same kind while the first is still pending restores the default action, so a user
// pressing Ctrl-C / sending SIGTERM twice is not stuck waiting for a save.
void install_stop_signal_handlers();

// The first stop signal received and not yet consumed (SIGTERM, SIGUSR1), or 0.
int pending_stop_signal();

const char* stop_signal_name(int signal);

}  // namespace winnow::launch
