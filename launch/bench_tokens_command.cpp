// `winnow bench-tokens`: training-step time of the dense model against token-reduction methods at
// a matched FLOPs budget, measured interleaved in one process, next to the analytic FLOPs ratio.
#include <algorithm>
#include <chrono>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "compression/flops.h"
#include "data/loader.h"
#include "launch/bench_options.h"
#include "launch/commands.h"
#include "launch/config.h"
#include "launch/run_setup.h"
#include "launch/system_info.h"
#include "train/reduction_hook.h"
#include "train/trainer.h"

namespace winnow::launch {
namespace po = boost::program_options;
namespace {

using Clock = std::chrono::steady_clock;

struct Candidate {
  std::string name;  // "dense" or criterion+strategy
  double keep = 1.0;
  std::shared_ptr<compression::ReductionSchedule> schedule;
  std::shared_ptr<train::TransformerModel> model;
  std::unique_ptr<train::Trainer> trainer;
  std::unique_ptr<data::Loader> loader;
  std::vector<double> seconds;
  double training_flops = 0.0;  // per step, analytic
};

double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n == 0 ? 0.0 : (n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]));
}

// Forward FLOPs of one sample under `schedule` (trained state: the target keep).
double forward_flops(train::TransformerModel& model, const compression::ReductionSchedule* schedule,
                     const data::Batch& probe) {
  torch::NoGradGuard no_grad;
  train::ForwardContext context;
  context.sample_ids = probe.sample_ids;
  std::unique_ptr<train::StepHooks> hooks;
  if (schedule) {
    hooks = std::make_unique<train::StepHooks>(*schedule, model.depth(), 1 << 30, 0,
                                               probe.sample_ids, true);
    context.hook_for = [&hooks](int64_t layer) { return (*hooks)(layer); };
  }
  return model.forward(probe.inputs, context).forward_flops;
}

}  // namespace

int bench_tokens_command(const Args& args) {
  BenchSteps bench{/*timed=*/8, /*warmup=*/2};
  double flops_ratio = 0.5;
  std::string methods =
      "random+prune,norm+prune,cls_attention+prune,similarity+merge,uniform+pool,random+route";
  po::options_description extra("Token benchmark [bench]");
  add_bench_steps(extra, bench, "rounds");
  extra.add_options()("bench.flops_ratio",
                      po::value(&flops_ratio)->default_value(flops_ratio, "0.5"),
                      "target training FLOPs of each method / dense, in (0, 1)")(
      "bench.methods", po::value(&methods)->default_value(methods),
      "criterion+strategy list, comma-separated");
  RunConfig config;
  if (!parse_bench_config(
          args, extra, bench, config,
          "usage: winnow bench-tokens [--config FILE] [options]\n\n"
          "For each method, finds the keep fraction whose analytic training FLOPs are closest to\n"
          "bench.flops_ratio x dense, then times training steps of dense and every method in\n"
          "rotating order (one step each per round, so machine drift hits all alike) and prints\n"
          "measured speedup next to the FLOPs speedup.\n"
          "Example: winnow bench-tokens --config launch/configs/bench-vit.ini --model.depth 8",
          "bench-tokens"))
    return 0;
  if (!(flops_ratio > 0 && flops_ratio < 1))
    throw ConfigError("bench.flops_ratio: expected a value in (0, 1), got " +
                      std::to_string(flops_ratio));
  const int64_t steps = bench.timed, warmup = bench.warmup;
  auto comm = start_communicator(config);
  config.train.run_dir.clear();
  config.train.progress = false;
  validate(config, comm->world_size());
  auto data = open_run_data(config);

  std::vector<Candidate> candidates(1);
  candidates[0].name = "dense";
  std::stringstream list(methods);
  std::string item;
  while (std::getline(list, item, ',')) {
    const auto plus = item.find('+');
    if (plus == std::string::npos)
      throw ConfigError("bench.methods: expected criterion+strategy, got '" + item + "'");
    Candidate c;
    c.name = item;
    candidates.push_back(std::move(c));
  }

  auto probe = data.train->fetch({0, 1});
  for (auto& c : candidates) {
    torch::manual_seed(config.train.seed);
    c.model = train::make_model(data.model);
  }
  const double dense_flops = forward_flops(*candidates[0].model, nullptr, probe);
  for (size_t i = 1; i < candidates.size(); ++i) {
    auto& c = candidates[i];
    RunConfig method_config = config;
    method_config.compress.reduction.criterion = c.name.substr(0, c.name.find('+'));
    method_config.compress.reduction.strategy = c.name.substr(c.name.find('+') + 1);
    // FLOPs grow with keep: bisect for the keep whose FLOPs are closest to the target.
    double low = 0.01, high = 1.0, best_gap = 1e300;
    for (int iteration = 0; iteration < 14; ++iteration) {
      const double keep = 0.5 * (low + high);
      method_config.compress.keep = std::to_string(keep);
      auto schedule = make_reduction_schedule(method_config, data.model);
      const double ratio = forward_flops(*c.model, schedule.get(), probe) / dense_flops;
      if (std::abs(ratio - flops_ratio) < best_gap) {
        best_gap = std::abs(ratio - flops_ratio);
        c.keep = keep;
        c.schedule = schedule;
      }
      (ratio > flops_ratio ? high : low) = keep;
    }
  }

  for (auto& c : candidates) {
    c.trainer = std::make_unique<train::Trainer>(c.model, data.train, nullptr, comm, config.train,
                                                 config.optim);
    c.trainer->set_reduction(c.schedule);
    data::LoaderOptions lo;
    lo.global_batch_size = config.train.global_batch;
    lo.rank = comm->rank();
    lo.world_size = comm->world_size();
    lo.seed = config.train.seed;
    lo.prefetch_depth = config.data.prefetch;
    c.loader = std::make_unique<data::Loader>(data.train, lo);
  }
  const size_t n = candidates.size();
  for (int64_t round = 0; round < warmup + steps; ++round) {
    for (size_t k = 0; k < n; ++k) {
      auto& c = candidates[(k + static_cast<size_t>(round)) % n];  // rotate the order every round
      auto batch = c.loader->next();
      comm->barrier();
      const auto start = Clock::now();
      auto r =
          c.trainer->train_step(batch, /*step=*/config.train.steps);  // past any ramp: target keep
      comm->barrier();
      if (round >= warmup) {
        c.seconds.push_back(std::chrono::duration<double>(Clock::now() - start).count());
        c.training_flops = r.forward_flops * compression::kTrainingFlopsPerForwardFlop;
      }
    }
  }

  if (comm->is_root()) {
    const double dense_time = median_of(candidates[0].seconds);
    const double dense_step_flops = candidates[0].training_flops;
    std::cout << "winnow bench-tokens: " << data.model.kind << " dim " << config.model.dim
              << ", depth " << config.model.depth << ", " << candidates[0].model->dense_tokens()
              << " tokens, global batch " << config.train.global_batch << ", " << comm->world_size()
              << " rank(s) x " << threads_per_rank(config, *comm) << " thread(s); median of "
              << steps << " interleaved rounds\n"
              << "  BLAS " << loaded_blas() << "\n";
    std::cout << std::fixed << std::setprecision(3);
    std::cout << "  method                  keep   FLOPs ratio  step ms   speedup  FLOPs speedup  "
                 "speedup/FLOPs\n";
    for (const auto& c : candidates) {
      const double time = median_of(c.seconds);
      const double ratio = c.training_flops / dense_step_flops;
      const double speedup = dense_time / time;
      std::cout << "  " << std::left << std::setw(22) << c.name << std::right << std::setw(6)
                << c.keep << std::setw(13) << ratio << std::setw(10) << std::setprecision(1)
                << 1000.0 * time << std::setprecision(3) << std::setw(10) << speedup
                << std::setw(15) << 1.0 / ratio << std::setw(15) << speedup * ratio << "\n";
    }
    std::cout << std::flush;
  }
  return 0;
}

}  // namespace winnow::launch
