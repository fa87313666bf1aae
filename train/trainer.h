// Trainer: the data-parallel training loop (forward, global-normalised loss, backward, gradient
// sync, clipping, AdamW, LR schedule), periodic evaluation, metrics and progress.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "compression/flops.h"
#include "compression/planner.h"
#include "compression/token_evolution_monitor.h"
#include "data/batch.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "dist/communicator.h"
#include "dist/grad_sync.h"
#include "train/checkpoint.h"
#include "train/checkpoint_policy.h"
#include "train/distillation.h"
#include "train/evaluate.h"
#include "train/flops_regularizer.h"
#include "train/inference_speed.h"
#include "train/layer_removal.h"
#include "train/lr_schedule.h"
#include "train/metrics.h"
#include "train/model.h"
#include "train/optimizer.h"

namespace winnow::train {

struct TrainerOptions {
  int64_t steps = 1000;        // optimizer steps
  int64_t global_batch = 128;  // samples per optimizer step, over all ranks
  int64_t accumulation = 1;    // micro-batches per rank per step
  int64_t warmup_steps = 100;
  double min_lr_ratio = 0.01;
  int64_t eval_every = 0;        // steps between evaluations; 0 = only at the end
  int64_t eval_batch = 512;      // global samples per evaluation batch
  int64_t eval_max_samples = 0;  // 0 = the whole evaluation set
  int64_t log_every = 20;        // steps between metrics lines / plain progress lines
  uint64_t seed = 0;
  int64_t bucket_mb = 1;  // gradient all-reduce bucket size (docs/distributed.md, Buckets)
  // Steps between checks that every replica holds bitwise identical parameters (0 = never).
  int64_t replica_check_every = 1000;
  int64_t prefetch = 2;        // batches the loader thread prepares ahead
  std::string run_dir;         // where metrics.jsonl goes; empty = no files
  bool progress = true;        // print progress (rank 0 only)
  bool progress_live = false;  // one line rewritten in place (a terminal) instead of plain lines
  int64_t stop_at = 0;         // stop (and save) after this many completed steps; 0 = train.steps
  // After the last step: inference throughput of the evaluation plan against dense, in
  // alternating rounds of this many global samples (train/inference_speed.h); 0 rounds = off.
  int64_t inference_batch = 64;
  int64_t inference_rounds = 5;
  CheckpointOptions checkpoint;

  void validate(int world_size) const;
};

struct StepResult {
  double loss = 0.0;           // global mean task loss of the step
  bool skipped = false;        // non-finite loss on some rank: no update on any rank
  double forward_flops = 0.0;  // analytic forward FLOPs of the global batch
  double teacher_flops = 0.0;  // the distillation teacher's forward FLOPs (it runs no backward)
  std::vector<int64_t> tokens_per_layer;
  std::vector<bool> layers_run;  // the step's layer gates (false: the layer was skipped)
  // Auxiliary losses, global means (sum over all ranks / global sample count), unweighted.
  std::map<std::string, double> aux_losses;
  // Statistics the plan's components reported (compression::AuxMetric), global sum / count.
  std::map<std::string, double> metrics;
  // The planner's decisions after this step (capacity changes of a closed-loop planner).
  std::vector<compression::PlannerDecision> decisions;
  double seconds = 0.0;
  double comm_seconds = 0.0;             // blocked on gradient all-reduce (not hidden by backward)
  double comm_collective_seconds = 0.0;  // gradient all-reduce in flight, hidden or not
  // Peak bytes of CPU tensor storage allocated during forward and backward above those alive at
  // the step's start (train/allocation_counter.h), the largest over ranks.
  int64_t peak_activation_bytes = 0;

  // Forward + backward of the model, plus the teacher's forward.
  double training_flops() const {
    return forward_flops * compression::kTrainingFlopsPerForwardFlop + teacher_flops;
  }
};

struct TrainSummary {
  int64_t steps = 0, skipped_steps = 0;
  double train_seconds = 0.0;
  double samples_per_second = 0.0;  // global
  double training_flops = 0.0;      // global, forward + backward (analytic)
  double final_loss = 0.0;
  double comm_fraction = 0.0;  // share of step time blocked waiting on gradient all-reduce
  EvalResult eval;
  // The largest StepResult::peak_activation_bytes of the steps this run trained.
  int64_t peak_activation_bytes = 0;
  // Measured after the last step (unmeasured when the run stopped early or inference_rounds = 0).
  InferenceSpeed inference;
  int64_t last_step = 0;            // steps completed when run() returned
  int stop_signal = 0;              // the signal that stopped the run early (0 = none)
  bool stopped_early = false;       // by a signal or train.stop_at, before train.steps
  std::string last_checkpoint;      // path of the newest checkpoint written, if any
  double checkpoint_seconds = 0.0;  // time spent saving checkpoints (rank 0's, all ranks wait)
  int64_t checkpoints_written = 0;
};

class Trainer {
 public:
  Trainer(std::shared_ptr<TransformerModel> model, std::shared_ptr<data::Dataset> train_data,
          std::shared_ptr<data::Dataset> eval_data, std::shared_ptr<dist::Communicator> comm,
          TrainerOptions options, OptimizerOptions optimizer_options);

  // What compresses the model at each step (token reductions, layer gates), for training and
  // evaluation; none = dense. Set before run(), after the model's compression parameters were
  // attached (TransformerModel::attach_compression) and before the trainer was built.
  void set_planner(std::shared_ptr<compression::Planner> planner) { planner_ = std::move(planner); }
  // Collects token-evolution statistics at the steps whose plan asks for them: all-reduced over
  // ranks, kept as EMAs, logged every train.log_every steps, saved in checkpoints.
  void set_monitor(std::shared_ptr<compression::TokenEvolutionMonitor> monitor) {
    monitor_ = std::move(monitor);
  }
  // Adds a frozen teacher's distillation losses to every training step (null = none).
  void set_distillation(std::shared_ptr<Distillation> distillation) {
    distillation_ = std::move(distillation);
  }
  // Adds the FLOPs regulariser (learned thresholds) to every training step, and its FLOPs ratio
  // to the metrics of training steps and evaluations (null = none).
  void set_flops_regularizer(std::shared_ptr<FlopsRegularizer> regularizer) {
    flops_regularizer_ = std::move(regularizer);
  }
  // Builds the smaller model when the planner removes layers (the co-scheduler's heal phase,
  // coschedule.heal_remove), and on resuming a checkpoint written after that. Without it such a
  // removal throws.
  void set_model_factory(ModelFactory factory) { model_factory_ = std::move(factory); }
  // The state of every compression component across steps, by name (saved under /compression).
  std::map<std::string, torch::Tensor> compression_state() const;
  void load_compression_state(const std::map<std::string, torch::Tensor>& state);

  // Stop requests from outside (e.g. SIGTERM/SIGUSR1): returns the pending signal number or 0.
  // Polled once per step on every rank; the decision is all-reduced, so all ranks stop together
  // after the same step, save a checkpoint and return.
  void set_stop_signal(std::function<int()> pending) { pending_signal_ = std::move(pending); }

  // Restores model, optimizer and data position from a checkpoint file, or from the newest
  // loadable one in a directory (see resolve_resume); run() then continues from its step.
  // Collective: every rank loads, then the ranks check they agree. Returns the loaded meta.
  CheckpointMeta resume(const std::string& file_or_dir);
  int64_t start_step() const { return start_step_; }

  // Trains until options.steps (or stop_at, or a stop signal), from step 0 or the resumed step,
  // evaluating every eval_every steps and at the end, saving checkpoints as configured.
  TrainSummary run();
  // Writes a checkpoint of the state after `completed_steps` steps (rank 0 writes, all wait).
  // Collective. Returns the file's path.
  std::string save_checkpoint(int64_t completed_steps, const std::string& reason);
  // One optimizer step on this rank's slice of a global batch.
  StepResult train_step(const data::Batch& batch, int64_t step);
  EvalResult evaluate();
  // Collective: inference throughput of the evaluation plan against dense on the evaluation set
  // (the training set without one), as train.inference_batch / train.inference_rounds say.
  InferenceSpeed measure_inference();

  // The model, optimizer, planner and monitor being trained: after a layer removal, the smaller
  // ones that replaced those the trainer was built with.
  TransformerModel& model() { return *model_; }
  torch::optim::AdamW& optimizer() { return *optimizer_; }
  const std::shared_ptr<compression::Planner>& planner() const { return planner_; }
  const std::shared_ptr<compression::TokenEvolutionMonitor>& monitor() const { return monitor_; }
  // The blocks of the model the trainer was built with that were removed (ascending; empty =
  // none), and those that remain.
  std::vector<int64_t> removed_layers() const;
  const std::vector<int64_t>& kept_layers() const { return kept_layers_; }
  const TrainerOptions& options() const { return options_; }

 private:
  // The loader of run(): this rank's slice of each global batch, from the start (or resumed) step.
  data::LoaderOptions loader_options() const;
  // What one iteration of run() does after train_step, in order; step is 0-based.
  // The step's metrics line (every train.log_every steps, the last and skipped ones), the
  // planner's decisions, and the progress line.
  void report_step(int64_t step, const StepResult& result, double seconds, double elapsed,
                   Progress& progress);
  // Evaluates every train.eval_every steps and after the last one (when there is eval data).
  void evaluate_after(int64_t step, TrainSummary& summary, Progress& progress);
  // Every dist.check_every steps: throws unless every replica holds the same parameters.
  void check_replicas_after(int64_t step);
  // Collective: agrees on stop signals, timed saves and failed metrics writes, saves the
  // checkpoint the policy asks for, and returns whether the run stops here.
  bool checkpoint_and_stop_after(int64_t step, CheckpointPolicy& checkpoints, TrainSummary& summary,
                                 Progress& progress);
  // Writes a metrics line; a failed write (disk full) is kept in metrics_error_ and ends the run
  // on every rank at the next lockstep decision (see throw_if_metrics_failed).
  void log(const JsonLine& line);
  // Collective: if writing the metrics log failed on rank 0, every rank throws dist::AgreedError.
  void throw_if_metrics_failed(bool failed_somewhere);
  // Freezes or unfreezes the backbone (train.freeze / unfreeze_at): requires_grad, the optimizer's
  // groups (keeping the moments of what trained), learning-rate multipliers and the parameters
  // whose gradients are synchronised. Local; call rebuild_grad_sync() after it on every rank.
  void set_backbone_frozen(bool frozen);
  // Collective: gradient synchronisation over parameters_.
  void rebuild_grad_sync();
  // At train.unfreeze_at: unfreezes the backbone (collective) and logs it.
  void unfreeze_if_due(int64_t step);
  // Replaces the model by the one without the blocks `layers` (of the current model), with the
  // weights and optimizer state of what remains, the planner and monitor for the kept layers,
  // and the gradient sync over the new parameters. Collective (every rank removes the same).
  void remove_layers(const std::vector<int64_t>& layers);
  // Before step `step`: removes the layers the planner is done with (collective), and logs it.
  void remove_layers_if_due(int64_t step);

  std::shared_ptr<TransformerModel> model_;
  std::shared_ptr<data::Dataset> train_data_, eval_data_;
  std::shared_ptr<dist::Communicator> comm_;
  TrainerOptions options_;
  OptimizerOptions optimizer_options_;
  LrSchedule schedule_;
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  std::unique_ptr<dist::GradSync> grad_sync_;
  std::vector<torch::Tensor> parameters_;
  MetricsLog metrics_;
  std::string metrics_error_;  // the first failed metrics write (rank 0), or empty
  std::shared_ptr<compression::Planner> planner_;
  std::shared_ptr<compression::TokenEvolutionMonitor> monitor_;
  std::shared_ptr<Distillation> distillation_;
  std::shared_ptr<FlopsRegularizer> flops_regularizer_;
  std::vector<double> lr_scales_;  // per optimizer group
  bool backbone_frozen_ = false;
  ModelFactory model_factory_;
  int64_t configured_depth_ = 0;      // the depth of the model the trainer was built with
  std::vector<int64_t> kept_layers_;  // which of its blocks model_ holds, ascending
  // Dense forward FLOPs per sample of the configured model, kept when blocks are removed: the
  // reference of the FLOPs ratios evaluations report (0 while no block was removed).
  double configured_dense_flops_ = 0.0;
  std::function<int()> pending_signal_;
  int64_t start_step_ = 0;
  double checkpoint_seconds_ = 0.0;
  int64_t checkpoints_written_ = 0;
};

}  // namespace winnow::train
