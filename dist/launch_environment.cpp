// Launcher detection from the environment and from MPI's own state.
#include "dist/launch_environment.h"

#include <mpi.h>

#include <cstdlib>

namespace winnow::dist {
namespace {

std::optional<std::string> process_env(const std::string& name) {
  const char* value = std::getenv(name.c_str());
  if (value == nullptr) return std::nullopt;
  return std::string(value);
}

bool positive_integer_above_one(const std::optional<std::string>& text) {
  if (!text || text->empty()) return false;
  char* end = nullptr;
  const long long value = std::strtoll(text->c_str(), &end, 10);
  return end != nullptr && *end == '\0' && value > 1;
}

}  // namespace

bool mpi_launcher_in_environment(const EnvLookup& env) {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK"}) {
    if (env(name)) return true;
  }
  return env("SLURM_STEP_ID").has_value() && positive_integer_above_one(env("SLURM_NTASKS"));
}

bool started_by_mpi_launcher() {
  if (mpi_launcher_in_environment(process_env)) return true;
  int initialized = 0;
  int finalized = 0;
  MPI_Initialized(&initialized);  // allowed before MPI_Init and after MPI_Finalize
  MPI_Finalized(&finalized);
  return initialized != 0 && finalized == 0;
}

}  // namespace winnow::dist
