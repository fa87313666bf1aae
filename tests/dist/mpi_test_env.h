// The communicator shared by the multi-rank tests, owned by the custom main in mpi_test_main.cpp.
#pragma once

#include "dist/communicator.h"

namespace winnow::dist::testing {

// The "mpi" communicator created after MPI_Init and released before MPI_Finalize.
Communicator& world();

}  // namespace winnow::dist::testing
