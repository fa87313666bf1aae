// The registry of token strategies: an explicit list, one line per strategy.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "compression/strategy.h"
#include "data/registry.h"

namespace winnow::compression {

using StrategyRegistry = data::Registry<std::unique_ptr<Strategy>, const StrategyOptions&>;

// Every strategy, in the order --help and the conformance suite list them.
const StrategyRegistry& strategy_registry();

// Shorthands for strategy_registry().create(...) and .names(): an unknown name throws, listing
// the known ones.
std::unique_ptr<Strategy> make_strategy(const std::string& name,
                                        const StrategyOptions& options = {});
std::vector<std::string> known_strategies();

}  // namespace winnow::compression
