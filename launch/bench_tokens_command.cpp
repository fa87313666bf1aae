// `winnow bench-tokens`: training-step time of the dense model against token-reduction methods at
// a matched FLOPs budget, measured interleaved in one process, next to the analytic FLOPs ratio.
#include <algorithm>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "compression/flops.h"
#include "data/loader.h"
#include "launch/bench_options.h"
#include "launch/commands.h"
#include "launch/config.h"
#include "launch/interleaved_steps.h"
#include "launch/run_setup.h"
#include "launch/system_info.h"
#include "train/plan_hooks.h"
#include "train/trainer.h"

namespace winnow::launch {
namespace po = boost::program_options;
namespace {

struct Candidate : TimedVariant {
  double keep = 1.0;
  std::shared_ptr<compression::Planner> planner;
};

// Forward FLOPs of one sample under `planner`'s training plan after any ramp (the target keep).
double forward_flops(train::TransformerModel& model, const compression::Planner* planner,
                     const data::Batch& probe) {
  torch::NoGradGuard no_grad;
  train::ForwardContext context;
  context.sample_ids = probe.sample_ids;
  std::unique_ptr<train::PlanHooks> hooks;
  compression::Plan plan;
  if (planner) {
    plan = planner->plan(1 << 30, /*training=*/true);
    hooks = std::make_unique<train::PlanHooks>(plan, 0, probe.sample_ids);
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
      auto planner = make_planner(method_config, data.model);
      const double ratio = forward_flops(*c.model, planner.get(), probe) / dense_flops;
      if (std::abs(ratio - flops_ratio) < best_gap) {
        best_gap = std::abs(ratio - flops_ratio);
        c.keep = keep;
        c.planner = planner;
      }
      (ratio > flops_ratio ? high : low) = keep;
    }
  }

  std::vector<TimedVariant*> variants;
  for (auto& c : candidates) {
    c.trainer = std::make_unique<train::Trainer>(c.model, data.train, nullptr, comm, config.train,
                                                 config.optim);
    c.trainer->set_planner(c.planner);
    c.loader = bench_loader(config, *comm, data.train);
    variants.push_back(&c);
  }
  // Past any ramp: the target keep.
  time_interleaved(variants, *comm, warmup, steps, /*step=*/config.train.steps);

  if (comm->is_root()) {
    const double dense_time = median_of(candidates[0].seconds);
    const double dense_step_flops = candidates[0].training_flops;
    std::cout << "winnow bench-tokens: " << data.model.kind << " dim " << config.model.dim
              << ", depth " << config.model.depth << ", " << candidates[0].model->dense_tokens()
              << " tokens, global batch " << config.train.global_batch << ", " << comm->world_size()
              << " rank(s) x " << threads_per_rank(config, *comm) << " thread(s); median of "
              << steps << " interleaved rounds\n"
              << "  BLAS " << loaded_blas() << ", allocator " << active_allocator() << "\n";
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
