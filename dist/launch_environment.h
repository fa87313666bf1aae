// Detects whether this process was started by an MPI launcher (mpirun, mpiexec, srun).
#pragma once

#include <functional>
#include <optional>
#include <string>

namespace winnow::dist {

// Returns the value of an environment variable, or nullopt when it is unset.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;

// True when the environment shows an MPI launcher: OMPI_COMM_WORLD_SIZE (Open MPI's mpirun),
// PMIX_RANK (any PMIx launcher, including srun --mpi=pmix), PMI_RANK (MPICH/Hydra, PMI-1/2), or
// SLURM_STEP_ID together with SLURM_NTASKS > 1 (a multi-task srun step). A plain process started
// from a shell or by ctest shows none of them. Pure function of `env`, so tests can feed it.
bool mpi_launcher_in_environment(const EnvLookup& env);

// mpi_launcher_in_environment(process environment) || MPI is already initialised (and not yet
// finalised) in this process. This is the rule `make_communicator("auto")` uses to pick "mpi".
bool started_by_mpi_launcher();

}  // namespace winnow::dist
