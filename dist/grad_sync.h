// GradSync: sums gradients across ranks in dtype-grouped buckets, overlapped with backward,
// zero-filling missing gradients.
#pragma once

#include <torch/torch.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "dist/bucket_assignment.h"
#include "dist/communicator.h"
#include "dist/gradient_ready_hooks.h"

namespace winnow::dist {

struct GradSyncOptions {
  // Cap on one bucket's flat buffer; PyTorch DDP's default bucket_cap_mb is 25. Smaller buckets
  // start earlier in backward (more overlap) and cost one collective each.
  int64_t bucket_bytes = 25 * 1024 * 1024;
};

// What the last finish() or synchronize() did. exposed_seconds / step time is the "waiting on
// communication" fraction the trainer reports; collective_seconds - exposed_seconds is the part
// of the communication that was hidden behind backward.
struct GradSyncStats {
  double exposed_seconds = 0.0;     // the caller blocked on collectives (wait() in finish())
  double collective_seconds = 0.0;  // start to observed completion, summed over collectives
  double total_seconds = 0.0;       // all GradSync time on the caller's thread, hooks included
  int64_t collectives = 0;          // all_reduce calls issued
  int64_t bytes_reduced = 0;        // payload of those calls
  int64_t buckets_started_in_backward = 0;  // started from an autograd hook, before finish()
  int64_t buckets_skipped = 0;  // synchronize() only: no parameter had a gradient on any rank
  int64_t parameters_zero_filled = 0;       // no gradient here, but one on another rank
  int64_t parameters_without_gradient = 0;  // synced parameters with no gradient on any rank
};

// Data-parallel gradient synchronisation.
//
// Which parameters: those with requires_grad() at construction; the rest are never touched.
// Buckets come from assign_buckets (reverse registration order, grouped by dtype, capped at
// options.bucket_bytes), so they are identical on every rank given the same parameter list. The
// constructor checks that with an all_gather of fingerprint() and throws, naming the ranks whose
// parameter list differs, instead of letting mismatched collectives hang or corrupt gradients.
//
// Result, on every rank: a parameter that had a gradient on some rank holds the SUM over ranks
// (created if it was undefined here); one that had none anywhere keeps an undefined grad, so
// optimizers leave it and its state alone (PyTorch DDP's find_unused_parameters contract, with the
// sum instead of DDP's average: the trainer divides the loss by the global sample or token count,
// which makes the gradient independent of how the batch is split over ranks). "Had a gradient"
// means grad() is defined when its bucket is packed, so gradients accumulated over several
// micro-batches count whichever micro-batch produced them: undefine every grad before a step's
// first micro-batch (as Trainer::train_step does), never zero it.
//
// Overlapped use, on every rank, once per optimizer step:
//
//   for each micro-batch:
//     loss = ...;                                         // local sum / GLOBAL count
//     sync.prepare_backward(/*last_micro_batch=*/..., loss);
//     loss.backward();
//   const GradSyncStats& stats = sync.finish();           // before any other collective
//
// During the last micro-batch's backward, post-hooks on the gradient accumulators count each
// bucket's ready parameters; when a bucket is complete and every bucket before it has started, it
// is packed and its all_reduce(sum) started without waiting (DDP's next_bucket_ rule), so every
// rank starts the buckets in bucket order whatever order its gradients arrive in. Each hook also
// lets started collectives progress. Parameters backward will not reach (found by walking the
// graph behind `loss`: a skipped layer, an unused scorer) are ready at once. finish() marks every
// remaining parameter ready (a rank whose hook never fired for one still takes part), starts the
// remaining buckets in order, then one all_reduce(max) of a uint8 "has a gradient" flag per
// parameter, waits for all of them and unpacks. So every rank issues exactly: bucket 0 .. bucket
// B-1, flags; no bucket is skipped (a rank cannot know during backward that a bucket is unused
// elsewhere). A parameter without a gradient here contributes zeros.
//
// synchronize() is the same result without overlap, called after backward: flags first, then the
// buckets that have a gradient somewhere (globally unused ones are skipped on every rank).
class GradSync {
 public:
  GradSync(std::shared_ptr<Communicator> communicator, std::vector<torch::Tensor> parameters,
           GradSyncOptions options = {});
  ~GradSync();
  // The hooks call back into this object: it stays where it was built.
  GradSync(const GradSync&) = delete;
  GradSync& operator=(const GradSync&) = delete;

  // Before each micro-batch's backward. With last_micro_batch the hooks start buckets during the
  // coming backward; before the others it only checks the call order (and may be left out).
  // `loss` (optional): the tensor backward will start from; parameters it does not reach are
  // marked ready now, so their buckets need not wait for finish().
  void prepare_backward(bool last_micro_batch, const torch::Tensor& loss = torch::Tensor());
  // Collective. After the last micro-batch's backward: completes the synchronisation.
  const GradSyncStats& finish();

  // Collective. Non-overlapped synchronisation after backward (no prepare_backward before it).
  const GradSyncStats& synchronize();

  const std::vector<Bucket>& buckets() const { return buckets_; }
  // Bucket indices in the order their all_reduce started in the last finish(): always
  // 0, 1, ..., B-1 (a test checks this on every rank).
  const std::vector<int64_t>& last_start_order() const { return start_order_; }
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
  enum class Phase { kIdle, kAccumulating, kLastBackward };

  void verify_same_parameters_on_all_ranks() const;
  void on_gradient_ready(int64_t slot);  // from the hooks
  void mark_ready(int64_t slot);
  void start_ready_buckets();
  void progress();
  bool has_local_gradient(int64_t slot) const;
  torch::Tensor& pack(size_t bucket);  // [bucket.numel]
  void unpack(size_t bucket, const uint8_t* global_flags);
  void count_flags(const uint8_t* global_flags);

  std::shared_ptr<Communicator> communicator_;
  std::vector<torch::Tensor> parameters_;
  GradSyncOptions options_;
  std::vector<int64_t> synced_;     // slot -> parameter index, for parameters that require grad
  std::vector<int64_t> flag_slot_;  // parameter index -> slot, or -1
  std::vector<int64_t> bucket_of_;  // slot -> bucket index
  std::vector<Bucket> buckets_;
  std::vector<torch::Tensor> bucket_buffers_;  // [bucket.numel] each, allocated on first use
  std::vector<uint8_t> local_flags_;           // slot -> had a gradient here when packed
  uint64_t fingerprint_ = 0;
  GradSyncStats last_stats_;

  // The overlapped protocol's state for the current step.
  std::unique_ptr<GradientReadyHooks> hooks_;
  Phase phase_ = Phase::kIdle;
  std::vector<uint8_t> ready_;                // slot -> its gradient is final for this step
  std::vector<int64_t> bucket_pending_;       // bucket -> parameters not yet ready
  size_t next_bucket_ = 0;                    // buckets [0, next_bucket_) have started
  std::vector<std::unique_ptr<Work>> works_;  // bucket -> its all_reduce, null once completed
  std::vector<std::chrono::steady_clock::time_point> started_at_;  // bucket -> when it started
  size_t first_incomplete_ = 0;  // buckets before it have completed
  std::vector<int64_t> start_order_;
  GradSyncStats stats_;  // being filled in during the step
};

}  // namespace winnow::dist
