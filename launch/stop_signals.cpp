// Async-signal-safe stop flags: the handler only stores the signal number.
#include "launch/stop_signals.h"

#include <csignal>

namespace winnow::launch {
namespace {

volatile std::sig_atomic_t g_pending = 0;

extern "C" void on_stop_signal(int signal) {
  if (g_pending == signal) {  // asked twice: give up waiting for a clean stop
    std::signal(signal, SIG_DFL);
    std::raise(signal);
    return;
  }
  if (g_pending == 0) g_pending = signal;
}

}  // namespace

void install_stop_signal_handlers() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;  // an interrupted read/write simply continues
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGUSR1, &action, nullptr);
}

int pending_stop_signal() {
  return static_cast<int>(g_pending);
}

const char* stop_signal_name(int signal) {
  switch (signal) {
    case SIGTERM:
      return "SIGTERM";
    case SIGUSR1:
      return "SIGUSR1";
    default:
      return "a signal";
  }
}

}  // namespace winnow::launch
