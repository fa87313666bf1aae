// Bucketed gradient all-reduce with zero-fill for missing gradients and the unused-parameter rule.
#include "dist/grad_sync.h"

#include <chrono>
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
    flag_slot_[i] = static_cast<int64_t>(synced_.size());
    synced_.push_back(static_cast<int64_t>(i));
    items.push_back({static_cast<int64_t>(i), parameter.scalar_type(), parameter.numel()});
  }

  buckets_ = assign_buckets(items, options_.bucket_bytes);
  for (const Bucket& bucket : buckets_) {
    fingerprint_ = hash_combine(fingerprint_, static_cast<uint64_t>(bucket.dtype));
    for (size_t j = 0; j < bucket.parameter_indices.size(); ++j) {
      fingerprint_ = hash_combine(fingerprint_, static_cast<uint64_t>(bucket.parameter_indices[j]));
      fingerprint_ = hash_combine(fingerprint_, static_cast<uint64_t>(bucket.offsets[j]));
    }
  }
  bucket_buffers_.resize(buckets_.size());
  verify_same_parameters_on_all_ranks();
}

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

const GradSyncStats& GradSync::synchronize() {
  const auto start = Clock::now();
  torch::NoGradGuard no_grad;
  GradSyncStats stats;
  Communicator& communicator = *communicator_;

  const auto timed_all_reduce = [&](torch::Tensor& tensor, ReduceOp op) {
    const auto begin = Clock::now();
    communicator.all_reduce(tensor, op);
    stats.communication_seconds += seconds_since(begin);
    stats.collectives += 1;
    stats.bytes_reduced += tensor.numel() * tensor.element_size();
  };

  // 1. Which parameters have a gradient on some rank.
  torch::Tensor has_gradient = torch::zeros(  // [synced parameters]
      {static_cast<int64_t>(synced_.size())}, torch::kByte);
  auto* local_flags = has_gradient.data_ptr<uint8_t>();
  for (size_t slot = 0; slot < synced_.size(); ++slot) {
    const torch::Tensor& grad = parameters_[synced_[slot]].grad();
    if (!grad.defined()) continue;
    TORCH_CHECK(grad.layout() == torch::kStrided,
                "GradSync: expected a dense gradient for parameter ", synced_[slot],
                ", got layout ", grad.layout(),
                " (sparse gradients are not supported; use a dense embedding)");
    TORCH_CHECK(grad.numel() == parameters_[synced_[slot]].numel(),
                "GradSync: expected the gradient of parameter ", synced_[slot], " to have ",
                parameters_[synced_[slot]].numel(), " elements, got ", grad.numel());
    local_flags[slot] = 1;
  }
  timed_all_reduce(has_gradient, ReduceOp::kMax);
  const auto* global_flags = has_gradient.data_ptr<uint8_t>();
  for (size_t slot = 0; slot < synced_.size(); ++slot) {
    stats.parameters_without_gradient += global_flags[slot] == 0;
  }

  // 2. One summed flat buffer per bucket, same order on every rank.
  for (size_t b = 0; b < buckets_.size(); ++b) {
    const Bucket& bucket = buckets_[b];
    bool any_gradient = false;
    for (const int64_t index : bucket.parameter_indices) {
      any_gradient = any_gradient || global_flags[flag_slot_[index]] != 0;
    }
    if (!any_gradient) {  // decided from all-reduced flags, so every rank skips it
      stats.buckets_skipped += 1;
      continue;
    }
    torch::Tensor& flat = bucket_buffers_[b];  // [bucket.numel]
    if (!flat.defined()) {
      flat = torch::empty({bucket.numel}, parameters_[bucket.parameter_indices.front()]
                                              .options()
                                              .dtype(bucket.dtype)
                                              .requires_grad(false));
    }
    for (size_t j = 0; j < bucket.parameter_indices.size(); ++j) {
      const torch::Tensor& grad = parameters_[bucket.parameter_indices[j]].grad();
      torch::Tensor slot = flat.narrow(0, bucket.offsets[j], bucket.numels[j]);  // [numel_j]
      if (grad.defined()) {
        slot.view(grad.sizes()).copy_(grad);
      } else {
        slot.zero_();
      }
    }
    timed_all_reduce(flat, ReduceOp::kSum);
    for (size_t j = 0; j < bucket.parameter_indices.size(); ++j) {
      const int64_t index = bucket.parameter_indices[j];
      if (global_flags[flag_slot_[index]] == 0) continue;  // unused everywhere: stays undefined
      const torch::Tensor& parameter = parameters_[index];
      const torch::Tensor summed = flat.narrow(0, bucket.offsets[j], bucket.numels[j]);
      torch::Tensor& grad = parameter.mutable_grad();
      if (!grad.defined()) grad = torch::empty_like(parameter);
      grad.copy_(summed.view(grad.sizes()));
    }
  }

  stats.total_seconds = seconds_since(start);
  last_stats_ = stats;
  return last_stats_;
}

void GradSync::broadcast_parameters(const std::vector<torch::Tensor>& tensors) const {
  broadcast_tensors(*communicator_, tensors, /*root=*/0, options_.bucket_bytes);
}

bool GradSync::parameters_checksum_agree() const {
  return replica_checksums_agree(*communicator_, parameters_);
}

}  // namespace winnow::dist
