// `winnow bench-dist`: gradient synchronisation costs, as ratios measured in one run: GradSync's
// bucketed all-reduce against one raw MPI_Allreduce of the same bytes, and the share of a training
// step spent waiting on communication.
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "data/loader.h"
#include "dist/grad_sync.h"
#include "dist/mpi_communicator.h"
#include "launch/bench_options.h"
#include "launch/commands.h"
#include "launch/config.h"
#include "launch/run_setup.h"
#include "launch/system_info.h"
#include "train/trainer.h"

namespace winnow::launch {
namespace po = boost::program_options;
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n == 0 ? 0.0 : (n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]));
}

// Every rank's slowest time counts: a collective ends for the job when the last rank is done.
double slowest(dist::Communicator& comm, double seconds) {
  auto value = torch::tensor({seconds}, torch::kFloat64);
  comm.all_reduce(value, dist::ReduceOp::kMax);
  return value.item<double>();
}

std::vector<int64_t> parse_sizes(const std::string& text) {
  std::vector<int64_t> sizes;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    try {
      sizes.push_back(std::stoll(item));
    } catch (const std::exception&) {
      throw ConfigError("bench.sizes_mb: expected comma-separated MiB counts, got '" + text + "'");
    }
    if (sizes.back() < 1) throw ConfigError("bench.sizes_mb: expected sizes >= 1 MiB");
  }
  if (sizes.empty()) throw ConfigError("bench.sizes_mb: expected at least one size");
  return sizes;
}

struct AllReduceTiming {
  int64_t tensors = 0, buckets = 0;
  // Medians of the slowest rank: one MPI_Allreduce, one MPI_Iallreduce + MPI_Wait, GradSync.
  double raw_seconds = 0.0, nonblocking_seconds = 0.0, grad_sync_seconds = 0.0;
};

// `bytes` of float32 gradients in tensors of a transformer's typical sizes (a 192-wide block's
// matrices and vectors), synchronised by GradSync's training path (every bucket started, waited
// and unpacked by finish()) and, interleaved, by one MPI_Allreduce on a flat buffer of the same
// bytes on the same communicator.
AllReduceTiming time_all_reduce(dist::MpiCommunicator& comm, int64_t bytes, int64_t bucket_bytes,
                                int repeats) {
  const int64_t total = bytes / 4;
  std::vector<torch::Tensor> parameters;
  const int64_t shapes[] = {192 * 768, 768, 768 * 192, 192, 192 * 576, 576, 192 * 192, 192};
  for (int64_t placed = 0, i = 0; placed < total; ++i) {
    const int64_t numel = std::min(shapes[i % 8], total - placed);
    parameters.push_back(torch::zeros({numel}).requires_grad_());
    placed += numel;
  }
  std::shared_ptr<dist::Communicator> shared(&comm, [](dist::Communicator*) {});
  dist::GradSync sync(shared, parameters, dist::GradSyncOptions{bucket_bytes});
  torch::Tensor flat = torch::ones({total});  // [total]
  AllReduceTiming timing;
  timing.tensors = static_cast<int64_t>(parameters.size());
  timing.buckets = static_cast<int64_t>(sync.buckets().size());
  // The raw calls run on a duplicate, so they cannot interleave with the communicator's own
  // traffic.
  MPI_Comm raw_comm = MPI_COMM_NULL;
  TORCH_CHECK(MPI_Comm_dup(comm.comm(), &raw_comm) == MPI_SUCCESS,
              "bench-dist: MPI_Comm_dup failed");
  std::vector<double> raw, nonblocking, synced;
  for (int r = 0; r < repeats + 1; ++r) {  // the first round warms up (buffers, MPI paths)
    comm.barrier();
    auto start = Clock::now();
    const int rc = MPI_Allreduce(MPI_IN_PLACE, flat.data_ptr<float>(), static_cast<int>(total),
                                 MPI_FLOAT, MPI_SUM, raw_comm);
    TORCH_CHECK(rc == MPI_SUCCESS, "bench-dist: MPI_Allreduce failed with code ", rc);
    const double raw_seconds = slowest(comm, seconds_since(start));

    comm.barrier();
    start = Clock::now();
    MPI_Request request = MPI_REQUEST_NULL;
    TORCH_CHECK(MPI_Iallreduce(MPI_IN_PLACE, flat.data_ptr<float>(), static_cast<int>(total),
                               MPI_FLOAT, MPI_SUM, raw_comm, &request) == MPI_SUCCESS &&
                    MPI_Wait(&request, MPI_STATUS_IGNORE) == MPI_SUCCESS,
                "bench-dist: MPI_Iallreduce failed");
    const double nonblocking_seconds = slowest(comm, seconds_since(start));

    for (auto& parameter : parameters) parameter.mutable_grad() = torch::ones_like(parameter);
    comm.barrier();
    start = Clock::now();
    sync.prepare_backward(/*last_micro_batch=*/true);
    sync.finish();
    const double sync_seconds = slowest(comm, seconds_since(start));
    if (r == 0) continue;
    raw.push_back(raw_seconds);
    nonblocking.push_back(nonblocking_seconds);
    synced.push_back(sync_seconds);
  }
  MPI_Comm_free(&raw_comm);
  timing.raw_seconds = median(raw);
  timing.nonblocking_seconds = median(nonblocking);
  timing.grad_sync_seconds = median(synced);
  return timing;
}

}  // namespace

int bench_dist_command(const Args& args) {
  BenchSteps bench;
  int64_t repeats = 7;
  std::string sizes_mb = "1,4,16,64";
  po::options_description extra("Distributed benchmark [bench]");
  add_bench_steps(extra, bench, "training steps");
  extra.add_options()("bench.sizes_mb", po::value(&sizes_mb)->default_value(sizes_mb),
                      "gradient sizes of the all-reduce comparison, MiB, comma-separated")(
      "bench.repeats", po::value(&repeats)->default_value(repeats),
      "timed repeats per all-reduce size (>= 1); the median is reported");
  RunConfig config;
  if (!parse_bench_config(
          args, extra, bench, config,
          "usage: mpirun -np R winnow bench-dist [--config FILE] [options]\n\n"
          "Gradient synchronisation costs, measured in one run (rank 0 prints):\n"
          "  (a) GradSync's bucketed all-reduce (dist.bucket_mb buckets, started, waited and\n"
          "      unpacked as in training) against raw MPI calls on the same bytes, per size;\n"
          "  (c) training steps of the configured model (synthetic data unless data.train is\n"
          "      set): step time and the share spent waiting on gradient communication.\n"
          "launch/bench_dist.sh runs it on 2 ranks x 1 thread and on 1 rank x 2 threads and\n"
          "prints the step-time ratio (b).",
          "bench-dist"))
    return 0;
  if (repeats < 1)
    throw ConfigError("bench.repeats: expected >= 1, got " + std::to_string(repeats));
  const int64_t steps = bench.timed, warmup = bench.warmup;
  const std::vector<int64_t> sizes = parse_sizes(sizes_mb);
  auto comm = start_communicator(config);
  validate(config, comm->world_size());
  const bool root = comm->is_root();
  const int threads = threads_per_rank(config, *comm);
  const int64_t bucket_bytes = config.train.bucket_mb * 1024 * 1024;
  if (root) {
    std::cout << std::fixed << std::setprecision(2) << "winnow bench-dist: " << comm->world_size()
              << " rank(s) x " << threads << " thread(s), backend " << comm->backend_name()
              << ", buckets of " << config.train.bucket_mb << " MiB, collective timeout "
              << config.dist.timeout << " s\n  BLAS " << loaded_blas() << "\n  allocator "
              << active_allocator() << "\n";
  }

  // (a) All-reduce throughput, only meaningful across processes.
  auto* mpi = dynamic_cast<dist::MpiCommunicator*>(comm.get());
  if (mpi && comm->world_size() > 1) {
    if (root) {
      std::cout << "(a) gradient all-reduce: GradSync (pack, one all-reduce per bucket, flags, "
                   "unpack) vs one raw MPI_Allreduce\n    and one raw MPI_Iallreduce + MPI_Wait "
                   "of the same float32 bytes; median of "
                << repeats << ", slowest rank; GB/s = bytes / time\n"
                << "    size MiB  tensors  buckets  Allreduce  Iallreduce  GradSync GB/s  "
                   "GradSync/Allreduce  GradSync/Iallreduce\n";
    }
    for (const int64_t size : sizes) {
      const int64_t bytes = size * 1024 * 1024;
      const AllReduceTiming t =
          time_all_reduce(*mpi, bytes, bucket_bytes, static_cast<int>(repeats));
      if (root) {
        std::cout << std::setw(12) << size << std::setw(9) << t.tensors << std::setw(9) << t.buckets
                  << std::setw(11) << bytes / t.raw_seconds / 1e9 << std::setw(12)
                  << bytes / t.nonblocking_seconds / 1e9 << std::setw(15)
                  << bytes / t.grad_sync_seconds / 1e9 << std::setw(20)
                  << t.raw_seconds / t.grad_sync_seconds << std::setw(21)
                  << t.nonblocking_seconds / t.grad_sync_seconds << "\n";
      }
    }
  } else if (root) {
    std::cout << "(a) skipped: needs the mpi backend and at least two ranks\n";
  }

  // (c) Training steps: the share of step time spent waiting on gradient communication.
  auto data = open_run_data(config);
  torch::manual_seed(config.train.seed);
  auto model = train::make_model(data.model);
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
  std::vector<double> step_seconds, exposed, in_flight;
  for (int64_t step = 0; step < warmup + steps; ++step) {
    auto batch = loader.next();
    comm->barrier();
    const auto start = Clock::now();
    const train::StepResult r = trainer.train_step(batch, step);
    const double seconds = slowest(*comm, seconds_since(start));
    if (step < warmup) continue;
    step_seconds.push_back(seconds);
    exposed.push_back(slowest(*comm, r.comm_seconds) / seconds);
    in_flight.push_back(slowest(*comm, r.comm_collective_seconds) / seconds);
  }
  if (root) {
    const double step_time = median(step_seconds);
    const double exposed_share = median(exposed), in_flight_share = median(in_flight);
    std::cout << "(c) training step: " << model->kind() << " dim " << config.model.dim << ", depth "
              << config.model.depth << ", " << model->dense_tokens() << " tokens, global batch "
              << config.train.global_batch << ", median of " << steps << " steps after " << warmup
              << "\n"
              << "    step time                          " << 1000.0 * step_time << " ms\n"
              << "    waiting on gradient communication  " << 100.0 * exposed_share
              << " % of the step (goal <= 10 %)\n"
              << "    gradient all-reduce in flight      " << 100.0 * in_flight_share
              << " % of the step (started during backward, then waited)\n"
              // One line for scripts (launch/bench_dist.sh).
              << std::setprecision(4) << "result ranks=" << comm->world_size()
              << " threads=" << threads << " step_ms=" << 1000.0 * step_time
              << " exposed_share=" << exposed_share << " in_flight_share=" << in_flight_share
              << std::endl;
  }
  return 0;
}

}  // namespace winnow::launch
