// The planner registry: one line per planner.
#include "launch/planner_registry.h"

#include "compression/co_scheduler.h"

namespace winnow::launch {
namespace {

std::shared_ptr<compression::Planner> make_coscheduler(const RunConfig& config,
                                                       const compression::ModelShape& shape) {
  if (config.compress.reduction.criterion != "none" || !config.compress.stages.empty() ||
      config.gate.kind != "none")
    throw ConfigError(
        "coschedule.mode=" + config.coschedule.planner.mode +
        " plans token reduction and layer pruning itself; remove the [compress] method or "
        "stages and the [gate] kind (they would be two planners for one model)");
  return std::make_shared<compression::CoScheduler>(coscheduler_config(config, shape.depth), shape);
}

}  // namespace

const PlannerRegistry& planner_registry() {
  static const PlannerRegistry registry(
      "unknown planner '{name}'; known planners: {names}",
      {
          {"static", "fixed stages of token reduction and layer gates, by step",
           [](const RunConfig& config, const compression::ModelShape& shape) {
             return std::make_shared<compression::StaticPlanner>(planner_config(config), shape);
           }},
          {"coschedule", "closed-loop co-scheduler of token and layer capacity (coschedule.*)",
           make_coscheduler},
      });
  return registry;
}

}  // namespace winnow::launch
