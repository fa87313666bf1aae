// What every run subcommand (train, eval, bench) sets up the same way: the communicator and
// thread count, the datasets named by the config, and the model that fits them.
#pragma once

#include <memory>
#include <string>

#include "compression/layer_timing_table.h"
#include "compression/planner.h"
#include "data/dataset.h"
#include "dist/communicator.h"
#include "launch/config.h"
#include "train/model.h"
#include "train/model_registry.h"

namespace winnow::launch {

// The communicator of the running command, so main() can end every rank on an error.
std::shared_ptr<dist::Communicator>& active_communicator();

// Creates the communicator (config.dist.backend), makes it the active one, and sets the intra-op
// thread count: dist.threads, or the node's cores divided by the ranks on this node.
std::shared_ptr<dist::Communicator> start_communicator(const RunConfig& config);
int threads_per_rank(const RunConfig& config, const dist::Communicator& comm);

struct RunData {
  std::shared_ptr<data::Dataset> train, eval;
  train::ModelSpec model;  // config.model completed with the data's shape
};

// Opens data.train / data.eval (HDF5 files through data::open_data_file, or the synthetic kind),
// completes the model spec from the training data's SampleShape and checks that the sets agree
// with each other and with model.kind (images need vit, tokens need gpt).
RunData open_run_data(const RunConfig& config);

// What planners know of the model of `spec`: depth, width, patch grid, MLP width, tokens (the CLS
// token of a ViT protected), vocabulary.
compression::ModelShape model_shape(const train::ModelSpec& spec);

// The planner for `spec` from planner_registry() (launch/planner_registry.h): "coschedule" when
// coschedule.mode is set, else "static" (learned components' parameters are created, not attached
// to a model).
std::shared_ptr<compression::Planner> make_planner(const RunConfig& config,
                                                   const train::ModelSpec& spec);

// What compresses a run: the planner, and the token-evolution monitor (null unless
// monitor.statistics or the planner reads statistics).
struct RunCompression {
  std::shared_ptr<compression::Planner> planner;
  std::shared_ptr<compression::TokenEvolutionMonitor> monitor;
};
// Builds them for `spec` and attaches the planner's learned parameters to `model` (so do it
// before loading weights and building the trainer); configuration errors become ConfigError.
RunCompression make_compression(const RunConfig& config, const train::ModelSpec& spec,
                                train::TransformerModel& model);

// With coschedule.cost=time: times every block of `model` at the co-scheduler's token counts on
// the per-rank micro-batch (train.global_batch / ranks / train.accumulation, rounded up) and hands
// the table to the planner (train/block_timing.h). Collective: every rank holds the same table.
// For a fresh run only: a resumed run reads the table from its checkpoint. Returns the table, or
// an empty one when the planner does not budget time (nothing is measured then).
compression::LayerTimingTable measure_planner_costs(const RunConfig& config,
                                                    compression::Planner& planner,
                                                    train::TransformerModel& model,
                                                    dist::Communicator& comm);

// The frozen teacher of [distill] (null when distill.teacher is empty), loaded from its weights
// file with the config stored there. Throws ConfigError when it does not fit the student: another
// model kind or number of classes / vocabulary, and for the token loss another width or fewer
// tokens.
std::shared_ptr<train::Distillation> make_distillation(const RunConfig& config,
                                                       const train::ModelSpec& student);

// "12.3 M", "4.56 G": a number with an SI prefix.
std::string si(double value);

}  // namespace winnow::launch
