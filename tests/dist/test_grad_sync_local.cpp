// Tests for GradSync and the replica helpers over the local communicator (world size 1).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "dist/grad_sync.h"
#include "dist/local_communicator.h"
#include "dist/replica_sync.h"

namespace winnow::dist {
namespace {

std::shared_ptr<Communicator> local() {
  return std::make_shared<LocalCommunicator>();
}

TEST(GradSyncLocal, LeavesGradientsUnchangedAndUnusedUndefined) {
  torch::manual_seed(0);
  torch::nn::Linear used(4, 3);
  torch::nn::Linear unused(4, 3);
  torch::Tensor frozen = torch::ones({2});  // requires_grad false: not synced, never touched
  std::vector<torch::Tensor> parameters = used->parameters();
  for (const auto& parameter : unused->parameters()) parameters.push_back(parameter);
  parameters.push_back(frozen);

  used(torch::randn({5, 4})).sum().backward();
  const torch::Tensor weight_grad = used->weight.grad().clone();  // [3, 4]
  const torch::Tensor bias_grad = used->bias.grad().clone();      // [3]

  GradSync sync(local(), parameters, GradSyncOptions{/*bucket_bytes=*/32});
  const GradSyncStats& stats = sync.synchronize();

  EXPECT_TRUE(torch::equal(used->weight.grad(), weight_grad));
  EXPECT_TRUE(torch::equal(used->bias.grad(), bias_grad));
  EXPECT_FALSE(unused->weight.grad().defined());
  EXPECT_FALSE(unused->bias.grad().defined());
  EXPECT_FALSE(frozen.grad().defined());
  EXPECT_EQ(stats.parameters_without_gradient, 2);
  // With 32-byte buckets each 48-byte weight is alone and closes the open bucket, so every
  // parameter has its own bucket: unused.bias, unused.weight, used.bias, used.weight.
  ASSERT_EQ(sync.buckets().size(), 4u);
  EXPECT_EQ(stats.buckets_skipped, 2);
  EXPECT_EQ(stats.collectives, 1 + 2);  // flags + the two buckets with a gradient
  EXPECT_GE(stats.total_seconds, stats.communication_seconds);
}

TEST(GradSyncLocal, BucketsFollowReverseRegistrationOrder) {
  std::vector<torch::Tensor> parameters;
  for (int64_t numel : {4, 4, 4, 4}) parameters.push_back(torch::zeros({numel}).requires_grad_());
  GradSync sync(local(), parameters, GradSyncOptions{/*bucket_bytes=*/32});
  ASSERT_EQ(sync.buckets().size(), 2u);
  EXPECT_EQ(sync.buckets()[0].parameter_indices, (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(sync.buckets()[1].parameter_indices, (std::vector<int64_t>{1, 0}));
}

TEST(GradSyncLocal, HandlesNonContiguousGradients) {
  torch::Tensor parameter = torch::zeros({3, 5}).requires_grad_();
  const torch::Tensor transposed = torch::arange(15, torch::kFloat).reshape({5, 3}).t();  // [3, 5]
  parameter.mutable_grad() = transposed;
  GradSync sync(local(), {parameter});
  sync.synchronize();
  EXPECT_TRUE(torch::equal(parameter.grad(), torch::arange(15, torch::kFloat).reshape({5, 3}).t()));
}

TEST(GradSyncLocal, FingerprintDependsOnParametersAndBucketSize) {
  const std::vector<torch::Tensor> a{torch::zeros({4, 4}).requires_grad_(),
                                     torch::zeros({4}).requires_grad_()};
  const std::vector<torch::Tensor> b{torch::zeros({4, 4}).requires_grad_(),
                                     torch::zeros({5}).requires_grad_()};
  const auto fingerprint = [](const std::vector<torch::Tensor>& parameters, int64_t bytes) {
    return GradSync(local(), parameters, GradSyncOptions{bytes}).fingerprint();
  };
  EXPECT_EQ(fingerprint(a, 1024), fingerprint(a, 1024));
  EXPECT_NE(fingerprint(a, 1024), fingerprint(b, 1024));
  EXPECT_NE(fingerprint(a, 1024), fingerprint(a, 16));
}

TEST(GradSyncLocal, RejectsBadConstruction) {
  EXPECT_THROW(GradSync(nullptr, {}), c10::Error);
  EXPECT_THROW(GradSync(local(), {torch::Tensor()}), c10::Error);
  EXPECT_THROW(GradSync(local(), {torch::zeros({1})}, GradSyncOptions{0}), c10::Error);
}

TEST(ReplicaSyncLocal, BroadcastIsANoOpAndChecksumsAgree) {
  torch::nn::Linear model(3, 2);
  const torch::Tensor before = model->weight.detach().clone();
  GradSync sync(local(), model->parameters());
  sync.broadcast_parameters(model->parameters());
  EXPECT_TRUE(torch::equal(model->weight, before));
  EXPECT_FALSE(model->weight.grad().defined());
  EXPECT_TRUE(sync.parameters_checksum_agree());
}

TEST(ReplicaSyncLocal, ChecksumSeesWhatTheSumMisses) {
  const torch::Tensor values = torch::tensor({1.0f, 2.0f, 3.0f});
  const torch::Tensor permuted = torch::tensor({3.0f, 2.0f, 1.0f});
  const ReplicaChecksum a = replica_checksum({values});
  const ReplicaChecksum b = replica_checksum({permuted});
  EXPECT_EQ(a.value_sum, 6.0);
  EXPECT_EQ(a.value_sum, b.value_sum);
  EXPECT_NE(a.byte_hash, b.byte_hash);
  EXPECT_EQ(a.byte_hash, replica_checksum({values.clone()}).byte_hash);
  EXPECT_NE(a.byte_hash, replica_checksum({values.reshape({3, 1})}).byte_hash);
}

}  // namespace
}  // namespace winnow::dist
