// Implements run_on_root and run_on_every_rank.
#include "train/root_work.h"

#include <iostream>

#include "data/error_text.h"
#include "dist/agreed_error.h"

namespace winnow::train {

void run_on_root(dist::Communicator& comm, const std::function<void()>& work,
                 const std::function<std::string(const std::string& reason)>& describe_failure) {
  std::string reason;
  bool failed = false;
  if (comm.is_root()) {
    try {
      work();
    } catch (const std::exception& error) {
      failed = true;
      reason = data::error_message(error);
    }
  }
  if (comm.world_size() > 1) {
    auto verdict = torch::tensor({failed ? 1.0 : 0.0}, torch::kFloat64);
    comm.all_reduce(verdict, dist::ReduceOp::kMax);
    failed = verdict.item<double>() > 0;
  }
  if (failed)
    throw dist::AgreedError(describe_failure(comm.is_root() ? reason : "reported by rank 0"));
}

void run_on_every_rank(
    dist::Communicator& comm, const std::function<void()>& work,
    const std::function<std::string(const std::string& reason)>& describe_failure) {
  std::string reason;
  bool failed = false;
  try {
    work();
  } catch (const std::exception& error) {
    failed = true;
    reason = data::error_message(error);
  }
  const int64_t world = comm.world_size();
  int64_t lowest_failed = failed ? comm.rank() : world;
  if (world > 1) {
    // [any rank failed, world - lowest failing rank]: both taken with one max-reduce.
    auto verdict = torch::tensor({failed ? 1.0 : 0.0, static_cast<double>(world - lowest_failed)},
                                 torch::kFloat64);
    comm.all_reduce(verdict, dist::ReduceOp::kMax);
    lowest_failed = world - static_cast<int64_t>(verdict[1].item<double>());
    // Rank 0 prints the agreed message; when rank 0 did not fail, the lowest failing rank
    // prints its own reason first (one line, not one per rank).
    if (failed && lowest_failed == comm.rank() && !comm.is_root()) {
      std::cerr << "\nwinnow (rank " << comm.rank() << "): error: " << reason << std::endl;
    }
    failed = verdict[0].item<double>() > 0;
  }
  if (!failed) return;
  throw dist::AgreedError(describe_failure(
      lowest_failed == 0
          ? (comm.is_root() ? reason : "reported by rank 0")
          : "reported by rank " + std::to_string(lowest_failed) + " (its message is above)"));
}

}  // namespace winnow::train
