// The data-parallel training loop.
#include "train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>

#include "compression/flops.h"
#include "data/atomic_file.h"
#include "data/error_text.h"
#include "data/loader.h"
#include "dist/agreed_error.h"
#include "train/allocation_counter.h"
#include "train/checkpoint_directory.h"
#include "train/metrics_lines.h"
#include "train/plan_hooks.h"
#include "train/root_work.h"

namespace winnow::train {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Rank r's share [begin, end) of `total` items: contiguous, and the shares partition the total.
std::pair<int64_t, int64_t> rank_share(int64_t total, int rank, int world) {
  return {total * rank / world, total * (rank + 1) / world};
}

// Gradients are synchronised for what trains; frozen parameters have none.
std::vector<torch::Tensor> trainable_parameters(const TransformerModel& model) {
  std::vector<torch::Tensor> trainable;
  for (const auto& p : model.parameters())
    if (p.requires_grad()) trainable.push_back(p);
  return trainable;
}

std::string joined(const std::vector<int64_t>& values) {
  std::ostringstream out;
  for (size_t i = 0; i < values.size(); ++i) out << (i ? "," : "") << values[i];
  return out.str();
}

// Keeps the lines of a metrics log up to `step` (steps after it will be trained again). A last
// line cut short (the disk filled while it was written) is dropped too.
void truncate_metrics_after(const std::string& path, int64_t step) {
  std::ifstream in(path);
  if (!in) return;
  std::string kept, line;
  const std::string key = "\"step\":";
  while (std::getline(in, line)) {
    if (line.empty() || line.back() != '}') continue;
    const auto at = line.find(key);
    if (at != std::string::npos) {
      char* end = nullptr;
      const long long line_step = std::strtoll(line.c_str() + at + key.size(), &end, 10);
      if (end == line.c_str() + at + key.size() || line_step > step) continue;
    }
    kept += line + "\n";
  }
  in.close();
  data::write_file_atomically(path, kept);
}

}  // namespace

void TrainerOptions::validate(int world_size) const {
  TORCH_CHECK(steps > 0, "train.steps: expected > 0, got ", steps);
  TORCH_CHECK(global_batch >= world_size,
              "train.global_batch: expected at least one sample per rank (", world_size,
              " ranks), got ", global_batch);
  TORCH_CHECK(accumulation >= 1, "train.accumulation: expected >= 1, got ", accumulation);
  TORCH_CHECK(eval_every >= 0, "train.eval_every: expected >= 0 (0 = only at the end), got ",
              eval_every);
  TORCH_CHECK(eval_batch >= 1, "train.eval_batch: expected >= 1, got ", eval_batch);
  TORCH_CHECK(log_every >= 1, "train.log_every: expected >= 1, got ", log_every);
  TORCH_CHECK(bucket_mb >= 1, "dist.bucket_mb: expected >= 1, got ", bucket_mb);
  TORCH_CHECK(replica_check_every >= 0, "dist.check_every: expected >= 0 (0 = never), got ",
              replica_check_every);
  InferenceSpeedOptions inference;
  inference.batch = inference_batch;
  inference.rounds = inference_rounds;
  inference.validate();
}

Trainer::Trainer(std::shared_ptr<TransformerModel> model, std::shared_ptr<data::Dataset> train_data,
                 std::shared_ptr<data::Dataset> eval_data, std::shared_ptr<dist::Communicator> comm,
                 TrainerOptions options, OptimizerOptions optimizer_options)
    : model_(std::move(model)),
      train_data_(std::move(train_data)),
      eval_data_(std::move(eval_data)),
      comm_(std::move(comm)),
      options_(std::move(options)),
      optimizer_options_(optimizer_options) {
  TORCH_CHECK(model_ && comm_, "trainer: a model and a communicator are required");
  options_.validate(comm_->world_size());
  schedule_.peak_lr = optimizer_options_.lr;
  schedule_.warmup_steps = options_.warmup_steps;
  schedule_.total_steps = options_.steps;
  schedule_.min_lr_ratio = options_.min_lr_ratio;
  schedule_.validate();
  configured_depth_ = model_->depth();
  kept_layers_ = train::kept_layers(configured_depth_, {});
  set_backbone_frozen(optimizer_options_.backbone_frozen_at(0));
  rebuild_grad_sync();

  // Every replica starts from rank 0's parameters (frozen ones too) and buffers.
  std::vector<torch::Tensor> state = model_->parameters();
  for (const auto& b : model_->buffers()) state.push_back(b);
  grad_sync_->broadcast_parameters(state);

  if (comm_->is_root() && !options_.run_dir.empty())
    metrics_ = MetricsLog(options_.run_dir + "/metrics.jsonl");
}

void Trainer::set_backbone_frozen(bool frozen) {
  if (optimizer_ && frozen == backbone_frozen_) return;
  set_backbone_trainable(*model_, !frozen);
  backbone_frozen_ = frozen;
  // The groups change members; the moments of parameters that trained before are kept (AdamW's
  // state is keyed by the parameter tensor, which stays the same).
  auto optimizer = make_adamw(*model_, optimizer_options_);
  if (optimizer_)
    for (auto& [key, state] : optimizer_->state())
      if (state) optimizer->state()[key] = std::move(state);
  optimizer_ = std::move(optimizer);
  lr_scales_ = group_lr_scales(*model_, optimizer_options_);
  parameters_ = trainable_parameters(*model_);
}

void Trainer::rebuild_grad_sync() {
  dist::GradSyncOptions sync_options;
  sync_options.bucket_bytes = options_.bucket_mb * 1024 * 1024;
  grad_sync_ = std::make_unique<dist::GradSync>(comm_, parameters_, sync_options);
}

void Trainer::unfreeze_if_due(int64_t step) {
  if (!backbone_frozen_ || optimizer_options_.backbone_frozen_at(step)) return;
  set_backbone_frozen(false);
  rebuild_grad_sync();
  JsonLine line;
  line.add("event", "unfreeze")
      .add("step", step)
      .add("trainable_parameters", static_cast<int64_t>(parameters_.size()));
  log(line);
  if (comm_->is_root() && options_.progress)
    std::cout << "step " << step << ": backbone unfrozen (train.unfreeze_at), "
              << parameters_.size() << " parameter tensors train, backbone at "
              << optimizer_options_.backbone_lr_scale << "x the learning rate" << std::endl;
}

std::vector<int64_t> Trainer::removed_layers() const {
  std::vector<int64_t> removed;
  for (int64_t l = 0; l < configured_depth_; ++l)
    if (!std::binary_search(kept_layers_.begin(), kept_layers_.end(), l)) removed.push_back(l);
  return removed;
}

void Trainer::remove_layers(const std::vector<int64_t>& layers) {
  TORCH_CHECK(model_factory_, "trainer: the planner removes blocks ", joined(layers),
              " but the trainer has no model factory to build the smaller model "
              "(Trainer::set_model_factory)");
  TORCH_CHECK(planner_, "trainer: removing layers needs the planner that pruned them");
  const std::vector<int64_t> kept = train::kept_layers(model_->depth(), layers);
  auto planner = planner_->without_layers(kept);
  auto smaller = model_factory_(static_cast<int64_t>(kept.size()));
  TORCH_CHECK(smaller && smaller->depth() == static_cast<int64_t>(kept.size()),
              "trainer: the model factory built a model of depth ", smaller ? smaller->depth() : 0,
              ", expected ", kept.size());
  if (configured_dense_flops_ == 0.0)
    configured_dense_flops_ = model_->dense_forward_flops_per_sample();  // model_ is configured
  smaller->attach_compression(planner->parameters());
  copy_kept_blocks(*model_, *smaller, kept);
  set_backbone_trainable(*smaller, !backbone_frozen_);
  auto optimizer = make_adamw(*smaller, optimizer_options_);
  carry_optimizer_state(*model_, *optimizer_, *smaller, *optimizer, kept);
  std::vector<int64_t> kept_of_configured;
  for (int64_t j : kept) kept_of_configured.push_back(kept_layers_[static_cast<size_t>(j)]);

  model_ = std::move(smaller);
  optimizer_ = std::move(optimizer);
  planner_ = std::move(planner);
  if (monitor_) monitor_ = monitor_->without_layers(kept);
  kept_layers_ = std::move(kept_of_configured);
  lr_scales_ = group_lr_scales(*model_, optimizer_options_);
  parameters_ = trainable_parameters(*model_);
  rebuild_grad_sync();
}

void Trainer::remove_layers_if_due(int64_t step) {
  if (!planner_) return;
  const std::vector<int64_t> layers = planner_->layers_to_remove(step);
  if (layers.empty()) return;
  std::vector<int64_t> removed;  // in the configured model's numbering
  for (int64_t l : layers) removed.push_back(kept_layers_[static_cast<size_t>(l)]);
  const int64_t depth_before = model_->depth();
  const int64_t parameters_before = parameter_count(*model_);
  const int64_t optimizer_bytes_before = optimizer_state_bytes(*optimizer_);
  remove_layers(layers);
  JsonLine line;
  line.add("event", "remove_layers")
      .add("step", step)
      .add("removed", removed)
      .add("kept", kept_layers_)
      .add("parameters_before", parameters_before)
      .add("parameters_after", parameter_count(*model_))
      .add("optimizer_bytes_before", optimizer_bytes_before)
      .add("optimizer_bytes_after", optimizer_state_bytes(*optimizer_));
  log(line);
  if (comm_->is_root() && options_.progress)
    std::cout << "step " << step << ": heal: removed blocks " << joined(removed)
              << " (capacity 0) from the model and the optimizer, " << depth_before << " -> "
              << model_->depth() << " blocks, parameters " << parameters_before << " -> "
              << parameter_count(*model_) << ", optimizer state " << optimizer_bytes_before
              << " -> " << optimizer_state_bytes(*optimizer_) << " bytes" << std::endl;
}

std::map<std::string, torch::Tensor> Trainer::compression_state() const {
  std::map<std::string, torch::Tensor> state;
  if (planner_)
    for (const auto& [name, tensor] : planner_->state()) state["planner." + name] = tensor;
  if (monitor_)
    for (const auto& [name, tensor] : monitor_->state()) state["monitor." + name] = tensor;
  return state;
}

void Trainer::load_compression_state(const std::map<std::string, torch::Tensor>& state) {
  std::map<std::string, torch::Tensor> planner, monitor;
  for (const auto& [name, tensor] : state) {
    if (name.rfind("planner.", 0) == 0) {
      planner[name.substr(8)] = tensor;
    } else if (name.rfind("monitor.", 0) == 0) {
      monitor[name.substr(8)] = tensor;
    } else {
      TORCH_CHECK(false, "checkpoint: unknown compression state '", name,
                  "' (expected planner.* or monitor.*)");
    }
  }
  // A run that had no statistics (or a stateless planner) resumes with fresh ones.
  if (planner_ && !planner.empty()) planner_->load_state(planner);
  if (monitor_ && !monitor.empty()) monitor_->load_state(monitor);
}

StepResult Trainer::train_step(const data::Batch& batch, int64_t step) {
  unfreeze_if_due(step);
  remove_layers_if_due(step);
  const auto start = Clock::now();
  StepResult result;
  model_->train();
  for (auto& p : parameters_) p.mutable_grad() = torch::Tensor();  // undefined = "no gradient here"

  // The loss is a sum over samples/tokens divided by the *global* count, so the summed gradients
  // equal those of one process holding the whole global batch, whatever each rank holds.
  auto count =
      torch::tensor({static_cast<double>(batch.size() > 0 ? model_->loss_count(batch.targets) : 0)},
                    torch::kFloat64);
  comm_->all_reduce(count, dist::ReduceOp::kSum);
  const double global_count = count.item<double>();
  const double global_samples = static_cast<double>(options_.global_batch);
  TORCH_CHECK(global_count > 0, "train: the global batch at step ", step, " is empty");

  const compression::Plan plan =
      planner_ ? planner_->plan(step, /*training=*/true) : compression::Plan{};
  compression::TokenEvolutionMonitor* monitor = plan.statistics ? monitor_.get() : nullptr;

  double loss_sum = 0.0, flops = 0.0, teacher_flops = 0.0;
  std::map<std::string, double> aux_sums;  // name -> this rank's sum, unweighted
  compression::AuxMetrics metric_sums;     // name -> this rank's (sum, count)
  bool finite = true, prepared_last = false;
  const int64_t local = batch.size();
  // Counts the tensor storage this thread allocates until the gradients are synchronised.
  auto peak = std::make_unique<PeakAllocation>();
  for (int64_t micro = 0; micro < options_.accumulation; ++micro) {
    const auto [begin, end] =
        rank_share(local, static_cast<int>(micro), static_cast<int>(options_.accumulation));
    if (end <= begin) continue;
    const bool last_micro_batch = micro + 1 == options_.accumulation;
    ForwardContext context;
    context.step = step;
    context.seed = options_.seed;
    context.sample_ids = batch.sample_ids.slice(0, begin, end);
    const auto inputs = batch.inputs.slice(0, begin, end);
    std::unique_ptr<PlanHooks> hooks;
    if (!plan.layers.empty()) {
      hooks = std::make_unique<PlanHooks>(plan, options_.seed, context.sample_ids, monitor,
                                          token_ids_of(inputs));
      if (hooks->any()) context.hook_for = [&hooks](int64_t layer) { return (*hooks)(layer); };
      context.aux_losses = &hooks->aux_losses();
      result.layers_run = hooks->layers_run();
    }
    context.final_tokens = distillation_ != nullptr;
    auto output = model_->forward(inputs, context);
    if (distillation_)
      teacher_flops += distillation_->add_losses(inputs, output, output.aux_losses);
    if (flops_regularizer_) flops_regularizer_->add(output, &output.aux_losses, &metric_sums);
    if (hooks)
      for (const auto& [name, metric] : hooks->metrics())
        compression::add_aux_metric(metric_sums, name, metric.sum, metric.count);
    auto targets = batch.targets.slice(0, begin, end);
    auto loss = model_->loss_sum(output, targets);
    const double value = loss.item<double>();
    finite = finite && std::isfinite(value);
    loss_sum += value;
    flops += output.forward_flops;
    if (result.tokens_per_layer.empty())
      result.tokens_per_layer.assign(output.tokens_per_layer.size(), 0);
    for (size_t i = 0; i < output.tokens_per_layer.size(); ++i)
      result.tokens_per_layer[i] += output.tokens_per_layer[i];
    // The task loss is divided by the global count of its items, auxiliary losses (sums over
    // samples) by the global sample count: both are then global means.
    torch::Tensor scaled = loss / global_count;  // []
    for (const auto& [name, aux] : output.aux_losses) {
      const double aux_value = aux.sum.item<double>();
      finite = finite && std::isfinite(aux_value);
      aux_sums[name] += aux_value;
      scaled = scaled + aux.sum * (aux.weight / global_samples);
    }
    // The last micro-batch's backward starts each gradient bucket's all-reduce as it completes.
    grad_sync_->prepare_backward(last_micro_batch, scaled);
    prepared_last = last_micro_batch;
    scaled.backward();
  }
  // Every rank finishes the gradient sync before any other collective, in lockstep; a rank with
  // no sample in its last micro-batch still takes part in every bucket (with zeros).
  if (!prepared_last) grad_sync_->prepare_backward(/*last_micro_batch=*/true);
  const dist::GradSyncStats& sync = grad_sync_->finish();
  result.comm_seconds = sync.exposed_seconds;
  result.comm_collective_seconds = sync.collective_seconds;
  const double peak_bytes = static_cast<double>(peak->bytes());
  peak.reset();

  // Lockstep: every rank learns whether any rank saw a non-finite loss, and the global sums.
  // Every rank runs the same plan, so every rank has the same auxiliary losses, in name order.
  std::vector<double> sums = {loss_sum, finite ? 0.0 : 1.0, flops, teacher_flops};
  for (const auto& [name, value] : aux_sums) sums.push_back(value);
  for (const auto& [name, metric] : metric_sums) {
    sums.push_back(metric.sum);
    sums.push_back(metric.count);
  }
  // Each rank's peak in its own slot, so that the sum holds every rank's (the max is taken below).
  const size_t peak_slots = sums.size();
  sums.resize(peak_slots + static_cast<size_t>(comm_->world_size()), 0.0);
  sums[peak_slots + static_cast<size_t>(comm_->rank())] = peak_bytes;
  auto stats = torch::tensor(sums, torch::kFloat64);
  comm_->all_reduce(stats, dist::ReduceOp::kSum);
  result.loss = stats[0].item<double>() / global_count;
  result.skipped = stats[1].item<double>() > 0;
  result.forward_flops = stats[2].item<double>();
  result.teacher_flops = stats[3].item<double>();
  int64_t index = 4;
  for (const auto& [name, value] : aux_sums)
    result.aux_losses[name] = stats[index++].item<double>() / global_samples;
  for (const auto& [name, metric] : metric_sums) {
    const double sum = stats[index++].item<double>(), count = stats[index++].item<double>();
    result.metrics[name] = count > 0 ? sum / count : NAN;
  }
  for (int r = 0; r < comm_->world_size(); ++r)
    result.peak_activation_bytes =
        std::max(result.peak_activation_bytes, static_cast<int64_t>(stats[index++].item<double>()));
  // Tokens per layer summed over ranks, so every rank reports the global figure.
  if (!result.tokens_per_layer.empty() || model_->depth() > 0) {
    result.tokens_per_layer.resize(static_cast<size_t>(model_->depth()), 0);
    auto tokens = torch::tensor(result.tokens_per_layer, torch::kInt64);
    comm_->all_reduce(tokens, dist::ReduceOp::kSum);
    result.tokens_per_layer.assign(tokens.data_ptr<int64_t>(),
                                   tokens.data_ptr<int64_t>() + tokens.numel());
  }
  // Token-evolution statistics: (sum, count) pairs summed over ranks, then the EMAs.
  if (monitor) {
    auto evolution = monitor->step_sums().clone();  // [L, kEvolutionFields]
    comm_->all_reduce(evolution, dist::ReduceOp::kSum);
    if (result.skipped)
      monitor->discard_step();
    else
      monitor->update(evolution, step);
  }
  // Per-token saliency tables: Σ τ and counts per key summed over ranks, so every rank folds the
  // same sums into the same table. τ is taken w.r.t. the summed loss (× global_count).
  if (planner_) {
    for (const auto& table : planner_->saliency_tables()) {
      auto saliency = table->step_sums().clone();  // [layers, 2, keys]
      comm_->all_reduce(saliency, dist::ReduceOp::kSum);
      if (result.skipped)
        table->discard_step();
      else
        table->update(saliency, global_count);
    }
  }
  // Closed-loop planners decide from the statistics just reduced: the same on every rank.
  if (planner_ && !result.skipped) result.decisions = planner_->observe(step, monitor_.get());

  if (!result.skipped) {
    std::vector<torch::Tensor> with_grad;
    for (auto& p : parameters_)
      if (p.grad().defined()) with_grad.push_back(p);
    if (optimizer_options_.clip_norm > 0 && !with_grad.empty())
      torch::nn::utils::clip_grad_norm_(with_grad, optimizer_options_.clip_norm);
    set_learning_rate(*optimizer_, schedule_.at(step), lr_scales_);
    optimizer_->step();
  }
  result.seconds = seconds_since(start);
  return result;
}

EvalResult Trainer::evaluate() {
  if (!eval_data_) return {};
  EvalOptions eval_options;
  eval_options.batch = options_.eval_batch;
  eval_options.max_samples = options_.eval_max_samples;
  eval_options.seed = options_.seed;
  eval_options.planner = planner_.get();
  eval_options.flops_ratio = flops_regularizer_ != nullptr;
  auto result = evaluate_model(*model_, *eval_data_, *comm_, eval_options);
  // After heal removal the ratios are against the model the user configured, not the smaller one.
  if (configured_dense_flops_ > 0) result.dense_forward_flops_per_sample = configured_dense_flops_;
  model_->train();
  return result;
}

InferenceSpeed Trainer::measure_inference() {
  const auto& data = eval_data_ ? eval_data_ : train_data_;
  if (!data || options_.inference_rounds == 0) return {};
  InferenceSpeedOptions inference;
  inference.batch = options_.inference_batch;
  inference.rounds = options_.inference_rounds;
  inference.seed = options_.seed;
  inference.planner = planner_.get();
  // After heal removal the reference is a dense model of the configured depth (fresh weights:
  // only its speed is measured).
  std::shared_ptr<TransformerModel> configured;
  if (model_->depth() < configured_depth_) {
    configured = model_factory_(configured_depth_);
    inference.dense_model = configured.get();
  }
  auto result = measure_inference_speed(*model_, *data, *comm_, inference);
  model_->train();
  return result;
}

CheckpointMeta Trainer::resume(const std::string& file_or_dir) {
  const auto start = Clock::now();
  CheckpointMeta meta;
  const ResumeChoice choice = resolve_resume(file_or_dir, [&](const std::string& path) {
    // A checkpoint saved after train.unfreeze_at holds the backbone's optimizer state.
    const CheckpointMeta saved = read_checkpoint_meta(path);
    set_backbone_frozen(optimizer_options_.backbone_frozen_at(saved.step));
    // A checkpoint written in the heal phase holds the model without its removed blocks.
    if (saved.removed_layers != removed_layers()) {
      TORCH_CHECK(kept_layers_.size() == static_cast<size_t>(configured_depth_),
                  "--resume: checkpoint '", path, "' removed blocks '",
                  joined(saved.removed_layers), "', but this run already removed '",
                  joined(removed_layers()), "'");
      remove_layers(saved.removed_layers);
    }
    meta = read_checkpoint(path, *model_, optimizer_.get());
  });
  rebuild_grad_sync();
  load_compression_state(meta.compression);
  if (comm_->is_root())
    for (const auto& rejected : choice.rejected)
      std::cerr << "winnow: warning: skipping damaged checkpoint " << rejected << "\n";
  TORCH_CHECK(meta.global_batch == options_.global_batch, "--resume: checkpoint '", choice.path,
              "' was trained with train.global_batch=", meta.global_batch, ", the run has ",
              options_.global_batch,
              "; the sampler position is counted in global batches, so "
              "keep the global batch when resuming");
  TORCH_CHECK(meta.seed == options_.seed, "--resume: checkpoint '", choice.path,
              "' was trained with train.seed=", meta.seed, ", the run has ", options_.seed,
              " (the data order would change)");
  TORCH_CHECK(meta.step < options_.steps || options_.steps == meta.step, "--resume: checkpoint '",
              choice.path, "' is at step ", meta.step, ", beyond train.steps=", options_.steps);
  // Every rank must have loaded the same step and hold identical parameters.
  auto step = torch::tensor({meta.step, -meta.step}, torch::kInt64);
  comm_->all_reduce(step, dist::ReduceOp::kMax);
  TORCH_CHECK(step[0].item<int64_t>() == meta.step && -step[1].item<int64_t>() == meta.step,
              "--resume: the ranks loaded checkpoints of different steps (this rank: ", meta.step,
              "); every rank must see the same checkpoint directory");
  TORCH_CHECK(grad_sync_->parameters_checksum_agree(),
              "--resume: the ranks loaded different parameters from '", choice.path, "'");
  start_step_ = meta.step;
  if (comm_->is_root() && !options_.run_dir.empty()) {
    // The log is replaced by a new file (atomically), so the open one is reopened.
    metrics_ = MetricsLog();
    truncate_metrics_after(options_.run_dir + "/metrics.jsonl", meta.step);
    metrics_ = MetricsLog(options_.run_dir + "/metrics.jsonl");
  }
  JsonLine line;
  line.add("event", "resume")
      .add("step", meta.step)
      .add("checkpoint", choice.path)
      .add("saved_world_size", meta.world_size)
      .add("world_size", comm_->world_size())
      .add("load_seconds", seconds_since(start));
  log(line);
  if (comm_->is_root()) {
    std::cout << "resumed from " << choice.path << " at step " << meta.step << " (global sample "
              << meta.samples_consumed << ", epoch " << meta.epoch << "; loaded and verified in "
              << seconds_since(start) << " s)";
    if (meta.world_size != comm_->world_size())
      std::cout << "; saved on " << meta.world_size << " rank(s), continuing on "
                << comm_->world_size() << ": the sampler continues from the global sample position";
    std::cout << std::endl;
  }
  return meta;
}

std::string Trainer::save_checkpoint(int64_t completed_steps, const std::string& reason) {
  const auto start = Clock::now();
  const auto& options = options_.checkpoint;
  TORCH_CHECK(!options.dir.empty(), "trainer: save_checkpoint without checkpoint.dir");
  CheckpointMeta meta;
  meta.step = completed_steps;
  meta.samples_consumed = completed_steps * options_.global_batch;
  meta.global_batch = options_.global_batch;
  meta.epoch = train_data_
                   ? meta.samples_consumed /
                         std::max<int64_t>(1, (train_data_->size() / options_.global_batch) *
                                                  options_.global_batch)
                   : 0;
  meta.world_size = comm_->world_size();
  meta.seed = options_.seed;
  meta.reason = reason;
  meta.config_ini = options.config_ini;
  meta.token_schedule = options.token_schedule;
  meta.lr_schedule = schedule_;
  meta.compression = compression_state();
  meta.removed_layers = removed_layers();
  // Replicas are identical, so rank 0 writes alone; the others wait for its verdict, so a failed
  // save (disk full) ends every rank with the same error instead of leaving them in the next
  // collective.
  std::string path;
  run_on_root(
      *comm_,
      [&] {
        CheckpointDirectory directory(options.dir, options.keep);
        SaveStageCallback on_stage;
        if (options.on_stage)
          on_stage = [&](SaveStage stage) { options.on_stage(completed_steps, stage); };
        path = directory.save(*model_, optimizer_.get(), meta, on_stage);
      },
      [&](const std::string& cause) {
        std::ostringstream message;
        message << "saving the checkpoint of step " << completed_steps << " in " << options.dir
                << " failed: " << cause << " (the partial file was removed; "
                << (start_step_ > 0 || checkpoints_written_ > 0
                        ? "the previous checkpoint is intact)"
                        : "no earlier checkpoint of this run exists)");
        return message.str();
      });
  checkpoint_seconds_ += seconds_since(start);
  ++checkpoints_written_;
  JsonLine line;
  line.add("event", "checkpoint")
      .add("step", completed_steps)
      .add("reason", reason)
      .add("path", path)
      .add("seconds", seconds_since(start));
  log(line);
  return path;
}

void Trainer::log(const JsonLine& line) {
  if (!metrics_error_.empty()) return;
  try {
    metrics_.write(line);
  } catch (const std::exception& error) {
    metrics_error_ = data::error_message(error);
  }
}

void Trainer::throw_if_metrics_failed(bool failed_somewhere) {
  if (!failed_somewhere) return;
  throw dist::AgreedError(metrics_error_.empty() ? "writing the metrics log failed on rank 0"
                                                 : metrics_error_);
}

data::LoaderOptions Trainer::loader_options() const {
  data::LoaderOptions options;
  options.global_batch_size = options_.global_batch;
  options.rank = comm_->rank();
  options.world_size = comm_->world_size();
  options.seed = options_.seed;
  options.shuffle = true;
  options.start_position = start_step_ * options_.global_batch;
  options.prefetch_depth = options_.prefetch;
  return options;
}

void Trainer::report_step(int64_t step, const StepResult& r, double seconds, double elapsed,
                          Progress& progress) {
  const double lr = schedule_.at(step);
  if ((step + 1) % options_.log_every == 0 || step + 1 == options_.steps || r.skipped) {
    auto line = step_metrics_line(step, r, lr, static_cast<double>(options_.global_batch) / seconds,
                                  planner_.get(), monitor_.get());
    line.add("elapsed_seconds", elapsed);
    log(line);
  }
  for (const auto& decision : r.decisions) log(capacity_metrics_line(step, decision));
  if (!r.decisions.empty())
    progress.message(capacity_progress_line(step, planner_->capacities(), r.decisions.front()));
  if (r.skipped) progress.message(skipped_step_progress_line(step));
  const TaskUnits units = model_->task_units();
  const double items =
      static_cast<double>(options_.global_batch * units.throughput_items_per_sample);
  progress.update(step, r.loss, items / seconds, units.throughput_unit, lr);
}

void Trainer::evaluate_after(int64_t step, TrainSummary& summary, Progress& progress) {
  const bool last = step + 1 == options_.steps;
  if (!eval_data_ || !(last || (options_.eval_every > 0 && (step + 1) % options_.eval_every == 0)))
    return;
  summary.eval = evaluate();
  const TaskUnits units = model_->task_units();
  log(eval_metrics_line(step, summary.eval, units));
  progress.message(eval_progress_line(step, summary.eval, units));
}

void Trainer::check_replicas_after(int64_t step) {
  // Replicas must stay identical (same gradients, same updates); a divergence means a bug or
  // broken hardware, and continuing would silently train N different models.
  if (options_.replica_check_every > 0 && (step + 1) % options_.replica_check_every == 0)
    TORCH_CHECK(grad_sync_->parameters_checksum_agree(), "after step ", step + 1,
                ": the replicas' parameters differ between ranks (checksum min != max); "
                "data-parallel training requires identical replicas");
}

bool Trainer::checkpoint_and_stop_after(int64_t step, CheckpointPolicy& checkpoints,
                                        TrainSummary& summary, Progress& progress) {
  // Lockstep: a stop signal on any rank, or rank 0's clock saying a timed save is due, reaches
  // every rank through one all-reduce, so all ranks save and stop after the same step.
  const int signal = pending_signal_ ? pending_signal_() : 0;
  const bool time_due = comm_->is_root() && checkpoints.time_due();
  auto decision = torch::tensor(
      {static_cast<double>(signal), time_due ? 1.0 : 0.0, metrics_error_.empty() ? 0.0 : 1.0},
      torch::kFloat64);
  comm_->all_reduce(decision, dist::ReduceOp::kMax);
  throw_if_metrics_failed(decision[2].item<double>() > 0);
  summary.stop_signal = static_cast<int>(decision[0].item<double>());
  const std::string reason =
      checkpoints.reason(step + 1, summary.stop_signal, decision[1].item<double>() > 0);
  if (!reason.empty()) {
    summary.last_checkpoint = save_checkpoint(step + 1, reason);
    checkpoints.saved();
    progress.message("checkpoint " + summary.last_checkpoint + " (" + reason + ")");
  }
  if (!checkpoints.stops(step + 1, summary.stop_signal)) return false;
  summary.stopped_early = step + 1 != options_.steps;
  return true;
}

TrainSummary Trainer::run() {
  TORCH_CHECK(train_data_, "trainer: no training data");
  const int64_t end_step =
      options_.stop_at > 0 ? std::min(options_.stop_at, options_.steps) : options_.steps;
  data::Loader loader(train_data_, loader_options());
  Progress progress(options_.steps, options_.log_every, options_.progress && comm_->is_root(),
                    options_.progress_live);
  CheckpointPolicy checkpoints(options_.checkpoint, options_.steps, end_step);
  TrainSummary summary;
  summary.last_step = start_step_;
  double step_seconds = 0.0, comm_seconds = 0.0;
  const auto start = Clock::now();
  for (int64_t step = start_step_; step < end_step; ++step) {
    const auto step_start = Clock::now();
    const StepResult r = train_step(loader.next(), step);
    const double seconds = seconds_since(step_start);  // includes waiting for data
    step_seconds += seconds;
    comm_seconds += r.comm_seconds;
    summary.training_flops += r.training_flops();
    summary.skipped_steps += r.skipped ? 1 : 0;
    summary.final_loss = r.loss;
    summary.peak_activation_bytes =
        std::max(summary.peak_activation_bytes, r.peak_activation_bytes);
    ++summary.steps;
    summary.last_step = step + 1;

    report_step(step, r, seconds, seconds_since(start), progress);
    evaluate_after(step, summary, progress);
    check_replicas_after(step);
    if (checkpoint_and_stop_after(step, checkpoints, summary, progress)) break;
  }
  progress.finish();
  if (summary.last_step == options_.steps && !summary.stopped_early &&
      options_.inference_rounds > 0) {
    summary.inference = measure_inference();
    if (summary.inference.measured())
      log(inference_metrics_line(summary.last_step - 1, summary.inference));
  }
  // Lines written after the last decision (the final checkpoint's) must have reached the disk.
  auto metrics_failed = torch::tensor({metrics_error_.empty() ? 0.0 : 1.0}, torch::kFloat64);
  comm_->all_reduce(metrics_failed, dist::ReduceOp::kMax);
  throw_if_metrics_failed(metrics_failed.item<double>() > 0);
  summary.train_seconds = step_seconds;
  summary.samples_per_second =
      step_seconds > 0 ? static_cast<double>(summary.steps * options_.global_batch) / step_seconds
                       : 0;
  summary.comm_fraction = step_seconds > 0 ? comm_seconds / step_seconds : 0;
  summary.checkpoint_seconds = checkpoint_seconds_;
  summary.checkpoints_written = checkpoints_written_;
  return summary;
}

}  // namespace winnow::train
