// The planner registry: every planner a run can be given, built from the run's configuration.
#pragma once

#include <memory>

#include "compression/planner.h"
#include "data/registry.h"
#include "launch/config.h"

namespace winnow::launch {

// Planners by Planner::name(): "static" (the stages of compress.* / stage.*.* and the gates of
// gate.*) and "coschedule" (the closed-loop co-scheduler of coschedule.*). A factory validates
// its part of the configuration (c10::Error or ConfigError naming the option).
using PlannerRegistry = data::Registry<std::shared_ptr<compression::Planner>, const RunConfig&,
                                       const compression::ModelShape&>;
const PlannerRegistry& planner_registry();

}  // namespace winnow::launch
