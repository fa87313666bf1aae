// Multi-rank tests for GradSync and replica consistency: zero-fill, unused parameters, equivalence.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <numeric>

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
  EXPECT_GE(stats.exposed_seconds, 0.0);
  EXPECT_GE(stats.total_seconds, stats.exposed_seconds);

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

// A float64 network whose graph differs by rank: embed, three residual blocks, head, plus a
// parameter no rank uses and one that rank 0 uses only in the first of two micro-batches. Rank r
// skips block 1 + r % 3, so with 2 or 3 ranks every block has a gradient on some ranks and none
// on others (with 1 rank, block 1 is unused everywhere).
struct DivergentNet {
  torch::nn::Linear embed{nullptr}, head{nullptr};
  std::vector<torch::nn::Linear> blocks;
  torch::Tensor never, early;  // [5], [3]

  DivergentNet() {
    torch::manual_seed(5);  // the same values on every rank
    const auto options = torch::kFloat64;
    embed = torch::nn::Linear(4, 8);
    for (int i = 0; i < 3; ++i) blocks.emplace_back(8, 8);
    head = torch::nn::Linear(8, 3);
    embed->to(options);
    head->to(options);
    for (auto& block : blocks) block->to(options);
    never = torch::randn({5}, options).requires_grad_();
    early = torch::randn({3}, options).requires_grad_();
  }

  std::vector<torch::Tensor> parameters() const {
    std::vector<torch::Tensor> all = embed->parameters();
    for (const auto& block : blocks) {
      for (const auto& parameter : block->parameters()) all.push_back(parameter);
    }
    for (const auto& parameter : head->parameters()) all.push_back(parameter);
    all.push_back(never);
    all.push_back(early);
    return all;
  }

  // Summed squared output of this rank's rows of micro-batch `micro`, divided by the global count.
  torch::Tensor loss(int rank, int64_t micro) {
    torch::manual_seed(1000 + 10 * rank + micro);  // rank- and micro-batch-dependent data
    const torch::Tensor inputs = torch::randn({6, 4}, torch::kFloat64);  // [6, 4]
    torch::Tensor x = torch::tanh(embed(inputs));                        // [6, 8]
    for (int i = 0; i < 3; ++i) {
      if (i != rank % 3) x = x + torch::tanh(blocks[static_cast<size_t>(i)](x));
    }
    torch::Tensor loss = head(x).pow(2).sum() / 36.0;  // []
    if (rank == 0 && micro == 0) loss = loss + early.pow(2).sum();
    return loss;
  }
};

enum class Protocol { kReference, kOverlappedWithGraphWalk, kOverlappedHooksOnly };

// Two micro-batches of DivergentNet on every rank, synchronised with `protocol`.
std::pair<std::vector<torch::Tensor>, GradSyncStats> divergent_gradients(Protocol protocol) {
  DivergentNet net;
  const std::vector<torch::Tensor> parameters = net.parameters();
  GradSync sync(shared_world(), parameters, GradSyncOptions{/*bucket_bytes=*/300});
  EXPECT_GE(sync.buckets().size(), 5u);
  const int rank = world().rank();
  GradSyncStats stats;
  for (int64_t micro = 0; micro < 2; ++micro) {
    const torch::Tensor loss = net.loss(rank, micro);
    const bool last = micro == 1;
    if (protocol == Protocol::kOverlappedWithGraphWalk) sync.prepare_backward(last, loss);
    if (protocol == Protocol::kOverlappedHooksOnly) sync.prepare_backward(last);
    loss.backward();
  }
  stats = protocol == Protocol::kReference ? sync.synchronize() : sync.finish();
  if (protocol != Protocol::kReference) {
    std::vector<int64_t> in_order(sync.buckets().size());
    std::iota(in_order.begin(), in_order.end(), 0);
    EXPECT_EQ(sync.last_start_order(), in_order);
  }
  std::vector<torch::Tensor> gradients;
  for (const auto& parameter : parameters) gradients.push_back(parameter.grad());
  return {gradients, stats};
}

TEST(GradSyncMpi, OverlappedSyncEqualsTheReferenceOnRankDivergentGraphs) {
  const int world_size = world().world_size();
  const auto [reference, reference_stats] = divergent_gradients(Protocol::kReference);
  EXPECT_EQ(reference_stats.parameters_without_gradient, world_size == 1 ? 3 : 1);
  for (const Protocol protocol :
       {Protocol::kOverlappedWithGraphWalk, Protocol::kOverlappedHooksOnly}) {
    const auto [gradients, stats] = divergent_gradients(protocol);
    const auto name = protocol == Protocol::kOverlappedHooksOnly ? "hooks only" : "graph walk";
    ASSERT_EQ(gradients.size(), reference.size());
    for (size_t i = 0; i < gradients.size(); ++i) {
      ASSERT_EQ(gradients[i].defined(), reference[i].defined()) << name << ", parameter " << i;
      if (!reference[i].defined()) continue;
      EXPECT_TRUE(torch::allclose(gradients[i], reference[i], 1e-12, 1e-15))
          << name << ", parameter " << i << ": max difference "
          << (gradients[i] - reference[i]).abs().max().item<double>();
    }
    EXPECT_EQ(stats.parameters_without_gradient, reference_stats.parameters_without_gradient);
    EXPECT_EQ(stats.parameters_zero_filled, reference_stats.parameters_zero_filled);
    // Overlapped: every bucket and the flags; the reference skips globally unused buckets.
    EXPECT_EQ(stats.collectives, reference_stats.collectives + reference_stats.buckets_skipped);
    if (protocol == Protocol::kOverlappedWithGraphWalk) {
      // Unreached parameters were ready before backward: every bucket started inside it.
      EXPECT_EQ(stats.buckets_started_in_backward, stats.collectives - 1) << name;
    }
  }
  // The comparison covers zero-fill: some rank lacked a gradient that another rank had.
  torch::Tensor zero_filled = torch::tensor({reference_stats.parameters_zero_filled});
  world().all_reduce(zero_filled, ReduceOp::kSum);
  if (world_size > 1) {
    EXPECT_GT(zero_filled.item<int64_t>(), 0);
  }
  // `early` (used by rank 0 in micro-batch 0 only) is synchronised everywhere (pytorch#69031).
  ASSERT_TRUE(reference.back().defined());
  EXPECT_GT(reference.back().abs().sum().item<double>(), 0.0);
}

// Every rank starts the buckets in the same order even when its gradients arrive in another one
// (each rank skips a different block, so its hooks complete the buckets in a different order).
TEST(GradSyncMpi, BucketStartOrderIsTheSameOnEveryRank) {
  for (const bool walk_graph : {true, false}) {
    DivergentNet net;
    GradSync sync(shared_world(), net.parameters(), GradSyncOptions{/*bucket_bytes=*/300});
    const torch::Tensor loss = net.loss(world().rank(), 1);
    sync.prepare_backward(/*last_micro_batch=*/true, walk_graph ? loss : torch::Tensor());
    loss.backward();
    const GradSyncStats& stats = sync.finish();
    const auto& order = sync.last_start_order();
    ASSERT_EQ(order.size(), sync.buckets().size());
    const torch::Tensor mine = torch::tensor(order);     // [buckets]
    const torch::Tensor all = world().all_gather(mine);  // [world, buckets]
    for (int r = 0; r < world().world_size(); ++r) {
      EXPECT_TRUE(torch::equal(all[r], all[0])) << "rank " << r << ", graph walk " << walk_graph;
    }
    EXPECT_GE(stats.collective_seconds, stats.exposed_seconds);
    // Hooks only: the first bucket holds `never`, whose hook cannot fire, so nothing starts before
    // finish(); walking the graph marks it ready up front and every bucket starts in backward.
    EXPECT_EQ(stats.buckets_started_in_backward,
              walk_graph ? static_cast<int64_t>(sync.buckets().size()) : 0);
  }
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
