// Interleaved step timing for the comparison benchmarks (bench-tokens, bench-plans): every
// variant trains one step per round, in an order rotated each round, so drift of a shared machine
// hits all variants alike; medians and ranges are taken over the timed rounds.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "data/loader.h"
#include "dist/communicator.h"
#include "launch/config.h"
#include "train/trainer.h"

namespace winnow::launch {

struct TimedVariant {
  std::string name;
  std::shared_ptr<train::TransformerModel> model;
  std::unique_ptr<train::Trainer> trainer;
  std::unique_ptr<data::Loader> loader;
  std::vector<double> seconds;  // per timed round
  double training_flops = 0.0;  // of the last timed step, global, analytic
};

// A loader over config's training data for this rank (the global batch of config.train).
std::unique_ptr<data::Loader> bench_loader(const RunConfig& config, const dist::Communicator& comm,
                                           const std::shared_ptr<data::Dataset>& train);

// `warmup` untimed then `timed` timed rounds; round r runs one training step of every variant at
// optimizer step `step + r` (choose `step` past any ramp), between barriers.
void time_interleaved(const std::vector<TimedVariant*>& variants, dist::Communicator& comm,
                      int64_t warmup, int64_t timed, int64_t step);

double median_of(std::vector<double> values);
double min_of(const std::vector<double>& values);
double max_of(const std::vector<double>& values);

}  // namespace winnow::launch
