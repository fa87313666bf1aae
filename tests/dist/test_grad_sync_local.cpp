// Tests for GradSync, its autograd hooks and the replica helpers over the local communicator
// (world size 1).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <numeric>
#include <thread>

#include "dist/grad_sync.h"
#include "dist/gradient_ready_hooks.h"
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
  EXPECT_GE(stats.total_seconds, stats.exposed_seconds);
}

// The hooks fire after accumulation (the callback sees the summed gradient of a parameter used
// twice), once per parameter per backward, on the thread that called backward (LibTorch runs CPU
// backward on the caller's thread: MPI_THREAD_FUNNELED collectives may start from the hooks).
TEST(GradientReadyHooks, FireOnceAfterAccumulationOnTheCallingThread) {
  torch::Tensor a = torch::ones({3}).requires_grad_();   // [3]
  torch::Tensor b = torch::ones({2}).requires_grad_();   // [2]
  std::vector<std::pair<int64_t, torch::Tensor>> calls;  // (index, grad seen)
  std::vector<std::thread::id> threads;
  GradientReadyHooks hooks({a, b}, [&](int64_t index) {
    calls.emplace_back(index, (index == 0 ? a : b).grad().clone());
    threads.push_back(std::this_thread::get_id());
  });
  ((a * 2).sum() + (a * 3).sum() + b.sum()).backward();
  ASSERT_EQ(calls.size(), 2u);
  for (const auto& [index, grad] : calls) {
    EXPECT_TRUE(torch::equal(grad, index == 0 ? torch::full({3}, 5.0f) : torch::ones({2})))
        << "parameter " << index << " saw " << grad;
  }
  for (const auto& id : threads) EXPECT_EQ(id, std::this_thread::get_id());

  (a * 4).sum().backward();  // a second graph reuses the hooked accumulator
  ASSERT_EQ(calls.size(), 3u);
  EXPECT_EQ(calls.back().first, 0);
  EXPECT_TRUE(torch::equal(calls.back().second, torch::full({3}, 9.0f)));
}

TEST(GradientReadyHooks, ReachabilityFollowsTheGraphAndHooksStopWhenDestroyed) {
  torch::Tensor used = torch::ones({2}).requires_grad_();
  torch::Tensor unused = torch::ones({2}).requires_grad_();
  int64_t calls = 0;
  torch::Tensor loss;
  {
    GradientReadyHooks hooks({used, unused}, [&](int64_t) { ++calls; });
    loss = (used.exp() * 2).sum();
    EXPECT_EQ(hooks.reachable_from(loss), (std::vector<bool>{true, false}));
    EXPECT_EQ(hooks.reachable_from(used), (std::vector<bool>{true, false}));  // a leaf itself
    EXPECT_EQ(hooks.reachable_from(torch::ones({1})), (std::vector<bool>{false, false}));
  }
  loss.backward();  // the graph outlived the hooks: they were removed, nothing calls back
  EXPECT_EQ(calls, 0);
  EXPECT_TRUE(used.grad().defined());
  EXPECT_THROW(GradientReadyHooks({torch::ones({1})}, [](int64_t) {}), c10::Error);
}

// The overlapped protocol over one rank: gradients unchanged,
// unused ones undefined. Buckets start from the hooks in bucket order, all of them before finish().
TEST(GradSyncLocal, OverlappedSyncKeepsGradientsAndUnusedUndefined) {
  torch::manual_seed(0);
  torch::nn::Linear first(4, 6), second(6, 3), unused(4, 3);
  std::vector<torch::Tensor> parameters;
  for (auto* layer : {&first, &second, &unused}) {
    for (const auto& parameter : (*layer)->parameters()) parameters.push_back(parameter);
  }
  const torch::Tensor inputs = torch::randn({5, 4});  // [5, 4]
  GradSync sync(local(), parameters, GradSyncOptions{/*bucket_bytes=*/64});
  ASSERT_GE(sync.buckets().size(), 4u);

  const torch::Tensor loss = second(torch::relu(first(inputs))).pow(2).sum();  // []
  sync.prepare_backward(/*last_micro_batch=*/true, loss);
  loss.backward();
  std::vector<torch::Tensor> expected;
  for (const auto& parameter : parameters) {
    expected.push_back(parameter.grad().defined() ? parameter.grad().clone() : torch::Tensor());
  }
  const GradSyncStats& stats = sync.finish();

  for (size_t i = 0; i < parameters.size(); ++i) {
    ASSERT_EQ(parameters[i].grad().defined(), expected[i].defined()) << i;
    if (expected[i].defined()) {
      EXPECT_TRUE(torch::equal(parameters[i].grad(), expected[i])) << i;
    }
  }
  EXPECT_FALSE(unused->weight.grad().defined());
  EXPECT_EQ(stats.parameters_without_gradient, 2);
  EXPECT_EQ(stats.parameters_zero_filled, 0);
  EXPECT_EQ(stats.collectives, static_cast<int64_t>(sync.buckets().size()) + 1);
  EXPECT_EQ(stats.buckets_started_in_backward, static_cast<int64_t>(sync.buckets().size()));
  std::vector<int64_t> in_order(sync.buckets().size());
  std::iota(in_order.begin(), in_order.end(), 0);
  EXPECT_EQ(sync.last_start_order(), in_order);
  EXPECT_GE(stats.total_seconds, stats.exposed_seconds);
}

// pytorch/pytorch#69031: a parameter used only in an earlier micro-batch still counts as used.
TEST(GradSyncLocal, ParameterUsedOnlyInAnEarlierMicroBatchKeepsItsGradient) {
  torch::Tensor early = torch::ones({3}).requires_grad_();
  torch::Tensor always = torch::ones({2}).requires_grad_();
  GradSync sync(local(), {early, always}, GradSyncOptions{/*bucket_bytes=*/8});
  ASSERT_EQ(sync.buckets().size(), 2u);

  torch::Tensor loss = (early * 2).sum() + always.sum();
  sync.prepare_backward(/*last_micro_batch=*/false, loss);
  loss.backward();
  loss = (always * 3).sum();
  sync.prepare_backward(/*last_micro_batch=*/true, loss);
  loss.backward();
  const GradSyncStats& stats = sync.finish();

  ASSERT_TRUE(early.grad().defined());
  EXPECT_TRUE(torch::equal(early.grad(), torch::full({3}, 2.0f)));
  EXPECT_TRUE(torch::equal(always.grad(), torch::full({2}, 4.0f)));
  EXPECT_EQ(stats.parameters_without_gradient, 0);
}

TEST(GradSyncLocal, ProtocolMistakesAreErrors) {
  torch::Tensor parameter = torch::ones({2}).requires_grad_();
  GradSync sync(local(), {parameter});
  EXPECT_THROW(sync.finish(), c10::Error);  // no prepare_backward(true)
  sync.prepare_backward(/*last_micro_batch=*/true);
  EXPECT_THROW(sync.prepare_backward(/*last_micro_batch=*/true), c10::Error);
  EXPECT_THROW(sync.synchronize(), c10::Error);
  parameter.sum().backward();
  sync.finish();
  EXPECT_TRUE(torch::equal(parameter.grad(), torch::ones({2})));
  EXPECT_THROW(GradSync(local(), {parameter * 2}), c10::Error);  // not a leaf
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
