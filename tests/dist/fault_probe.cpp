// Probe for the fail-fast tests, run under mpirun. The last rank misbehaves while the others wait
// in a collective:
//   fault_probe abort                      the last rank calls abort(3)
//   fault_probe throw                      the last rank throws c10::Error 0.5 s after the others
//                                          entered an all_reduce; main() catches it and does what
//                                          the CLI's fail() does: print, Communicator::abort(1)
//   fault_probe throw_pending              the last rank starts an all_reduce_async the others
//                                          reach only after 20 s, and throws; unwinding must not
//                                          wait for it, so main() aborts at once
//   fault_probe late TIMEOUT SLEEP         every rank has a TIMEOUT-second collective watchdog;
//                                          after three good all_reduces the last rank sleeps SLEEP
//                                          seconds before the fourth
// The job must end on its own (the test checks the exit code, the time and the message).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "dist/communicator.h"

namespace {

int usage() {
  std::fprintf(stderr,
               "usage: fault_probe abort | throw | throw_pending | late TIMEOUT_SECONDS "
               "SLEEP_SECONDS\n");
  return 2;
}

void fail_on_this_rank(int rank) {
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  TORCH_CHECK(false, "fault_probe: rank ", rank, " throws while the others wait in an all_reduce");
}

}  // namespace

int main(int argc, char** argv) {
  using winnow::dist::CommunicatorOptions;
  if (argc < 2) return usage();
  const std::string mode = argv[1];
  if (mode != "abort" && mode != "throw" && mode != "throw_pending" &&
      !(mode == "late" && argc == 4))
    return usage();

  CommunicatorOptions options;
  if (mode == "late") options.collective_timeout_seconds = std::atof(argv[2]);
  const auto communicator = winnow::dist::make_communicator("mpi", options);
  const int rank = communicator->rank();
  const bool misbehaves = rank == communicator->world_size() - 1;

  if (mode == "abort") {
    if (misbehaves) {
      std::fprintf(stderr, "fault_probe: rank %d aborts the job with exit code 3\n", rank);
      communicator->abort(3);
    }
    communicator->barrier();  // never completes: the abort must end these ranks too
  } else if (mode == "throw") {
    try {
      torch::Tensor value = torch::ones({1});  // [1]
      if (misbehaves) fail_on_this_rank(rank);
      communicator->all_reduce(value);  // never completes on the other ranks
    } catch (const c10::Error& error) {
      std::fprintf(stderr, "\nwinnow (rank %d): error: %s\n", rank, error.msg().c_str());
      communicator->abort(1);
    }
  } else if (mode == "throw_pending") {
    torch::Tensor value = torch::ones({1});  // [1]
    try {
      if (misbehaves) {
        auto pending = communicator->all_reduce_async(value);
        TORCH_CHECK(false, "fault_probe: rank ", rank, " throws with an all_reduce pending");
      }
      std::this_thread::sleep_for(std::chrono::seconds(20));
      communicator->all_reduce(value);
    } catch (const c10::Error& error) {
      std::fprintf(stderr, "\nwinnow (rank %d): error: %s\n", rank, error.msg().c_str());
      communicator->abort(1);
    }
  } else {
    torch::Tensor value = torch::ones({1});  // [1]
    for (int step = 0; step < 3; ++step) communicator->all_reduce(value);
    if (misbehaves) {
      std::fprintf(stderr, "fault_probe: rank %d sleeps %s s before collective #4\n", rank,
                   argv[3]);
      std::this_thread::sleep_for(std::chrono::duration<double>(std::atof(argv[3])));
    }
    communicator->all_reduce(value);  // #4: the others time out here
  }
  std::fprintf(stderr, "fault_probe: rank %d passed a collective it should not have\n", rank);
  return 0;
}
