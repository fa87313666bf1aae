// Layer removal: the physically smaller model without some blocks (the co-scheduler's pruned
// layers, or ShortGPT's one-shot choice), and the calibration statistic ShortGPT chooses by.
#pragma once

#include <cstdint>
#include <vector>

#include "data/dataset.h"
#include "train/model.h"

namespace winnow::train {

// Copies every parameter and buffer of `source` into `target`, a model of the same kind and shape
// except that it has only the blocks `kept` of `source` (ascending): target blocks.<j>.* come from
// source blocks.<kept[j]>.*, and per-layer compression parameters compress.<stage>.<j>.* from
// compress.<stage>.<kept[j]>.*; every other name maps to itself. Throws, listing them, when a
// target name has no source or a shape differs.
void copy_kept_blocks(const TransformerModel& source, TransformerModel& target,
                      const std::vector<int64_t>& kept);

// ShortGPT's Block Influence of every block, BI_l = 1 − mean over tokens of cos(x_l, y_l), on the
// first `samples` samples of `data` (dense forward passes of `batch` samples, no gradient):
// [depth].
std::vector<double> calibration_block_influence(TransformerModel& model, const data::Dataset& data,
                                                int64_t samples, int64_t batch, uint64_t seed);

// The `count` blocks of lowest influence (ShortGPT removes them), ascending by index.
std::vector<int64_t> lowest_influence_layers(const std::vector<double>& influence, int64_t count);

}  // namespace winnow::train
