// Latency of a small all_reduce, run under mpirun: what the collective watchdog costs per call.
// Prints, on rank 0, microseconds per call for
//   raw MPI_Allreduce     the blocking MPI call on the tensor's buffer
//   blocking path         what the mpi backend did before the watchdog: the same argument and
//                         thread checks, then the blocking MPI_Allreduce
//   no watchdog           MpiCommunicator with collective_timeout_seconds = 0 (MPI_Iallreduce +
//                         MPI_Waitall)
//   watchdog              MpiCommunicator with the default 600 s timeout (MPI_Iallreduce polled
//                         by CollectiveWatchdog)
// for 1 float and for 64 Ki floats, best of 5 rounds of N calls (argv[1], default 20000).
#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>

#include "dist/collective_checks.h"
#include "dist/mpi_communicator.h"

namespace {

using winnow::dist::CommunicatorOptions;
using winnow::dist::MpiCommunicator;

double best_microseconds(MPI_Comm comm, int calls, const std::function<void()>& call) {
  double best = 1e30;
  for (int round = 0; round < 5; ++round) {
    MPI_Barrier(comm);
    const double start = MPI_Wtime();
    for (int i = 0; i < calls; ++i) call();
    double elapsed = MPI_Wtime() - start;
    MPI_Allreduce(MPI_IN_PLACE, &elapsed, 1, MPI_DOUBLE, MPI_MAX, comm);
    best = std::min(best, elapsed / calls * 1e6);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  const int calls = argc > 1 ? std::atoi(argv[1]) : 20000;
  MpiCommunicator watched;  // default options: 600 s watchdog
  MpiCommunicator plain(CommunicatorOptions{0.0, torch::kCPU});
  MPI_Comm comm = watched.comm();
  if (watched.is_root()) {
    std::printf("all_reduce latency, %d ranks, best of 5 x %d calls (us per call)\n",
                watched.world_size(), calls);
    std::printf("%10s %18s %14s %14s %12s\n", "floats", "raw MPI_Allreduce", "blocking path",
                "no watchdog", "watchdog");
  }
  for (int64_t numel : {int64_t{1}, int64_t{65536}}) {
    torch::Tensor tensor = torch::ones({numel});  // [numel]
    const int n = numel == 1 ? calls : std::max(1, calls / 20);
    const double raw = best_microseconds(comm, n, [&] {
      MPI_Allreduce(MPI_IN_PLACE, tensor.data_ptr(), static_cast<int>(numel), MPI_FLOAT, MPI_MAX,
                    comm);
    });
    const double blocking = best_microseconds(comm, n, [&] {
      winnow::dist::detail::check_all_reduce_args(tensor, winnow::dist::ReduceOp::kMax, "mpi");
      int is_main = 0;
      MPI_Is_thread_main(&is_main);
      torch::Tensor buffer = tensor.is_contiguous() ? tensor : tensor.contiguous();  // [numel]
      MPI_Allreduce(MPI_IN_PLACE, buffer.data_ptr(), static_cast<int>(numel), MPI_FLOAT, MPI_MAX,
                    comm);
      if (!buffer.is_same(tensor)) tensor.copy_(buffer);
    });
    const double off =
        best_microseconds(comm, n, [&] { plain.all_reduce(tensor, winnow::dist::ReduceOp::kMax); });
    const double on = best_microseconds(
        comm, n, [&] { watched.all_reduce(tensor, winnow::dist::ReduceOp::kMax); });
    if (watched.is_root()) {
      std::printf("%10lld %18.2f %14.2f %14.2f %12.2f\n", static_cast<long long>(numel), raw,
                  blocking, off, on);
    }
  }
  return 0;
}
