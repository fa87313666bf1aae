// `winnow bench-plans`: the cost of what plans add to a training step, measured interleaved in
// one process: token-evolution statistics (with and without Taylor saliency) and the co-scheduler's
// machinery against the dense step, and layer gates skipping a share of the layers against the
// FLOPs they save.
#include <algorithm>
#include <cmath>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "compression/flops.h"
#include "launch/bench_options.h"
#include "launch/commands.h"
#include "launch/config.h"
#include "launch/coschedule_overhead.h"
#include "launch/interleaved_steps.h"
#include "launch/run_setup.h"
#include "launch/system_info.h"

namespace winnow::launch {
namespace po = boost::program_options;
namespace {

// `count` layers of `depth` spread evenly (the middle of each of `count` equal spans), e.g. 2 of 8
// → 2,6; 4 of 8 → 1,3,5,7. Spreading keeps the gated model's depth profile like the dense one.
std::string spread_layers(int64_t count, int64_t depth) {
  std::ostringstream out;
  for (int64_t i = 0; i < count; ++i) {
    const auto layer = static_cast<int64_t>(
        (static_cast<double>(i) + 0.5) * static_cast<double>(depth) / static_cast<double>(count));
    out << (i ? "," : "") << layer;
  }
  return out.str();
}

struct Variant : TimedVariant {
  std::string what;  // how it differs from dense
};

}  // namespace

int bench_plans_command(const Args& args) {
  BenchSteps bench{/*timed=*/8, /*warmup=*/2};
  std::string skip_shares = "0.25,0.5";
  po::options_description extra("Plan benchmark [bench]");
  add_bench_steps(extra, bench, "rounds");
  extra.add_options()("bench.skip", po::value(&skip_shares)->default_value(skip_shares),
                      "shares of the layers a static skip list removes, comma-separated, each "
                      "in (0, 1)");
  RunConfig config;
  if (!parse_bench_config(
          args, extra, bench, config,
          "usage: winnow bench-plans [--config FILE] [options]\n\n"
          "Times training steps of the dense model, the same with token-evolution statistics\n"
          "(monitor.statistics), with Taylor saliency too, with the co-scheduler planning the\n"
          "dense model (coschedule.target=1; at its defaults, and with statistics and a decision\n"
          "after every step), and with static skip\n"
          "lists that remove bench.skip of the layers, in rotating order (one step each per\n"
          "round). Prints each variant's median step time and range, the overheads, and the\n"
          "gates' measured speedup against their FLOPs speedup; then the co-scheduler's work by\n"
          "components (statistics, their reduction, one allocator decision), each timed beside a\n"
          "dense step of the same round, as shares of that step at the defaults.\n"
          "Example: winnow bench-plans --config launch/configs/bench-vit.ini",
          "bench-plans"))
    return 0;
  auto comm = start_communicator(config);
  config.train.run_dir.clear();
  config.train.progress = false;
  config.monitor.statistics = false;
  config.gate = compression::GateConfig{};
  config.gate_layers.clear();
  validate(config, comm->world_size());
  auto data = open_run_data(config);
  const int64_t depth = config.model.depth;

  std::vector<std::pair<RunConfig, std::string>> configs;
  configs.emplace_back(config, "dense");
  RunConfig statistics = config;
  statistics.monitor.statistics = true;
  configs.emplace_back(statistics, "statistics");
  RunConfig taylor = statistics;
  taylor.monitor.taylor = true;
  configs.emplace_back(taylor, "statistics+taylor");
  // The co-scheduler's own cost: at ρ* = 1 it plans the dense model, so what it adds over dense
  // is its monitor and its allocator. Once with the defaults (statistics every
  // coschedule.statistics_every steps, a decision every coschedule.interval), once with
  // statistics and a decision after every step (the upper bound). Probe steps cost nothing at
  // ρ = 1; at ρ* < 1 they add (1/ρ* − 1)/P of a step (printed below).
  const CoScheduleConfig defaults;
  RunConfig coscheduled = config;
  coscheduled.coschedule.planner.mode = "joint";
  coscheduled.coschedule.planner.budget.target = 1.0;
  coscheduled.coschedule.planner.budget.warmup_steps = 1;
  const size_t at_defaults = configs.size();
  configs.emplace_back(coscheduled, "co-scheduler rho=1");
  RunConfig every_step = coscheduled;
  every_step.coschedule.planner.interval = 1;
  every_step.coschedule.planner.statistics_every = 1;
  configs.emplace_back(every_step, "... every step");
  std::stringstream shares(skip_shares);
  std::string item;
  while (std::getline(shares, item, ',')) {
    double share = 0;
    try {
      share = std::stod(item);
    } catch (const std::exception&) {
      share = -1;
    }
    if (!(share > 0 && share < 1))
      throw ConfigError("bench.skip: expected shares in (0, 1), got '" + item + "'");
    const auto count = static_cast<int64_t>(std::lround(share * static_cast<double>(depth)));
    if (count < 1 || count >= depth)
      throw ConfigError("bench.skip: " + item + " of " + std::to_string(depth) +
                        " layers is no layer or every layer");
    RunConfig gated = config;
    gated.gate.kind = "skip";
    gated.gate_layers = spread_layers(count, depth);
    configs.emplace_back(gated, "skip " + gated.gate_layers);
  }

  std::vector<Variant> variants(configs.size());
  std::vector<TimedVariant*> timed;
  for (size_t i = 0; i < configs.size(); ++i) {
    auto& v = variants[i];
    v.name = i == 0 ? "dense" : configs[i].second;
    torch::manual_seed(config.train.seed);
    v.model = train::make_model(data.model);
    auto compression = make_compression(configs[i].first, data.model, *v.model);
    v.trainer = std::make_unique<train::Trainer>(v.model, data.train, nullptr, comm, config.train,
                                                 config.optim);
    v.trainer->set_planner(compression.planner);
    v.trainer->set_monitor(compression.monitor);
    v.loader = bench_loader(config, *comm, data.train);
    timed.push_back(&v);
  }
  time_interleaved(timed, *comm, bench.warmup, bench.timed, /*step=*/bench.warmup);

  // The co-scheduler's work by components, each beside a dense step of the same round: its own
  // planner (joint, the default target, a decision after every step) and monitor.
  RunConfig deciding = config;
  deciding.coschedule.planner.mode = "joint";
  deciding.coschedule.planner.budget.warmup_steps = 1;
  deciding.coschedule.planner.interval = 1;
  deciding.coschedule.planner.statistics_every = 1;
  auto scratch = train::make_model(data.model);
  auto deciding_parts = make_compression(deciding, data.model, *scratch);
  CoscheduleOverheadOptions parts;
  parts.batch = (config.train.global_batch + comm->world_size() - 1) / comm->world_size();
  parts.shape = model_shape(data.model);
  parts.rounds = bench.timed;
  parts.step = bench.warmup + bench.timed;
  const auto components = time_coschedule_overhead(variants[0], *deciding_parts.planner,
                                                   *deciding_parts.monitor, *comm, parts);

  if (comm->is_root()) {
    const double dense_time = median_of(variants[0].seconds);
    const double dense_flops = variants[0].training_flops;
    std::cout << "winnow bench-plans: " << data.model.kind << " dim " << config.model.dim
              << ", depth " << depth << ", " << variants[0].model->dense_tokens()
              << " tokens, global batch " << config.train.global_batch << ", " << comm->world_size()
              << " rank(s) x " << threads_per_rank(config, *comm) << " thread(s); median of "
              << bench.timed << " interleaved rounds\n"
              << "  BLAS " << loaded_blas() << ", allocator " << active_allocator() << "\n"
              << std::fixed << std::setprecision(1)
              << "  variant              step ms  (min - max)       vs dense  paired (IQR)"
                 "          FLOPs ratio  speedup/FLOPs speedup\n";
    for (const auto& v : variants) {
      const double time = median_of(v.seconds);
      const double ratio = v.training_flops / dense_flops;
      // Paired: the variant's step over dense's step of the same round (drift cancels), median
      // and interquartile range over the rounds.
      std::vector<double> paired;
      for (size_t r = 0; r < v.seconds.size(); ++r)
        paired.push_back(v.seconds[r] / variants[0].seconds[r] - 1.0);
      std::sort(paired.begin(), paired.end());
      const double q1 = paired[paired.size() / 4], q3 = paired[(3 * paired.size()) / 4];
      std::cout << "  " << std::left << std::setw(19) << v.name << std::right << std::setw(9)
                << 1000.0 * time << "  (" << std::setw(6) << 1000.0 * min_of(v.seconds) << " - "
                << std::setw(6) << 1000.0 * max_of(v.seconds) << ")  " << std::showpos
                << std::setw(7) << 100.0 * (time / dense_time - 1.0) << "%" << std::setw(8)
                << 100.0 * median_of(paired) << "% (" << std::setw(6) << 100.0 * q1 << ", "
                << std::setw(6) << 100.0 * q3 << ")" << std::noshowpos << std::setprecision(3)
                << std::setw(9) << ratio;
      if (ratio < 0.999) std::cout << std::setw(14) << (dense_time / time) / (1.0 / ratio);
      std::cout << std::setprecision(1) << "\n";
    }
    // The co-scheduler at its defaults: the measured ρ = 1 variant plus the probes' analytic
    // share at the default target.
    const auto& planner = defaults.planner;
    const double probes = (1.0 / planner.budget.target - 1.0) /
                          static_cast<double>(std::max<int64_t>(planner.probe_every, 1));
    std::vector<double> paired;
    for (size_t r = 0; r < variants[at_defaults].seconds.size(); ++r)
      paired.push_back(variants[at_defaults].seconds[r] / variants[0].seconds[r] - 1.0);
    const double measured = median_of(paired);
    std::cout << std::setprecision(2) << "  co-scheduler at its defaults (statistics every "
              << planner.statistics_every << " steps, a decision every " << planner.interval
              << ", probes every " << planner.probe_every << " at rho* = " << planner.budget.target
              << "): " << std::showpos << 100.0 * measured << "% measured + "
              << 100.0 * (planner.probe_every > 0 ? probes : 0.0)
              << "% probes (analytic) = " << 100.0 * (measured + probes) << "% of a dense step"
              << std::noshowpos << "\n";
    // By components: each a share of the dense step of its own round; median and range.
    std::cout << std::fixed << std::setprecision(1) << "  by components, each beside a dense step ("
              << 1000.0 * median_of(components.step) << " ms, median of " << components.step.size()
              << " rounds), as a share of that step, median (range):\n";
    double total = 0.0;
    auto row = [&](const std::string& what, const std::vector<double>& part, int64_t every) {
      std::vector<double> shares;
      for (size_t r = 0; r < part.size(); ++r)
        shares.push_back(100.0 * part[r] / components.step[r] / static_cast<double>(every));
      total += median_of(shares);
      std::cout << "    " << std::left << std::setw(34) << what << std::right
                << std::setprecision(3) << std::setw(9) << 1000.0 * median_of(part) << " ms, every "
                << std::setw(3) << every << " steps: " << median_of(shares) << "% ("
                << min_of(shares) << " - " << max_of(shares) << ")\n";
    };
    const int64_t every_s = std::max<int64_t>(planner.statistics_every, 1);
    row("statistics of " + std::to_string(depth) + " blocks", components.statistics, every_s);
    row("their all-reduce and EMA update", components.update, every_s);
    row("one allocator decision", components.decision, std::max<int64_t>(planner.interval, 1));
    const double probe_share = 100.0 * (planner.probe_every > 0 ? probes : 0.0);
    total += probe_share;
    std::cout << "    " << std::left << std::setw(34) << "probes (analytic)" << std::right
              << std::setprecision(3) << probe_share << "%\n"
              << "    " << std::left << std::setw(34) << "total at the defaults" << std::right
              << total << "%\n"
              << std::flush;
  }
  return 0;
}

}  // namespace winnow::launch
