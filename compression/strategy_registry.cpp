// Strategy registry: one line per entry, no static self-registration.
#include "compression/strategy_registry.h"

#include <functional>
#include <utility>

#include "compression/mask.h"
#include "compression/merge.h"
#include "compression/policy.h"
#include "compression/pool.h"
#include "compression/prune.h"
#include "compression/route.h"

namespace winnow::compression {
namespace {

using Factory = std::function<std::unique_ptr<Strategy>(const StrategyOptions&)>;
using Options = StrategyOptions;

const std::vector<std::pair<std::string, Factory>>& registry() {
  static const std::vector<std::pair<std::string, Factory>> entries = {
      {"prune", [](const Options& o) { return std::make_unique<PruneStrategy>(o); }},
      {"merge", [](const Options& o) { return std::make_unique<MergeStrategy>(o); }},
      {"pool", [](const Options& o) { return std::make_unique<PoolStrategy>(o); }},
      {"route", [](const Options&) { return std::make_unique<RouteStrategy>(); }},
      {"mask", [](const Options& o) { return std::make_unique<MaskStrategy>(o); }},
      {"policy", [](const Options& o) { return std::make_unique<PolicyStrategy>(o); }},
  };
  return entries;
}

}  // namespace

std::unique_ptr<Strategy> make_strategy(const std::string& name, const StrategyOptions& options) {
  for (const auto& [entry, factory] : registry()) {
    if (entry == name) return factory(options);
  }
  std::string known;
  for (const auto& known_name : known_strategies()) {
    known += (known.empty() ? "" : ", ") + known_name;
  }
  TORCH_CHECK(false, "unknown token strategy '", name, "'; known strategies: ", known);
  return nullptr;
}

std::vector<std::string> known_strategies() {
  std::vector<std::string> names;
  for (const auto& entry : registry()) names.push_back(entry.first);
  return names;
}

}  // namespace winnow::compression
