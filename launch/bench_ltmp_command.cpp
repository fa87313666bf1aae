// `winnow bench-ltmp`: inference with learned thresholds, whose samples keep different token
// counts: the padded batch (threshold_prune) against one forward pass per sample and the dense
// model, timed interleaved in one process, next to the FLOPs each variant computes.
#include <algorithm>
#include <iomanip>
#include <iostream>
#include <numeric>

#include "launch/bench_options.h"
#include "launch/commands.h"
#include "launch/config.h"
#include "launch/interleaved_steps.h"
#include "launch/run_setup.h"
#include "launch/stored_model.h"
#include "launch/system_info.h"
#include "train/model_weights.h"
#include "train/plan_hooks.h"

namespace winnow::launch {
namespace po = boost::program_options;
namespace {

using Clock = std::chrono::steady_clock;

// One inference variant: what it computes for a batch of images.
struct InferenceVariant {
  std::string name;
  std::function<train::ModelOutput(const data::Batch&)> run;
  std::vector<double> seconds;  // per timed round
};

// The forward pass of `model` on `inputs` under `plan` (empty plan: dense).
train::ModelOutput forward(train::TransformerModel& model, const compression::Plan& plan,
                           const torch::Tensor& inputs, const torch::Tensor& sample_ids) {
  train::ForwardContext context;
  context.sample_ids = sample_ids;
  std::unique_ptr<train::PlanHooks> hooks;
  if (!plan.layers.empty()) {
    hooks = std::make_unique<train::PlanHooks>(plan, 0, sample_ids);
    if (hooks->any()) context.hook_for = [&hooks](int64_t layer) { return (*hooks)(layer); };
  }
  return model.forward(inputs, context);
}

// Each sample of `batch` alone (batch 1), outputs concatenated: logits [B, K], live FLOPs [B],
// and the summed FLOPs that ran.
train::ModelOutput per_sample(train::TransformerModel& model, const compression::Plan& plan,
                              const data::Batch& batch) {
  std::vector<torch::Tensor> logits, live;
  train::ModelOutput out;
  for (int64_t b = 0; b < batch.size(); ++b) {
    auto one =
        forward(model, plan, batch.inputs.slice(0, b, b + 1), batch.sample_ids.slice(0, b, b + 1));
    logits.push_back(one.logits);
    live.push_back(one.live_block_flops);
    out.forward_flops += one.forward_flops;
  }
  out.logits = torch::cat(logits, 0);
  out.live_block_flops = torch::cat(live, 0);
  return out;
}

}  // namespace

int bench_ltmp_command(const Args& args) {
  BenchSteps bench{/*timed=*/10, /*warmup=*/2};
  std::string weights;
  int64_t batch_size = 64;
  po::options_description extra("Learned-threshold inference benchmark [bench]");
  add_bench_steps(extra, bench, "rounds");
  extra.add_options()("weights", po::value(&weights)->value_name("FILE"),
                      "model.h5 of a run with a threshold stage (its stored config is the base)")(
      "bench.batch", po::value(&batch_size)->default_value(batch_size),
      "evaluation samples per batch (each round runs the next batch of the evaluation set)");
  const std::string base = weights_config_of_args(args);
  RunConfig config;
  bool help = false;
  parse_run_config(args, extra, config, help, base);
  if (help) {
    std::cout
        << "usage: winnow bench-ltmp --weights RUN_DIR/model.h5 [--data.eval FILE] [options]\n\n"
           "Inference of a model with learned thresholds (criterion threshold): each sample\n"
           "keeps its own number of tokens. Times, interleaved in rotating order, the dense\n"
           "model, the padded batch (threshold_prune: cut to the batch's longest sample, the\n"
           "others padded with masked slots) and one forward pass per sample (batch 1), and\n"
           "prints median and range per batch, the FLOPs each computes, and whether the padded\n"
           "batch gives the per-sample logits.\n\n"
        << extra << run_options(config) << std::endl;
    return 0;
  }
  if (weights.empty())
    throw ConfigError("--weights: required (the model.h5 of a run with a threshold stage)");
  if (bench.timed < 1 || bench.warmup < 0 || batch_size < 1)
    throw ConfigError("bench-ltmp: expected bench.steps >= 1, bench.warmup >= 0, bench.batch >= 1");
  config.train.run_dir.clear();
  auto comm = start_communicator(config);
  if (comm->world_size() != 1)
    throw ConfigError("bench-ltmp: runs on one rank (it times single-process inference), got " +
                      std::to_string(comm->world_size()));
  validate(config, comm->world_size());
  auto data = open_run_data(config);
  if (!data.eval) throw ConfigError("data.eval: no evaluation set; give --data.eval FILE");
  auto model = train::make_model(data.model);
  auto compression = make_compression(config, data.model, *model);
  train::load_model_weights(*model, weights);
  model->eval();
  torch::NoGradGuard no_grad;
  const auto plan = compression.planner->plan(0, /*training=*/false);
  bool thresholds = false;
  for (const auto& layer : plan.layers)
    for (const auto& reduction : layer.reductions)
      thresholds = thresholds || reduction.method->criterion().decides_count();
  if (!thresholds)
    throw ConfigError(
        "bench-ltmp: the evaluation plan has no learned thresholds (criterion "
        "threshold); got: " +
        plan.describe());

  const compression::Plan dense_plan;
  std::vector<InferenceVariant> variants = {
      {"dense",
       [&](const data::Batch& b) { return forward(*model, dense_plan, b.inputs, b.sample_ids); },
       {}},
      {"padded batch",
       [&](const data::Batch& b) { return forward(*model, plan, b.inputs, b.sample_ids); },
       {}},
      {"per sample (batch 1)",
       [&](const data::Batch& b) { return per_sample(*model, plan, b); },
       {}},
  };
  const int64_t batches = std::max<int64_t>(1, data.eval->size() / batch_size);
  auto batch_at = [&](int64_t round) {
    const int64_t first = (round % batches) * batch_size;
    std::vector<int64_t> ids(static_cast<size_t>(std::min(batch_size, data.eval->size())));
    std::iota(ids.begin(), ids.end(), first);
    return data.eval->fetch(ids);
  };

  // FLOPs and agreement on the first batch: what each variant computes, and whether the padded
  // batch reproduces every sample's own forward pass.
  const auto probe = batch_at(0);
  const auto dense_out = variants[0].run(probe);
  const auto padded_out = variants[1].run(probe);
  const auto single_out = variants[2].run(probe);
  const double max_logit_gap = (padded_out.logits - single_out.logits).abs().max().item<double>();
  const bool same_predictions = padded_out.logits.argmax(-1).equal(single_out.logits.argmax(-1));
  const double dense_blocks = model->dense_block_flops_per_sample();
  const double live_ratio = padded_out.live_block_flops.mean().item<double>() / dense_blocks;
  const double live_spread_min = padded_out.live_block_flops.min().item<double>() / dense_blocks;
  const double live_spread_max = padded_out.live_block_flops.max().item<double>() / dense_blocks;

  for (int64_t round = 0; round < bench.warmup + bench.timed; ++round) {
    const auto images = batch_at(round);
    const size_t count = variants.size();
    for (size_t i = 0; i < count; ++i) {
      auto& variant = variants[(i + static_cast<size_t>(round)) % count];  // rotating order
      const auto start = Clock::now();
      variant.run(images);
      const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
      if (round >= bench.warmup) variant.seconds.push_back(seconds);
    }
  }

  const double dense_time = median_of(variants[0].seconds);
  std::cout << "winnow bench-ltmp: " << weights << ", " << data.model.kind << " dim "
            << config.model.dim << ", depth " << config.model.depth << ", " << model->dense_tokens()
            << " tokens, batch " << probe.size() << ", " << threads_per_rank(config, *comm)
            << " thread(s); " << bench.timed
            << " interleaved rounds (each a new batch), median [min, max]\n"
            << "  BLAS " << loaded_blas() << "\n  plan " << plan.describe() << "\n";
  std::cout << std::fixed << std::setprecision(3);
  std::cout << "  live block FLOPs / dense (the method's, per sample): mean " << live_ratio
            << ", samples from " << live_spread_min << " to " << live_spread_max << "\n";
  std::cout << "  variant                 ms/batch  [min, max]          time/dense   "
               "computed FLOPs/dense\n";
  const double dense_flops = dense_out.forward_flops;
  for (const auto& variant : variants) {
    const double time = median_of(variant.seconds);
    const auto& out =
        &variant == &variants[0] ? dense_out : (&variant == &variants[1] ? padded_out : single_out);
    std::cout << "  " << std::left << std::setw(22) << variant.name << std::right
              << std::setprecision(2) << std::setw(10) << 1000.0 * time << "  [" << std::setw(7)
              << 1000.0 * min_of(variant.seconds) << ", " << std::setw(7)
              << 1000.0 * max_of(variant.seconds) << "]" << std::setprecision(3) << std::setw(12)
              << time / dense_time << std::setw(18) << out.forward_flops / dense_flops << "\n";
  }
  std::cout << "  padded batch vs per sample: max |Δ logit| " << std::scientific
            << std::setprecision(2) << max_logit_gap << ", same predictions "
            << (same_predictions ? "yes" : "no") << std::endl;
  return 0;
}

}  // namespace winnow::launch
