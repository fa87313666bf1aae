// Implements run_on_root.
#include "train/root_work.h"

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

}  // namespace winnow::train
