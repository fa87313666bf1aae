// Trainer: the data-parallel training loop (forward, global-normalised loss, backward, gradient
// sync, clipping, AdamW, LR schedule), periodic evaluation, metrics and progress.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "compression/schedule.h"
#include "data/batch.h"
#include "data/dataset.h"
#include "dist/communicator.h"
#include "dist/grad_sync.h"
#include "train/evaluate.h"
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
  int64_t bucket_mb = 25;      // gradient all-reduce bucket size
  int64_t prefetch = 2;        // batches the loader thread prepares ahead
  std::string run_dir;         // where metrics.jsonl goes; empty = no files
  bool progress = true;        // print progress (rank 0 only)
  bool progress_live = false;  // one line rewritten in place (a terminal) instead of plain lines

  void validate(int world_size) const;
};

struct StepResult {
  double loss = 0.0;           // global mean loss of the step
  bool skipped = false;        // non-finite loss on some rank: no update on any rank
  double forward_flops = 0.0;  // this rank's analytic forward FLOPs
  std::vector<int64_t> tokens_per_layer;
  double seconds = 0.0;
  double comm_seconds = 0.0;
};

struct TrainSummary {
  int64_t steps = 0, skipped_steps = 0;
  double train_seconds = 0.0;
  double samples_per_second = 0.0;  // global
  double training_flops = 0.0;      // global, forward + backward (analytic)
  double final_loss = 0.0;
  double comm_fraction = 0.0;  // share of step time inside gradient all-reduce
  EvalResult eval;
};

class Trainer {
 public:
  Trainer(std::shared_ptr<TransformerModel> model, std::shared_ptr<data::Dataset> train_data,
          std::shared_ptr<data::Dataset> eval_data, std::shared_ptr<dist::Communicator> comm,
          TrainerOptions options, OptimizerOptions optimizer_options);

  // Token reduction for training and evaluation (none = dense). Must be set before run().
  void set_reduction(std::shared_ptr<const compression::ReductionSchedule> schedule) {
    reduction_ = std::move(schedule);
  }

  // Trains options.steps steps from `start_step`, evaluating every eval_every steps and at the end.
  TrainSummary run(int64_t start_step = 0);
  // One optimizer step on this rank's slice of a global batch.
  StepResult train_step(const data::Batch& batch, int64_t step);
  EvalResult evaluate();

  TransformerModel& model() { return *model_; }
  torch::optim::AdamW& optimizer() { return *optimizer_; }
  const TrainerOptions& options() const { return options_; }

 private:
  JsonLine step_line(int64_t step, const StepResult& result, double lr,
                     double samples_per_second) const;

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
  std::shared_ptr<const compression::ReductionSchedule> reduction_;
};

}  // namespace winnow::train
