// The co-scheduler's overhead by components, each timed beside a dense step of the same round.
#include "launch/coschedule_overhead.h"

#include <torch/torch.h>

#include <chrono>

namespace winnow::launch {
namespace {

using Clock = std::chrono::steady_clock;

// Seconds of `work` on the slowest rank, between barriers.
template <typename Work>
double timed(dist::Communicator& comm, Work&& work) {
  comm.barrier();
  const auto start = Clock::now();
  work();
  comm.barrier();
  auto seconds =
      torch::tensor({std::chrono::duration<double>(Clock::now() - start).count()}, torch::kFloat64);
  comm.all_reduce(seconds, dist::ReduceOp::kMax);
  return seconds.item<double>();
}

}  // namespace

CoscheduleOverheadRounds time_coschedule_overhead(TimedVariant& dense,
                                                  compression::Planner& planner,
                                                  compression::TokenEvolutionMonitor& monitor,
                                                  dist::Communicator& comm,
                                                  const CoscheduleOverheadOptions& options) {
  TORCH_CHECK(options.rounds >= 1, "co-scheduler overhead: expected >= 1 round, got ",
              options.rounds);
  // A fixed input pair, as a block sees it: y = x + a per-token update growing from 0 to the size
  // of x over the tokens, so the statistics' δ histogram spreads over its bins. A pattern, not
  // random numbers: no generator is drawn from. No gradient (the statistics take none).
  const int64_t b = options.batch, n = options.shape.tokens, c = options.shape.width;
  const auto index = torch::arange(b * n * c, torch::kFloat32).reshape({b, n, c});  // [B, N, C]
  const auto x = torch::sin(index * 0.37f);
  const auto scale = torch::linspace(0.0, 1.0, n).pow(4).reshape({1, n, 1});  // [1, N, 1]
  const auto y = x + scale * torch::cos(index * 0.73f);
  const torch::Tensor keep;  // every token kept
  CoscheduleOverheadRounds rounds;
  for (int64_t round = -1; round < options.rounds; ++round) {
    const int64_t step = options.step + round + 1;
    auto batch = dense.loader->next();
    const double step_seconds = timed(comm, [&] { dense.trainer->train_step(batch, step); });
    torch::NoGradGuard no_grad;  // from here to the round's end: the dense step has run
    const double statistics = timed(comm, [&] {
      for (int64_t l = 0; l < monitor.depth(); ++l)
        monitor.observe(l, x, y, keep, options.shape.protected_tokens);
    });
    const double update = timed(comm, [&] {
      auto sums = monitor.step_sums().clone();  // [L, kEvolutionFields]
      comm.all_reduce(sums, dist::ReduceOp::kSum);
      monitor.update(sums, step);
    });
    const double decision = timed(comm, [&] { planner.observe(step, &monitor); });
    if (round < 0) continue;  // the untimed first round
    rounds.step.push_back(step_seconds);
    rounds.statistics.push_back(statistics);
    rounds.update.push_back(update);
    rounds.decision.push_back(decision);
  }
  return rounds;
}

}  // namespace winnow::launch
