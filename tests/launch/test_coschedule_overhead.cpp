// The co-scheduler's overhead by components (`winnow bench-plans`): every round times a dense
// step and each component beside it, and the components do the co-scheduler's real work — the
// monitor takes a step of statistics per round and the allocator decides.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "compression/co_scheduler.h"
#include "data/loader.h"
#include "dist/communicator.h"
#include "launch/coschedule_overhead.h"
#include "tests/train/tiny_models.h"
#include "train/trainer.h"

namespace winnow::launch {
namespace {

TEST(CoscheduleOverhead, EveryRoundTimesEachComponentBesideAStepAndTheAllocatorDecides) {
  torch::manual_seed(0);
  auto comm = dist::make_communicator("local");
  auto train_set = train::tiny::images(64);
  TimedVariant dense;
  dense.model = train::tiny::small_vit(4);
  dense.trainer = std::make_unique<train::Trainer>(dense.model, train_set, nullptr, comm,
                                                   train::tiny::quick_options(100, 16, 2, 100),
                                                   train::OptimizerOptions{});
  data::LoaderOptions loader;
  loader.global_batch_size = 16;
  dense.loader = std::make_unique<data::Loader>(train_set, loader);

  compression::CoSchedulerConfig config;
  config.mode = "joint";
  config.budget.target = 0.5;
  config.budget.warmup_steps = 1;
  config.budget.ramp_steps = 1;
  config.budget.total_steps = 100;
  config.interval = 1;
  config.statistics_every = 1;
  config.allocator.grid = 4;
  config.allocator.protected_layers = {0};
  compression::CoScheduler planner(config, train::tiny::small_vit_shape(4));
  compression::TokenEvolutionMonitor monitor(4);

  CoscheduleOverheadOptions options;
  options.batch = 16;
  options.shape = train::tiny::small_vit_shape(4);
  options.rounds = 3;
  options.step = 10;
  const auto rounds = time_coschedule_overhead(dense, planner, monitor, *comm, options);

  for (const auto* part : {&rounds.step, &rounds.statistics, &rounds.update, &rounds.decision}) {
    ASSERT_EQ(part->size(), 3u);
    for (double seconds : *part) EXPECT_GT(seconds, 0.0);
  }
  EXPECT_EQ(monitor.updates(), 4);  // the untimed first round as well
  for (int64_t l = 0; l < 4; ++l) EXPECT_TRUE(monitor.observed(l)) << l;
  double capacity = 0.0;
  for (double k : planner.capacities()) capacity += k;
  EXPECT_LT(capacity, 4.0);  // the allocator moved capacities to meet ρ = 0.5
  options.rounds = 0;
  EXPECT_THROW(time_coschedule_overhead(dense, planner, monitor, *comm, options), c10::Error);
}

}  // namespace
}  // namespace winnow::launch
