// Layer removal: the physically smaller model without some blocks (the co-scheduler's pruned
// layers, at its heal phase or by `winnow prune`, or ShortGPT's one-shot choice) with the
// optimizer state of what it keeps, and the calibration statistic ShortGPT chooses by.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "train/model.h"

namespace winnow::train {

// Builds a fresh model like the one being trained, with `depth` blocks (the smaller model of a
// removal; its weights are then copied by copy_kept_blocks).
using ModelFactory = std::function<std::shared_ptr<TransformerModel>(int64_t depth)>;

// Elements over the model's parameters (buffers excluded).
int64_t parameter_count(const TransformerModel& model);

// The blocks of a `depth`-block model that remain without `removed` (ascending). Throws when a
// removed block is outside 0..depth-1 or none would remain.
std::vector<int64_t> kept_layers(int64_t depth, const std::vector<int64_t>& removed);

// The name in the source model of tensor `name` of the model that keeps only the blocks `kept`
// of the source: blocks.<j>.* is blocks.<kept[j]>.*, compress.<stage>.<j>.* is
// compress.<stage>.<kept[j]>.*, every other name is itself. Throws when j is beyond kept.
std::string kept_block_source(const std::string& name, const std::vector<int64_t>& kept);

// Copies every parameter and buffer of `source` into `target`, a model of the same kind and shape
// except that it has only the blocks `kept` of `source` (ascending): target blocks.<j>.* come from
// source blocks.<kept[j]>.*, and per-layer compression parameters compress.<stage>.<j>.* from
// compress.<stage>.<kept[j]>.*; every other name maps to itself. Throws, listing them, when a
// target name has no source or a shape differs.
void copy_kept_blocks(const TransformerModel& source, TransformerModel& target,
                      const std::vector<int64_t>& kept);

// Gives `to`, an optimizer over `target` (the model that keeps the blocks `kept` of `source`),
// the AdamW state (moments, step count) that `from` holds for each parameter's source
// (kept_block_source); the state of removed blocks is dropped. The group settings are `to`'s.
void carry_optimizer_state(const TransformerModel& source, const torch::optim::AdamW& from,
                           const TransformerModel& target, torch::optim::AdamW& to,
                           const std::vector<int64_t>& kept);

// ShortGPT's Block Influence of every block, BI_l = 1 − mean over tokens of cos(x_l, y_l), on the
// first `samples` samples of `data` (dense forward passes of `batch` samples, no gradient):
// [depth].
std::vector<double> calibration_block_influence(TransformerModel& model, const data::Dataset& data,
                                                int64_t samples, int64_t batch, uint64_t seed);

// The `count` blocks of lowest influence (ShortGPT removes them), ascending by index.
std::vector<int64_t> lowest_influence_layers(const std::vector<double>& influence, int64_t count);

}  // namespace winnow::train
