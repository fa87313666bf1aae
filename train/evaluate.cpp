// Evaluation over a whole dataset, sliced over ranks.
#include "train/evaluate.h"

#include "train/flops_regularizer.h"
#include "train/plan_hooks.h"

#include <algorithm>
#include <chrono>
#include <cmath>

namespace winnow::train {

EvalResult evaluate_model(TransformerModel& model, const data::Dataset& dataset,
                          dist::Communicator& comm, const EvalOptions& options) {
  TORCH_CHECK(options.batch >= 1, "evaluation batch: expected >= 1, got ", options.batch);
  const auto start = std::chrono::steady_clock::now();
  torch::NoGradGuard no_grad;
  model.eval();
  const int64_t total =
      options.max_samples > 0 ? std::min(options.max_samples, dataset.size()) : dataset.size();
  const int64_t rank = comm.rank(), world = comm.world_size();
  double loss_sum = 0.0, correct = 0.0, count = 0.0, flops = 0.0;
  compression::AuxMetrics metric_sums;  // name -> this rank's (sum, count)
  const compression::Plan plan = options.planner
                                     ? options.planner->plan(options.step, /*training=*/false)
                                     : compression::Plan{};
  for (int64_t chunk = 0; chunk < total; chunk += options.batch) {
    const int64_t chunk_size = std::min(options.batch, total - chunk);
    const int64_t begin = chunk_size * rank / world, end = chunk_size * (rank + 1) / world;
    if (end <= begin) continue;
    std::vector<int64_t> ids;
    ids.reserve(static_cast<size_t>(end - begin));
    for (int64_t i = begin; i < end; ++i) ids.push_back(chunk + i);
    auto batch = dataset.fetch(ids);
    ForwardContext context;
    context.step = options.step;
    context.seed = options.seed;
    context.sample_ids = batch.sample_ids;
    std::unique_ptr<PlanHooks> hooks;
    if (!plan.layers.empty()) {
      hooks = std::make_unique<PlanHooks>(plan, options.seed, batch.sample_ids, nullptr,
                                          token_ids_of(batch.inputs));
      if (hooks->any()) context.hook_for = [&hooks](int64_t layer) { return (*hooks)(layer); };
    }
    auto output = model.forward(batch.inputs, context);
    if (hooks)
      for (const auto& [name, metric] : hooks->metrics())
        compression::add_aux_metric(metric_sums, name, metric.sum, metric.count);
    if (options.flops_ratio)
      FlopsRegularizer({}, model.dense_block_flops_per_sample()).add(output, nullptr, &metric_sums);
    loss_sum += model.loss_sum(output, batch.targets).item<double>();
    correct += output.logits.argmax(-1).eq(batch.targets).sum().item<double>();
    count += static_cast<double>(batch.targets.numel());
    flops += output.forward_flops;
  }
  // Every rank runs the same plan, so every rank that evaluated a sample reports the same metric
  // names; a rank with no sample at all cannot, and the ranks would reduce different lengths.
  auto entries = torch::tensor(
      {static_cast<int64_t>(metric_sums.size()), -static_cast<int64_t>(metric_sums.size())},
      torch::kInt64);
  comm.all_reduce(entries, dist::ReduceOp::kMax);
  TORCH_CHECK(entries[0].item<int64_t>() == -entries[1].item<int64_t>(),
              "evaluation: some ranks reported plan metrics and others none (", metric_sums.size(),
              " here); give each rank at least one evaluation sample (", total, " samples on ",
              world, " ranks)");
  std::vector<double> values = {loss_sum, correct, count, flops};
  for (const auto& [name, metric] : metric_sums) {
    values.push_back(metric.sum);
    values.push_back(metric.count);
  }
  auto sums = torch::tensor(values, torch::kFloat64);
  comm.all_reduce(sums, dist::ReduceOp::kSum);
  EvalResult result;
  const double global_count = sums[2].item<double>();
  result.samples = total;
  result.loss = global_count > 0 ? sums[0].item<double>() / global_count : NAN;
  result.accuracy = global_count > 0 ? sums[1].item<double>() / global_count : NAN;
  result.perplexity = std::exp(result.loss);
  result.forward_flops_per_sample = total > 0 ? sums[3].item<double>() / total : 0.0;
  result.dense_forward_flops_per_sample = model.dense_forward_flops_per_sample();
  int64_t index = 4;
  for (const auto& [name, metric] : metric_sums) {
    const double sum = sums[index++].item<double>(), metric_count = sums[index++].item<double>();
    result.metrics[name] = metric_count > 0 ? sum / metric_count : NAN;
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace winnow::train
