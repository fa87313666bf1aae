// Multi-rank tests for GradSync and replica consistency: zero-fill, unused parameters, equivalence.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "dist/grad_sync.h"
#include "dist/mpi_communicator.h"
#include "dist/replica_sync.h"
#include "tests/dist/mpi_test_env.h"

namespace winnow::dist {
namespace {

using testing::world;

// A non-owning shared_ptr to the test-wide communicator.
std::shared_ptr<Communicator> shared_world() {
  return std::shared_ptr<Communicator>(&world(), [](Communicator*) {});
}

TEST(GradSyncMpi, BucketFingerprintsAgreeAcrossRanks) {
  std::vector<torch::Tensor> parameters;
  for (int64_t numel : {300, 7, 1000, 5, 64}) {
    parameters.push_back(torch::zeros({numel}).requires_grad_());
  }
  parameters.push_back(torch::zeros({3, 3}, torch::kDouble).requires_grad_());
  GradSync sync(shared_world(), parameters, GradSyncOptions{/*bucket_bytes=*/1024});
  const torch::Tensor mine =  // [2]
      torch::tensor(
          {static_cast<int64_t>(sync.fingerprint()), static_cast<int64_t>(sync.buckets().size())});
  const torch::Tensor all = world().all_gather(mine);  // [world, 2]
  for (int r = 0; r < world().world_size(); ++r) EXPECT_TRUE(torch::equal(all[r], all[0])) << r;
}

TEST(GradSyncMpi, DifferentParameterListsFailOnEveryRankInsteadOfHanging) {
  if (world().world_size() == 1) GTEST_SKIP() << "needs two ranks";
  std::vector<torch::Tensor> parameters{torch::zeros({4}).requires_grad_()};
  if (world().rank() == 1) parameters.push_back(torch::zeros({2}).requires_grad_());
  try {
    GradSync sync(shared_world(), parameters);
    ADD_FAILURE() << "expected an error";
  } catch (const c10::Error& error) {
    EXPECT_NE(std::string(error.what()).find("rank(s) 1 differ"), std::string::npos)
        << error.what();
  }
  world().barrier();
}

TEST(GradSyncMpi, ZeroFillsMissingGradientsAndKeepsGloballyUnusedUndefined) {
  Communicator& communicator = world();
  const int rank = communicator.rank();
  const int world_size = communicator.world_size();

  torch::Tensor everywhere = torch::zeros({5, 7}).requires_grad_();              // all ranks
  torch::Tensor even_ranks = torch::zeros({1000}).requires_grad_();              // ranks 0, 2, ...
  torch::Tensor last_rank = torch::zeros({3}, torch::kDouble).requires_grad_();  // rank W-1
  torch::Tensor nowhere = torch::zeros({4}).requires_grad_();                    // no rank
  torch::Tensor big_on_root = torch::zeros({2000}).requires_grad_();             // own bucket
  torch::Tensor frozen = torch::zeros({6});                                      // not synced
  const std::vector<torch::Tensor> parameters{everywhere, even_ranks,  last_rank,
                                              nowhere,    big_on_root, frozen};

  everywhere.mutable_grad() = torch::full({5, 7}, rank + 1.0f);
  if (rank % 2 == 0) even_ranks.mutable_grad() = torch::arange(1000, torch::kFloat) * (rank + 1);
  if (rank == world_size - 1) last_rank.mutable_grad() = torch::full({3}, 0.5, torch::kDouble);
  if (rank == 0) big_on_root.mutable_grad() = torch::arange(2000, torch::kFloat);

  GradSync sync(shared_world(), parameters, GradSyncOptions{/*bucket_bytes=*/4096});
  ASSERT_GE(sync.buckets().size(), 3u);  // big_on_root alone, the double apart, the rest
  const GradSyncStats& stats = sync.synchronize();

  float even_rank_weight = 0;  // sum of (r + 1) over even ranks
  for (int r = 0; r < world_size; r += 2) even_rank_weight += r + 1;
  ASSERT_TRUE(everywhere.grad().defined());
  EXPECT_TRUE(
      torch::equal(everywhere.grad(), torch::full({5, 7}, world_size * (world_size + 1) / 2.0f)));
  ASSERT_TRUE(even_ranks.grad().defined());
  EXPECT_TRUE(
      torch::equal(even_ranks.grad(), torch::arange(1000, torch::kFloat) * even_rank_weight));
  ASSERT_TRUE(last_rank.grad().defined());
  EXPECT_TRUE(torch::equal(last_rank.grad(), torch::full({3}, 0.5, torch::kDouble)));
  ASSERT_TRUE(big_on_root.grad().defined());
  EXPECT_TRUE(torch::equal(big_on_root.grad(), torch::arange(2000, torch::kFloat)));
  EXPECT_FALSE(nowhere.grad().defined());
  EXPECT_FALSE(frozen.grad().defined());
  EXPECT_EQ(stats.parameters_without_gradient, 1);
  EXPECT_GE(stats.communication_seconds, 0.0);
  EXPECT_GE(stats.total_seconds, stats.communication_seconds);

  // Replicas stay identical through an optimizer step on the synchronised gradients.
  torch::optim::SGD optimizer(parameters, torch::optim::SGDOptions(0.1));
  optimizer.step();
  EXPECT_TRUE(torch::equal(nowhere, torch::zeros({4})));
  EXPECT_TRUE(sync.parameters_checksum_agree());
}

TEST(GradSyncMpi, SplitBatchWithGlobalNormalisationEqualsFullBatch) {
  // Global batch of 12 rows (divisible by 1, 2 and 3 ranks); loss = sum over local rows / 12.
  Communicator& communicator = world();
  const int64_t global_batch = 12;
  const int64_t rows = global_batch / communicator.world_size();
  torch::manual_seed(1234);                                       // the same data on every rank
  const torch::Tensor inputs = torch::randn({global_batch, 4});   // [12, 4]
  const torch::Tensor targets = torch::randn({global_batch, 3});  // [12, 3]

  torch::manual_seed(100 + communicator.rank());  // replicas start different...
  torch::nn::Linear model(4, 3);
  GradSync sync(shared_world(), model->parameters());
  EXPECT_EQ(sync.parameters_checksum_agree(), communicator.world_size() == 1);
  sync.broadcast_parameters(model->parameters());  // ...until rank 0's values are broadcast
  EXPECT_TRUE(sync.parameters_checksum_agree());

  torch::nn::Linear reference(4, 3);
  {
    torch::NoGradGuard no_grad;
    reference->weight.copy_(model->weight);
    reference->bias.copy_(model->bias);
  }
  const auto loss = [&](torch::nn::Linear& linear, int64_t begin, int64_t count) {
    const torch::Tensor prediction = linear(inputs.narrow(0, begin, count));  // [count, 3]
    return (prediction - targets.narrow(0, begin, count)).pow(2).sum() / global_batch;
  };
  loss(model, communicator.rank() * rows, rows).backward();
  sync.synchronize();
  loss(reference, 0, global_batch).backward();

  EXPECT_TRUE(torch::allclose(model->weight.grad(), reference->weight.grad(), 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(model->bias.grad(), reference->bias.grad(), 1e-5, 1e-6));
}

TEST(ReplicaSyncMpi, BroadcastMakesReplicasEqualAndChecksumCatchesAPerturbation) {
  Communicator& communicator = world();
  const int rank = communicator.rank();
  const int last = communicator.world_size() - 1;
  torch::Tensor weight = torch::empty({17, 5}).requires_grad_();  // a parameter
  torch::Tensor steps = torch::empty({1}, torch::kLong);          // an integer buffer
  torch::Tensor mask = torch::empty({9}, torch::kBool);           // a bool buffer
  const std::vector<torch::Tensor> state{weight, steps, mask};

  for (int root : {last, 0}) {
    {  // different values on every rank
      torch::NoGradGuard no_grad;
      torch::manual_seed(7 + rank);
      weight.copy_(torch::randn({17, 5}));
      steps.fill_(rank);
      mask.copy_(torch::rand({9}) > 0.5);
    }
    EXPECT_EQ(replica_checksums_agree(communicator, state), communicator.world_size() == 1);
    broadcast_tensors(communicator, state, root, /*bucket_bytes=*/64);
    EXPECT_TRUE(replica_checksums_agree(communicator, state)) << "root " << root;
    const torch::Tensor gathered = communicator.all_gather(weight.detach());  // [world, 17, 5]
    for (int r = 0; r < communicator.world_size(); ++r) {
      EXPECT_TRUE(torch::equal(gathered[r], gathered[root]));
    }
    EXPECT_EQ(steps.item<int64_t>(), root);
    EXPECT_FALSE(weight.grad().defined());
    EXPECT_TRUE(weight.requires_grad());
  }

  if (rank == last) {  // the smallest possible change to one value on one replica
    torch::NoGradGuard no_grad;
    const float value = weight[3][2].item<float>();
    weight[3][2].fill_(std::nextafter(value, 1e30f));
  }
  // One replica is always identical to itself.
  EXPECT_EQ(replica_checksums_agree(communicator, state), communicator.world_size() == 1);
}

}  // namespace
}  // namespace winnow::dist
