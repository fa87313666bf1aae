// Work that rank 0 does alone while every rank must learn how it went (writing a checkpoint, the
// run's final files): rank 0 runs it, one all-reduce shares whether it failed, and on a failure
// every rank throws the same dist::AgreedError, so the whole job ends together with one message
// instead of the other ranks waiting in their next collective.
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

}  // namespace winnow::train
