// GradSync: sums gradients across ranks in dtype-grouped buckets, zero-filling missing gradients.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "dist/bucket_assignment.h"
#include "dist/communicator.h"

namespace winnow::dist {

struct GradSyncOptions {
  // Cap on one bucket's flat buffer; PyTorch DDP's default bucket_cap_mb is 25.
  int64_t bucket_bytes = 25 * 1024 * 1024;
};

// What the last synchronize() did; communication_seconds / step time is the "waiting on
// communication" fraction the trainer reports.
struct GradSyncStats {
  double communication_seconds = 0.0;       // inside Communicator::all_reduce
  double total_seconds = 0.0;               // the whole synchronize(): pack, communicate, unpack
  int64_t collectives = 0;                  // all_reduce calls issued
  int64_t bytes_reduced = 0;                // payload of those calls
  int64_t buckets_skipped = 0;              // buckets whose parameters had no gradient on any rank
  int64_t parameters_without_gradient = 0;  // synced parameters with no gradient on any rank
};

// Data-parallel gradient synchronisation, called after backward on every rank.
//
// Which parameters: those with requires_grad() at construction; the rest are never touched.
// Buckets come from assign_buckets (reverse registration order, grouped by dtype, capped at
// options.bucket_bytes), so they are identical on every rank given the same parameter list. The
// constructor checks that with an all_gather of fingerprint() and throws, naming the ranks whose
// parameter list differs, instead of letting mismatched collectives hang or corrupt gradients.
//
// synchronize() issues, in this fixed order on every rank:
//   1. one all_reduce(max) of a uint8 "has a gradient" flag per synced parameter;
//   2. one all_reduce(sum) per bucket, in bucket order, over a flat buffer packed from the
//      gradients; a parameter whose grad() is undefined on this rank contributes zeros (a rank that
//      skipped a layer or pruned every token of it still issues the same collectives). A bucket
//      whose parameters have no gradient on any rank is skipped on every rank.
// Afterwards a parameter that had a gradient on some rank holds the SUM over ranks on every rank
// (created if it was undefined here), and one that had none anywhere keeps an undefined grad, so
// optimizers leave it and its state alone (PyTorch DDP's find_unused_parameters contract, with the
// sum instead of DDP's average: the trainer divides the loss by the global sample or token count,
// which makes the gradient independent of how the batch is split over ranks).
class GradSync {
 public:
  GradSync(std::shared_ptr<Communicator> communicator, std::vector<torch::Tensor> parameters,
           GradSyncOptions options = {});

  // Collective. Returns the statistics of this call (also kept in last_stats()).
  const GradSyncStats& synchronize();

  const std::vector<Bucket>& buckets() const { return buckets_; }
  // Hash of bucket_bytes, every parameter's dtype, shape and requires_grad, and the buckets.
  uint64_t fingerprint() const { return fingerprint_; }
  const GradSyncStats& last_stats() const { return last_stats_; }
  const std::vector<torch::Tensor>& parameters() const { return parameters_; }
  Communicator& communicator() const { return *communicator_; }

  // Collective: copies rank 0's values into every rank's `tensors` (parameters and buffers, e.g.
  // BatchNorm statistics), without recording autograd history. See broadcast_tensors().
  void broadcast_parameters(const std::vector<torch::Tensor>& tensors) const;
  // Collective: true on every rank when all replicas of parameters() are bitwise identical.
  bool parameters_checksum_agree() const;

 private:
  void verify_same_parameters_on_all_ranks() const;

  std::shared_ptr<Communicator> communicator_;
  std::vector<torch::Tensor> parameters_;
  GradSyncOptions options_;
  std::vector<int64_t> synced_;     // indices of parameters that require grad
  std::vector<int64_t> flag_slot_;  // parameter index -> position in the flag vector
  std::vector<Bucket> buckets_;
  std::vector<torch::Tensor> bucket_buffers_;  // [bucket.numel] each, allocated on first use
  uint64_t fingerprint_ = 0;
  GradSyncStats last_stats_;
};

}  // namespace winnow::dist
