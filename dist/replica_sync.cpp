// Broadcast of model state from one rank and the bitwise replica check.
#include "dist/replica_sync.h"

#include <cstring>

#include "dist/bucket_assignment.h"
#include "dist/hashing.h"

namespace winnow::dist {

void broadcast_tensors(Communicator& communicator, const std::vector<torch::Tensor>& tensors,
                       int root, int64_t bucket_bytes) {
  if (tensors.empty()) return;
  torch::NoGradGuard no_grad;
  std::vector<BucketItem> items;
  items.reserve(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const torch::Tensor& tensor = tensors[i];
    TORCH_CHECK(tensor.defined(),
                "broadcast_tensors: expected defined tensors, got an undefined one at index ", i);
    TORCH_CHECK(tensor.device() == tensors.front().device(),
                "broadcast_tensors: expected every tensor on ", tensors.front().device(),
                ", got tensor ", i, " on ", tensor.device());
    items.push_back({static_cast<int64_t>(i), tensor.scalar_type(), tensor.numel()});
  }

  const bool is_root = communicator.rank() == root;
  for (const Bucket& bucket : assign_buckets(items, bucket_bytes)) {
    torch::Tensor flat = torch::empty(  // [bucket.numel]
        {bucket.numel},
        torch::TensorOptions().dtype(bucket.dtype).device(tensors.front().device()));
    for (size_t j = 0; is_root && j < bucket.parameter_indices.size(); ++j) {
      const torch::Tensor& tensor = tensors[bucket.parameter_indices[j]];
      flat.narrow(0, bucket.offsets[j], bucket.numels[j]).view(tensor.sizes()).copy_(tensor);
    }
    communicator.broadcast(flat, root);
    for (size_t j = 0; !is_root && j < bucket.parameter_indices.size(); ++j) {
      torch::Tensor tensor = tensors[bucket.parameter_indices[j]];
      tensor.copy_(flat.narrow(0, bucket.offsets[j], bucket.numels[j]).view(tensor.sizes()));
    }
  }
}

ReplicaChecksum replica_checksum(const std::vector<torch::Tensor>& tensors) {
  torch::NoGradGuard no_grad;
  ReplicaChecksum checksum;
  checksum.byte_hash = hash_combine(0, tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    TORCH_CHECK(tensors[i].defined(),
                "replica_checksum: expected defined tensors, got an undefined one at index ", i);
    const torch::Tensor host = tensors[i].detach().to(torch::kCPU).contiguous();  // [*shape]
    checksum.byte_hash =
        hash_combine(checksum.byte_hash, static_cast<uint64_t>(host.scalar_type()));
    for (const int64_t size : host.sizes()) {
      checksum.byte_hash = hash_combine(checksum.byte_hash, static_cast<uint64_t>(size));
    }
    checksum.byte_hash = hash_bytes(checksum.byte_hash, host.data_ptr(),
                                    static_cast<size_t>(host.numel() * host.element_size()));
    if (host.numel() > 0) checksum.value_sum += host.to(torch::kDouble).sum().item<double>();
  }
  return checksum;
}

bool replica_checksums_agree(Communicator& communicator,
                             const std::vector<torch::Tensor>& tensors) {
  const ReplicaChecksum checksum = replica_checksum(tensors);
  // The sum travels as its bit pattern: "identical" means bitwise, and integer min/max is exact.
  int64_t sum_bits = 0;
  std::memcpy(&sum_bits, &checksum.value_sum, sizeof(sum_bits));
  torch::Tensor lowest =  // [2]: byte hash, sum bits
      torch::tensor({static_cast<int64_t>(checksum.byte_hash), sum_bits}, torch::kLong);
  torch::Tensor highest = lowest.clone();  // [2]
  communicator.all_reduce(lowest, ReduceOp::kMin);
  communicator.all_reduce(highest, ReduceOp::kMax);
  return torch::equal(lowest, highest);
}

}  // namespace winnow::dist
