// WINNOW_MPI_CHECK: turns an MPI error code into an exception that names the call, the rank and a
// hint.
#pragma once

#include <mpi.h>

namespace winnow::dist::detail {

// Throws c10::Error when `error_code` is not MPI_SUCCESS. The message carries the MPI error string,
// the call text, file:line, the world rank (when MPI is still running) and a hint chosen from the
// error class. Errors only come back as codes on communicators with MPI_ERRORS_RETURN set; on the
// default MPI_ERRORS_ARE_FATAL handler MPI ends the job itself before returning.
void mpi_check(int error_code, const char* call, const char* file, int line);

}  // namespace winnow::dist::detail

// Wrap every MPI call: WINNOW_MPI_CHECK(MPI_Barrier(comm_));
#define WINNOW_MPI_CHECK(call) ::winnow::dist::detail::mpi_check((call), #call, __FILE__, __LINE__)
