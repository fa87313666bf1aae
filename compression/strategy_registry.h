// The registry of token strategies: an explicit list, one line per strategy.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "compression/strategy.h"

namespace winnow::compression {

// The strategy registered as `name`; an unknown name throws, listing the known ones.
std::unique_ptr<Strategy> make_strategy(const std::string& name,
                                        const StrategyOptions& options = {});

// Registered names, in registry order.
std::vector<std::string> known_strategies();

}  // namespace winnow::compression
