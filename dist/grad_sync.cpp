// Bucketed gradient all-reduce, started from autograd hooks in bucket order, with zero-fill for
// missing gradients and the unused-parameter rule.
#include "dist/grad_sync.h"

#include <sstream>

#include "dist/hashing.h"
#include "dist/replica_sync.h"

namespace winnow::dist {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

GradSync::GradSync(std::shared_ptr<Communicator> communicator,
                   std::vector<torch::Tensor> parameters, GradSyncOptions options)
    : communicator_(std::move(communicator)),
      parameters_(std::move(parameters)),
      options_(options) {
  TORCH_CHECK(communicator_ != nullptr, "GradSync: expected a communicator, got nullptr");
  TORCH_CHECK(options_.bucket_bytes > 0, "GradSync: expected bucket_bytes > 0, got ",
              options_.bucket_bytes);

  std::vector<BucketItem> items;
  std::vector<torch::Tensor> synced_parameters;
  flag_slot_.assign(parameters_.size(), -1);
  fingerprint_ = hash_combine(hash_combine(0, static_cast<uint64_t>(options_.bucket_bytes)),
                              parameters_.size());
  for (size_t i = 0; i < parameters_.size(); ++i) {
    const torch::Tensor& parameter = parameters_[i];
    TORCH_CHECK(parameter.defined(),
                "GradSync: expected defined parameters, got an undefined one at index ", i);
    TORCH_CHECK(parameter.layout() == torch::kStrided,
                "GradSync: expected dense parameters, got layout ", parameter.layout(),
                " at index ", i);
    TORCH_CHECK(parameter.device() == parameters_.front().device(),
                "GradSync: expected every parameter on ", parameters_.front().device(),
                ", got parameter ", i, " on ", parameter.device());
    fingerprint_ = hash_combine(fingerprint_, static_cast<uint64_t>(parameter.scalar_type()));
    fingerprint_ = hash_combine(fingerprint_, parameter.requires_grad());
    for (const int64_t size : parameter.sizes()) {
      fingerprint_ = hash_combine(fingerprint_, static_cast<uint64_t>(size));
    }
    if (!parameter.requires_grad()) continue;
    TORCH_CHECK(parameter.is_leaf(), "GradSync: expected parameters to be leaf tensors, got a ",
                "non-leaf at index ", i, " (a parameter computed from others has no gradient of ",
                "its own; pass the tensors it is computed from)");
    flag_slot_[i] = static_cast<int64_t>(synced_.size());
    synced_.push_back(static_cast<int64_t>(i));
    synced_parameters.push_back(parameter);
    items.push_back({static_cast<int64_t>(i), parameter.scalar_type(), parameter.numel()});
  }

  buckets_ = assign_buckets(items, options_.bucket_bytes);
  bucket_of_.assign(synced_.size(), -1);
  for (size_t b = 0; b < buckets_.size(); ++b) {
    const Bucket& bucket = buckets_[b];
    fingerprint_ = hash_combine(fingerprint_, static_cast<uint64_t>(bucket.dtype));
    for (size_t j = 0; j < bucket.parameter_indices.size(); ++j) {
      fingerprint_ = hash_combine(fingerprint_, static_cast<uint64_t>(bucket.parameter_indices[j]));
      fingerprint_ = hash_combine(fingerprint_, static_cast<uint64_t>(bucket.offsets[j]));
      bucket_of_[flag_slot_[bucket.parameter_indices[j]]] = static_cast<int64_t>(b);
    }
  }
  bucket_buffers_.resize(buckets_.size());
  local_flags_.assign(synced_.size(), 0);
  verify_same_parameters_on_all_ranks();
  if (!synced_parameters.empty()) {
    hooks_ = std::make_unique<GradientReadyHooks>(
        synced_parameters, [this](int64_t slot) { on_gradient_ready(slot); });
  }
}

GradSync::~GradSync() = default;

void GradSync::verify_same_parameters_on_all_ranks() const {
  if (communicator_->world_size() == 1) return;
  const torch::Tensor mine = torch::tensor({static_cast<int64_t>(fingerprint_)}, torch::kLong);
  const torch::Tensor all = communicator_->all_gather(mine);  // [world, 1]
  const auto* values = all.data_ptr<int64_t>();
  std::ostringstream differing;
  for (int rank = 1; rank < communicator_->world_size(); ++rank) {
    if (values[rank] != values[0]) differing << (differing.tellp() > 0 ? ", " : "") << rank;
  }
  TORCH_CHECK(differing.tellp() == 0,
              "GradSync: expected the same parameter list (count, order, dtypes, shapes, "
              "requires_grad) and bucket_bytes on every rank, but rank(s) ",
              differing.str(), " differ from rank 0 (fingerprint ", values[0],
              "); every rank must build the same model and pass its parameters in the same order");
}

bool GradSync::has_local_gradient(int64_t slot) const {
  const int64_t index = synced_[slot];
  const torch::Tensor& grad = parameters_[index].grad();
  if (!grad.defined()) return false;
  TORCH_CHECK(grad.layout() == torch::kStrided,
              "GradSync: expected a dense gradient for parameter ", index, ", got layout ",
              grad.layout(), " (sparse gradients are not supported; use a dense embedding)");
  TORCH_CHECK(grad.numel() == parameters_[index].numel(),
              "GradSync: expected the gradient of parameter ", index, " to have ",
              parameters_[index].numel(), " elements, got ", grad.numel());
  return true;
}

torch::Tensor& GradSync::pack(size_t b) {
  const Bucket& bucket = buckets_[b];
  torch::Tensor& flat = bucket_buffers_[b];  // [bucket.numel]
  if (!flat.defined()) {
    flat = torch::empty({bucket.numel}, parameters_[bucket.parameter_indices.front()]
                                            .options()
                                            .dtype(bucket.dtype)
                                            .requires_grad(false));
  }
  for (size_t j = 0; j < bucket.parameter_indices.size(); ++j) {
    const int64_t slot = flag_slot_[bucket.parameter_indices[j]];
    torch::Tensor view = flat.narrow(0, bucket.offsets[j], bucket.numels[j]);  // [numel_j]
    local_flags_[slot] = has_local_gradient(slot) ? 1 : 0;
    if (local_flags_[slot]) {
      const torch::Tensor& grad = parameters_[synced_[slot]].grad();
      view.view(grad.sizes()).copy_(grad);
    } else {
      view.zero_();  // a skipped layer or unused scorer here: zeros keep the ranks in step
    }
  }
  return flat;
}

void GradSync::unpack(size_t b, const uint8_t* global_flags) {
  const Bucket& bucket = buckets_[b];
  const torch::Tensor& flat = bucket_buffers_[b];  // [bucket.numel]
  for (size_t j = 0; j < bucket.parameter_indices.size(); ++j) {
    const int64_t index = bucket.parameter_indices[j];
    const torch::Tensor& parameter = parameters_[index];
    torch::Tensor& grad = parameter.mutable_grad();
    if (global_flags[flag_slot_[index]] == 0) {  // unused everywhere: no optimizer update
      grad = torch::Tensor();
      continue;
    }
    if (!grad.defined()) grad = torch::empty_like(parameter);
    grad.copy_(flat.narrow(0, bucket.offsets[j], bucket.numels[j]).view(grad.sizes()));
  }
}

void GradSync::count_flags(const uint8_t* global_flags) {
  for (size_t slot = 0; slot < synced_.size(); ++slot) {
    stats_.parameters_without_gradient += global_flags[slot] == 0;
    stats_.parameters_zero_filled += global_flags[slot] != 0 && local_flags_[slot] == 0;
  }
}

void GradSync::prepare_backward(bool last_micro_batch, const torch::Tensor& loss) {
  const auto begin = Clock::now();
  TORCH_CHECK(phase_ != Phase::kLastBackward,
              "GradSync: prepare_backward() called again after the last micro-batch's; expected "
              "finish() first (each optimizer step ends with finish() on every rank)");
  if (phase_ == Phase::kIdle) stats_ = GradSyncStats();
  if (!last_micro_batch) {
    phase_ = Phase::kAccumulating;
    stats_.total_seconds += seconds_since(begin);
    return;
  }
  phase_ = Phase::kLastBackward;
  ready_.assign(synced_.size(), 0);
  bucket_pending_.clear();
  for (const Bucket& bucket : buckets_) {
    bucket_pending_.push_back(static_cast<int64_t>(bucket.parameter_indices.size()));
  }
  next_bucket_ = 0;
  first_incomplete_ = 0;
  works_.clear();
  works_.resize(buckets_.size());
  started_at_.assign(buckets_.size(), Clock::time_point());
  start_order_.clear();
  if (loss.defined() && hooks_) {
    // Parameters this backward will not reach get no hook call: ready now, with whatever an
    // earlier micro-batch accumulated (or zeros).
    const std::vector<bool> reachable = hooks_->reachable_from(loss);
    for (size_t slot = 0; slot < synced_.size(); ++slot) {
      if (!reachable[slot]) mark_ready(static_cast<int64_t>(slot));
    }
    torch::NoGradGuard no_grad;
    start_ready_buckets();
  }
  stats_.total_seconds += seconds_since(begin);
}

void GradSync::on_gradient_ready(int64_t slot) {
  // Earlier micro-batches only accumulate; a plain backward() before synchronize() needs nothing.
  if (phase_ != Phase::kLastBackward) return;
  const auto begin = Clock::now();
  TORCH_CHECK(!ready_[slot], "GradSync: the gradient of parameter ", synced_[slot],
              " arrived twice in the last micro-batch's backward; expected one backward pass per "
              "prepare_backward(true) (reentrant backward and activation checkpointing are not "
              "supported)");
  torch::NoGradGuard no_grad;
  mark_ready(slot);
  start_ready_buckets();
  progress();
  stats_.total_seconds += seconds_since(begin);
}

void GradSync::mark_ready(int64_t slot) {
  ready_[slot] = 1;
  bucket_pending_[bucket_of_[slot]] -= 1;
}

void GradSync::start_ready_buckets() {
  // Only in bucket order (DDP's next_bucket_ rule): a complete bucket waits for the ones before it,
  // so every rank starts the same sequence of collectives whatever order its gradients arrive in.
  while (next_bucket_ < buckets_.size() && bucket_pending_[next_bucket_] == 0) {
    torch::Tensor& flat = pack(next_bucket_);
    started_at_[next_bucket_] = Clock::now();
    works_[next_bucket_] = communicator_->all_reduce_async(flat, ReduceOp::kSum);
    stats_.collectives += 1;
    stats_.bytes_reduced += flat.numel() * flat.element_size();
    start_order_.push_back(static_cast<int64_t>(next_bucket_));
    ++next_bucket_;
  }
}

void GradSync::progress() {
  while (first_incomplete_ < next_bucket_ && works_[first_incomplete_]->test()) {
    stats_.collective_seconds += seconds_since(started_at_[first_incomplete_]);
    ++first_incomplete_;
  }
}

const GradSyncStats& GradSync::finish() {
  TORCH_CHECK(phase_ == Phase::kLastBackward,
              "GradSync: finish() without prepare_backward(/*last_micro_batch=*/true) before the "
              "last backward of the step; expected prepare_backward(true), backward(), finish()");
  const auto begin = Clock::now();
  torch::NoGradGuard no_grad;
  stats_.buckets_started_in_backward = static_cast<int64_t>(next_bucket_);

  // Parameters whose hook did not fire on this rank: their buckets start now, zero-filled.
  for (size_t slot = 0; slot < synced_.size(); ++slot) {
    if (!ready_[slot]) mark_ready(static_cast<int64_t>(slot));
  }
  start_ready_buckets();
  TORCH_INTERNAL_ASSERT(next_bucket_ == buckets_.size(), "every bucket must have started");

  torch::Tensor flags =
      torch::from_blob(  // [synced parameters]
          local_flags_.data(), {static_cast<int64_t>(local_flags_.size())}, torch::kByte)
          .clone();
  const auto flags_started = Clock::now();
  std::unique_ptr<Work> flags_work = communicator_->all_reduce_async(flags, ReduceOp::kMax);
  stats_.collectives += 1;
  stats_.bytes_reduced += flags.numel();

  for (size_t b = first_incomplete_; b < buckets_.size(); ++b) {
    const auto wait_begin = Clock::now();
    works_[b]->wait();
    stats_.exposed_seconds += seconds_since(wait_begin);
    stats_.collective_seconds += seconds_since(started_at_[b]);
  }
  first_incomplete_ = buckets_.size();
  const auto wait_begin = Clock::now();
  flags_work->wait();
  stats_.exposed_seconds += seconds_since(wait_begin);
  stats_.collective_seconds += seconds_since(flags_started);

  const auto* global_flags = flags.data_ptr<uint8_t>();
  for (size_t b = 0; b < buckets_.size(); ++b) unpack(b, global_flags);
  count_flags(global_flags);
  works_.clear();
  phase_ = Phase::kIdle;
  stats_.total_seconds += seconds_since(begin);
  last_stats_ = stats_;
  return last_stats_;
}

const GradSyncStats& GradSync::synchronize() {
  TORCH_CHECK(phase_ == Phase::kIdle,
              "GradSync: synchronize() between prepare_backward() and finish(); expected one of "
              "the two protocols per step, not both");
  const auto start = Clock::now();
  torch::NoGradGuard no_grad;
  stats_ = GradSyncStats();
  Communicator& communicator = *communicator_;

  const auto timed_all_reduce = [&](torch::Tensor& tensor, ReduceOp op) {
    const auto begin = Clock::now();
    communicator.all_reduce(tensor, op);
    stats_.exposed_seconds += seconds_since(begin);
    stats_.collectives += 1;
    stats_.bytes_reduced += tensor.numel() * tensor.element_size();
  };

  // 1. Which parameters have a gradient on some rank.
  torch::Tensor has_gradient = torch::zeros(  // [synced parameters]
      {static_cast<int64_t>(synced_.size())}, torch::kByte);
  auto* flags = has_gradient.data_ptr<uint8_t>();
  for (size_t slot = 0; slot < synced_.size(); ++slot) {
    local_flags_[slot] = has_local_gradient(static_cast<int64_t>(slot)) ? 1 : 0;
    flags[slot] = local_flags_[slot];
  }
  timed_all_reduce(has_gradient, ReduceOp::kMax);
  const auto* global_flags = has_gradient.data_ptr<uint8_t>();

  // 2. One summed flat buffer per bucket, same order on every rank.
  for (size_t b = 0; b < buckets_.size(); ++b) {
    bool any_gradient = false;
    for (const int64_t index : buckets_[b].parameter_indices) {
      any_gradient = any_gradient || global_flags[flag_slot_[index]] != 0;
    }
    if (!any_gradient) {  // decided from all-reduced flags, so every rank skips it
      stats_.buckets_skipped += 1;
      continue;
    }
    timed_all_reduce(pack(b), ReduceOp::kSum);
    unpack(b, global_flags);
  }
  count_flags(global_flags);

  stats_.collective_seconds = stats_.exposed_seconds;
  stats_.total_seconds = seconds_since(start);
  last_stats_ = stats_;
  return last_stats_;
}

void GradSync::broadcast_parameters(const std::vector<torch::Tensor>& tensors) const {
  broadcast_tensors(*communicator_, tensors, /*root=*/0, options_.bucket_bytes);
}

bool GradSync::parameters_checksum_agree() const {
  return replica_checksums_agree(*communicator_, parameters_);
}

}  // namespace winnow::dist
