// Work whose failure every rank must learn of: work rank 0 does alone (writing a checkpoint, the
// run's final files), and work every rank does (loading the data). One all-reduce shares whether
// it failed, and on a failure every rank throws the same dist::AgreedError, so the whole job ends
// together with one message instead of the other ranks waiting in their next collective.
#pragma once

#include <functional>
#include <string>

#include "dist/communicator.h"

namespace winnow::train {

// Runs `work` on rank 0 (world size 1: on the only rank). If it threw, every rank throws
// dist::AgreedError(describe_failure(reason)), where reason is the error's message without
// backtraces on rank 0 and "reported by rank 0" on the others. Collective: call on every rank.
void run_on_root(dist::Communicator& comm, const std::function<void()>& work,
                 const std::function<std::string(const std::string& reason)>& describe_failure);

// Runs `work` on every rank. If it threw anywhere, every rank throws
// dist::AgreedError(describe_failure(reason)): reason is rank 0's message where rank 0 failed;
// otherwise the lowest rank r that failed prints its own message on standard error
// ("winnow (rank r): error: ...") and reason is "reported by rank r (its message is above)".
// Collective: call on every rank.
void run_on_every_rank(
    dist::Communicator& comm, const std::function<void()>& work,
    const std::function<std::string(const std::string& reason)>& describe_failure);

}  // namespace winnow::train
