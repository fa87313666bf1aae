// `winnow bench`: times training steps of a config in one process and compares the achieved
// FLOP rate with the machine's matmul rate measured in the same run.
#include <algorithm>
#include <chrono>
#include <iomanip>
#include <iostream>

#include "compression/flops.h"
#include "data/loader.h"
#include "launch/bench_options.h"
#include "launch/commands.h"
#include "launch/config.h"
#include "launch/run_setup.h"
#include "launch/system_info.h"
#include "train/allocation_counter.h"
#include "train/trainer.h"

namespace winnow::launch {
namespace po = boost::program_options;
namespace {

using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n == 0 ? 0.0 : (n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]));
}

// GFLOP/s of [m, k] x [k, n] float32 matmuls: the median of `repeats` timed runs of as many
// products as fit in ~0.2 s each.
double matmul_gflops(int64_t m, int64_t k, int64_t n, int repeats) {
  torch::NoGradGuard no_grad;
  auto a = torch::randn({m, k}), b = torch::randn({k, n}), c = torch::empty({m, n});
  torch::mm_out(c, a, b);  // warm-up
  const double flops =
      2.0 * static_cast<double>(m) * static_cast<double>(k) * static_cast<double>(n);
  std::vector<double> rates;
  for (int r = 0; r < repeats; ++r) {
    int64_t count = 0;
    const auto start = Clock::now();
    double elapsed = 0.0;
    while (elapsed < 0.2) {
      torch::mm_out(c, a, b);
      ++count;
      elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    }
    rates.push_back(flops * static_cast<double>(count) / elapsed / 1e9);
  }
  return median(rates);
}

// Nanoseconds per allocation and free of a `bytes`-byte CPU tensor: the median of `repeats` runs
// of `count` each.
double allocation_ns(int64_t bytes, int64_t count, int repeats) {
  std::vector<double> runs;
  for (int r = 0; r < repeats; ++r) {
    const auto start = Clock::now();
    for (int64_t i = 0; i < count; ++i) torch::empty({bytes}, torch::kUInt8);
    runs.push_back(1e9 * std::chrono::duration<double>(Clock::now() - start).count() /
                   static_cast<double>(count));
  }
  return median(runs);
}

// What the counting allocator (train/allocation_counter.h) adds to an allocation: timed with
// LibTorch's allocator before it is installed, then installed (uncounted and counted).
struct AllocatorCost {
  double default_ns = 0.0, uncounted_ns = 0.0, counted_ns = 0.0;
  bool measured = false;  // false when something installed it before the benchmark could time
};

AllocatorCost allocator_cost() {
  constexpr int64_t kBytes = 64 * 1024, kCount = 200000;
  AllocatorCost cost;
  if (train::AllocationCounter::installed()) return cost;
  cost.default_ns = allocation_ns(kBytes, kCount, 5);
  train::AllocationCounter::instance();
  cost.uncounted_ns = allocation_ns(kBytes, kCount, 5);
  {
    train::CountAllocations counting;
    cost.counted_ns = allocation_ns(kBytes, kCount, 5);
  }
  cost.measured = true;
  return cost;
}

}  // namespace

int bench_command(const Args& args) {
  BenchSteps bench;
  int64_t matmul_size = 1024;
  po::options_description extra("Benchmark [bench]");
  add_bench_steps(extra, bench, "training steps");
  extra.add_options()("bench.matmul_size", po::value(&matmul_size)->default_value(matmul_size),
                      "n of the n x n x n reference matmul (>= 16)");
  RunConfig config;
  if (!parse_bench_config(
          args, extra, bench, config,
          "usage: winnow bench [--config FILE] [options]\n\n"
          "Times training steps of the configured model (synthetic data unless data.train is set)\n"
          "and reports the achieved GFLOP/s against this machine's float32 matmul GFLOP/s,\n"
          "measured in the same process with the same threads.\n"
          "Example: winnow bench --config launch/configs/bench-vit.ini",
          "bench"))
    return 0;
  if (matmul_size < 16)
    throw ConfigError("bench.matmul_size: expected >= 16, got " + std::to_string(matmul_size));
  const int64_t steps = bench.timed, warmup = bench.warmup;
  auto comm = start_communicator(config);
  validate(config, comm->world_size());
  auto data = open_run_data(config);
  torch::manual_seed(config.train.seed);
  auto model = train::make_model(data.model);
  const bool root = comm->is_root();
  const int threads = threads_per_rank(config, *comm);

  const double matmul_before = matmul_gflops(matmul_size, matmul_size, matmul_size, 3);
  // The model's own largest matmul: the MLP's first layer over every token of a rank's batch.
  const int64_t rows = config.train.global_batch / comm->world_size() * model->dense_tokens();
  const int64_t hidden =
      static_cast<int64_t>(static_cast<double>(config.model.dim) * config.model.mlp_ratio);
  const double matmul_model_shape = matmul_gflops(rows, config.model.dim, hidden, 3);
  const AllocatorCost allocation = allocator_cost();

  config.train.run_dir.clear();
  config.train.progress = false;
  auto compression = make_compression(config, data.model, *model);
  train::Trainer trainer(model, data.train, nullptr, comm, config.train, config.optim);
  trainer.set_planner(compression.planner);
  measure_planner_costs(config, *compression.planner, *model, *comm);  // cost=time
  trainer.set_monitor(compression.monitor);
  data::LoaderOptions loader_options;
  loader_options.global_batch_size = config.train.global_batch;
  loader_options.rank = comm->rank();
  loader_options.world_size = comm->world_size();
  loader_options.seed = config.train.seed;
  loader_options.prefetch_depth = config.data.prefetch;
  data::Loader loader(data.train, loader_options);

  std::vector<double> step_seconds, comm_seconds;
  double flops_per_step = 0.0, allocations_per_step = 0.0;
  int64_t peak_activation_bytes = 0;
  for (int64_t step = 0; step < warmup + steps; ++step) {
    auto batch = loader.next();
    comm->barrier();
    const int64_t allocations = train::AllocationCounter::instance().allocations();
    const auto start = Clock::now();
    auto r = trainer.train_step(batch, step);
    comm->barrier();
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    if (step >= warmup) {
      step_seconds.push_back(seconds);
      comm_seconds.push_back(r.comm_seconds);
      flops_per_step = r.forward_flops * compression::kTrainingFlopsPerForwardFlop;
      allocations_per_step =
          static_cast<double>(train::AllocationCounter::instance().allocations() - allocations);
      peak_activation_bytes = r.peak_activation_bytes;
    }
  }
  const double matmul_after = matmul_gflops(matmul_size, matmul_size, matmul_size, 3);
  const double matmul_rate = 0.5 * (matmul_before + matmul_after);
  const double step_time = median(step_seconds);
  // Per rank: each rank does 1/R of the global step's FLOPs on its own threads.
  const double achieved =
      flops_per_step / static_cast<double>(comm->world_size()) / step_time / 1e9;

  if (root) {
    std::cout << std::fixed << std::setprecision(2);
    std::cout << "winnow bench: " << model->kind() << " dim " << config.model.dim << ", depth "
              << config.model.depth << ", " << model->dense_tokens() << " tokens, global batch "
              << config.train.global_batch << " on " << comm->world_size() << " rank(s) x "
              << threads << " thread(s)\n"
              << "  BLAS                      " << loaded_blas() << "\n"
              << "  allocator                 " << active_allocator() << "\n"
              << "  step time (median of " << steps << ")   " << 1000.0 * step_time << " ms\n"
              << "  comm. share of step       " << 100.0 * median(comm_seconds) / step_time
              << " %\n"
              << "  training FLOPs per step   " << si(flops_per_step) << "FLOP (analytic)\n"
              << "  achieved per rank         " << achieved << " GFLOP/s\n"
              << "  matmul " << matmul_size << "^3 per rank     " << matmul_rate
              << " GFLOP/s (before " << matmul_before << ", after " << matmul_after << ")\n"
              << "  matmul model shape        " << matmul_model_shape << " GFLOP/s ([" << rows
              << ", " << config.model.dim << "] x [" << config.model.dim << ", " << hidden << "])\n"
              << "  efficiency                " << 100.0 * achieved / matmul_rate
              << " % of the square matmul rate, " << 100.0 * achieved / matmul_model_shape
              << " % of the model-shape matmul rate\n"
              << "  peak activations per step " << si(static_cast<double>(peak_activation_bytes))
              << "B (measured, largest rank)\n";
    if (allocation.measured) {
      // The counter's cost per step: its extra time per allocation times the step's allocations.
      const double extra_ns = allocation.counted_ns - allocation.default_ns;
      std::cout << "  allocation counter        " << extra_ns
                << " ns per 64 KiB allocation (LibTorch " << allocation.default_ns
                << " ns, installed " << allocation.uncounted_ns << ", counted "
                << allocation.counted_ns << "); " << allocations_per_step
                << " allocations per step: "
                << 100.0 * extra_ns * 1e-9 * allocations_per_step / step_time
                << " % of the step time\n";
    }
    std::cout << std::flush;
    if (reference_blas_loaded())
      std::cout
          << "  warning: the reference BLAS is loaded; install libopenblas0-openmp (~40x faster)\n";
  }
  return 0;
}

}  // namespace winnow::launch
