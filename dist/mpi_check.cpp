// Converts MPI error codes into exceptions with the call text, the rank and a hint.
#include "dist/mpi_check.h"

#include <torch/torch.h>

#include <string>

namespace winnow::dist::detail {
namespace {

std::string error_string(int error_code) {
  char text[MPI_MAX_ERROR_STRING] = {};
  int length = 0;
  if (MPI_Error_string(error_code, text, &length) != MPI_SUCCESS) {
    return "unknown MPI error code " + std::to_string(error_code);
  }
  return std::string(text, static_cast<size_t>(length));
}

// Best effort: MPI may be finalised or broken by the time we report.
std::string world_rank_text() {
  int initialized = 0;
  int finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (!initialized || finalized) return "?";
  int rank = -1;
  if (MPI_Comm_rank(MPI_COMM_WORLD, &rank) != MPI_SUCCESS) return "?";
  return std::to_string(rank);
}

const char* hint_for(int error_class) {
  switch (error_class) {
    case MPI_ERR_TRUNCATE:
    case MPI_ERR_COUNT:
    case MPI_ERR_TYPE:
    case MPI_ERR_OP:
      return "the ranks disagree on this collective: every rank must call the same collectives in "
             "the same order with the same numel, dtype and reduce op";
    case MPI_ERR_ROOT:
      return "the root must be a rank in [0, world_size) and the same on every rank";
    case MPI_ERR_BUFFER:
      return "a tensor buffer is invalid: pass defined, contiguous CPU tensors";
    case MPI_ERR_COMM:
      return "the communicator is invalid: was it used after MPI_Finalize or after being freed?";
    default:
      return "a peer rank may have crashed or the network failed; look for the first error in the "
             "output of every rank";
  }
}

}  // namespace

void mpi_check(int error_code, const char* call, const char* file, int line) {
  if (error_code == MPI_SUCCESS) return;
  int error_class = MPI_ERR_UNKNOWN;
  if (MPI_Error_class(error_code, &error_class) != MPI_SUCCESS) error_class = MPI_ERR_UNKNOWN;
  TORCH_CHECK(false, "MPI error on rank ", world_rank_text(), ": ", call, " failed at ", file, ":",
              line, ": ", error_string(error_code), ". Hint: ", hint_for(error_class));
}

}  // namespace winnow::dist::detail
