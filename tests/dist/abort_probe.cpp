// Probe for the fail-fast test: the last rank aborts while the others wait in a barrier.
#include <cstdio>

#include "dist/communicator.h"

int main() {
  const auto communicator = winnow::dist::make_communicator("mpi");
  if (communicator->rank() == communicator->world_size() - 1) {
    std::fprintf(stderr, "abort_probe: rank %d aborts the job with exit code 3\n",
                 communicator->rank());
    communicator->abort(3);
  }
  communicator->barrier();  // never completes: the abort must end these ranks too
  std::fprintf(stderr, "abort_probe: rank %d passed a barrier it should not have\n",
               communicator->rank());
  return 0;
}
