// Replica consistency: broadcast rank 0's model state, and check that all replicas are identical.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "dist/communicator.h"

namespace winnow::dist {

// Collective: copies `root`'s values into every rank's `tensors`, in place and under
// torch::NoGradGuard. Tensors are coalesced into flat buffers of up to `bucket_bytes` per dtype,
// so a model with hundreds of small tensors costs a few broadcasts. Every rank must pass tensors
// of the same shapes and dtypes in the same order, all on one device.
void broadcast_tensors(Communicator& communicator, const std::vector<torch::Tensor>& tensors,
                       int root = 0, int64_t bucket_bytes = 25 * 1024 * 1024);

// A summary of a list of tensors: the float64 sum of all values (readable in logs) and a hash of
// every tensor's dtype, shape and bytes (catches differences the sum misses: permutations, -0.0).
struct ReplicaChecksum {
  double value_sum = 0.0;
  uint64_t byte_hash = 0;
};

// Local, not collective.
ReplicaChecksum replica_checksum(const std::vector<torch::Tensor>& tensors);

// Collective: all_reduce min and max of this rank's checksum; true on every rank when every rank
// has the same checksum, i.e. the replicas are (with overwhelming probability) bitwise identical.
bool replica_checksums_agree(Communicator& communicator, const std::vector<torch::Tensor>& tensors);

}  // namespace winnow::dist
