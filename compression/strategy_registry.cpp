// Strategy registry: one line per entry, no static self-registration.
#include "compression/strategy_registry.h"

#include "compression/mask.h"
#include "compression/merge.h"
#include "compression/policy.h"
#include "compression/pool.h"
#include "compression/prune.h"
#include "compression/route.h"
#include "compression/threshold_prune.h"
#include "compression/weighted_route.h"

namespace winnow::compression {

const StrategyRegistry& strategy_registry() {
  using Options = StrategyOptions;
  static const StrategyRegistry registry(
      "unknown token strategy '{name}'; known strategies: {names}",
      {
          {"prune", "keep the top-k tokens, optionally fusing the rest into one (EViT)",
           [](const Options& o) { return std::make_unique<PruneStrategy>(o); }},
          {"merge", "ToMe's bipartite soft matching with size-weighted averages",
           [](const Options& o) { return std::make_unique<MergeStrategy>(o); }},
          {"pool", "size-weighted average pooling of the patch grid",
           [](const Options& o) { return std::make_unique<PoolStrategy>(o); }},
          {"route", "the block runs on k tokens, the rest skip it (random-LTD)",
           [](const Options&) { return std::make_unique<RouteStrategy>(); }},
          {"weighted_route",
           "route with the update scaled by the router weight (Mixture-of-Depths)",
           [](const Options& o) { return std::make_unique<WeightedRouteStrategy>(o); }},
          {"mask", "keep every token, mask the unselected ones out of attention",
           [](const Options& o) { return std::make_unique<MaskStrategy>(o); }},
          {"policy", "DynamicViT's training-mode keep/drop policy",
           [](const Options& o) { return std::make_unique<PolicyStrategy>(o); }},
          {"threshold_prune",
           "remove the tokens scoring below 0 (a threshold's margin), per sample (LTMP inference)",
           [](const Options& o) { return std::make_unique<ThresholdPruneStrategy>(o); }},
      });
  return registry;
}

std::unique_ptr<Strategy> make_strategy(const std::string& name, const StrategyOptions& options) {
  return strategy_registry().create(name, options);
}

std::vector<std::string> known_strategies() {
  return strategy_registry().names();
}

}  // namespace winnow::compression
