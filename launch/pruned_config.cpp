// The configuration of a model without some of its blocks.
#include "launch/pruned_config.h"

#include <algorithm>
#include <sstream>

namespace winnow::launch {

RunConfig config_without_layers(const RunConfig& config, int64_t depth,
                                const std::vector<int64_t>& kept,
                                const std::vector<double>& kept_capacities) {
  TORCH_CHECK(kept_capacities.empty() || kept_capacities.size() == kept.size(),
              "config_without_layers: expected one capacity per kept block (", kept.size(),
              "), got ", kept_capacities.size());
  RunConfig smaller = config;
  smaller.model.depth = static_cast<int64_t>(kept.size());
  if (kept_capacities.empty()) return smaller;
  auto& cs = smaller.coschedule;
  if (std::all_of(kept_capacities.begin(), kept_capacities.end(),
                  [](double k) { return k == 1.0; })) {
    cs = CoScheduleConfig{};  // what is left is a dense model
    return smaller;
  }
  std::ostringstream capacities, renumbered;
  for (size_t j = 0; j < kept_capacities.size(); ++j)
    capacities << (j ? "," : "") << kept_capacities[j];
  cs.capacities = capacities.str();
  const auto resolved = coscheduler_config(config, depth).allocator.protected_layers;
  bool any = false;
  for (size_t j = 0; j < kept.size(); ++j)
    if (std::find(resolved.begin(), resolved.end(), kept[j]) != resolved.end()) {
      renumbered << (any ? "," : "") << j;
      any = true;
    }
  cs.protected_layers = any ? renumbered.str() : "none";
  return smaller;
}

}  // namespace winnow::launch
