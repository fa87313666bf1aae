// The configuration of a model without some of its blocks: what `winnow prune` and a
// co-scheduled run whose heal phase removed blocks store with the smaller model's weights, so
// that `winnow eval` and `train --init-from` rebuild it.
#pragma once

#include <cstdint>
#include <vector>

#include "launch/config.h"

namespace winnow::launch {

// `config` (which builds a model of `depth` blocks) for the model that keeps only the blocks
// `kept` (ascending): model.depth = kept.size(). A co-scheduled structure — `kept_capacities`,
// one per kept block (empty: not co-scheduled) — keeps those capacities and its protected
// layers that remain, renumbered; when every kept block runs at full capacity, what is left is a
// dense model and [coschedule] is reset.
RunConfig config_without_layers(const RunConfig& config, int64_t depth,
                                const std::vector<int64_t>& kept,
                                const std::vector<double>& kept_capacities);

}  // namespace winnow::launch
