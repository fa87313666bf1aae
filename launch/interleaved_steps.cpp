// Interleaved step timing.
#include "launch/interleaved_steps.h"

#include <algorithm>
#include <chrono>

#include "compression/flops.h"

namespace winnow::launch {

std::unique_ptr<data::Loader> bench_loader(const RunConfig& config, const dist::Communicator& comm,
                                           const std::shared_ptr<data::Dataset>& train) {
  data::LoaderOptions options;
  options.global_batch_size = config.train.global_batch;
  options.rank = comm.rank();
  options.world_size = comm.world_size();
  options.seed = config.train.seed;
  options.prefetch_depth = config.data.prefetch;
  return std::make_unique<data::Loader>(train, options);
}

void time_interleaved(const std::vector<TimedVariant*>& variants, dist::Communicator& comm,
                      int64_t warmup, int64_t timed, int64_t step) {
  using Clock = std::chrono::steady_clock;
  const size_t n = variants.size();
  for (int64_t round = 0; round < warmup + timed; ++round) {
    for (size_t k = 0; k < n; ++k) {
      auto& v = *variants[(k + static_cast<size_t>(round)) % n];  // rotate the order every round
      auto batch = v.loader->next();
      comm.barrier();
      const auto start = Clock::now();
      const auto result = v.trainer->train_step(batch, step + round);
      comm.barrier();
      if (round >= warmup) {
        v.seconds.push_back(std::chrono::duration<double>(Clock::now() - start).count());
        v.training_flops = result.forward_flops * compression::kTrainingFlopsPerForwardFlop;
      }
    }
  }
}

double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n == 0 ? 0.0 : (n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]));
}

double min_of(const std::vector<double>& v) {
  return v.empty() ? 0.0 : *std::min_element(v.begin(), v.end());
}

double max_of(const std::vector<double>& v) {
  return v.empty() ? 0.0 : *std::max_element(v.begin(), v.end());
}

}  // namespace winnow::launch
