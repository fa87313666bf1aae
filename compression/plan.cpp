// Plans: per-layer gates and reductions of one step.
#include "compression/plan.h"

#include <torch/torch.h>

#include <cmath>
#include <sstream>

namespace winnow::compression {

std::string site_name(Site site) {
  switch (site) {
    case Site::kPreBlock:
      return "pre_block";
    case Site::kPostAttention:
      return "post_attention";
    case Site::kAroundBlock:
      return "around_block";
  }
  return "?";
}

int64_t PlannedReduction::keep_of(int64_t reducible) const {
  if (keep_count >= 0) return std::min(keep_count, reducible);
  if (remove_count >= 0) return std::max<int64_t>(reducible - remove_count, reducible > 0 ? 1 : 0);
  if (keep >= 1.0) return reducible;
  return keep_count_for_rate(keep, reducible);
}

bool Plan::dense() const {
  for (const auto& layer : layers)
    if (layer.gate.mode != LayerGate::Mode::kRun || !layer.reductions.empty()) return false;
  return true;
}

std::string Plan::describe() const {
  std::ostringstream out;
  for (size_t l = 0; l < layers.size(); ++l) {
    const auto& layer = layers[l];
    if (layer.gate.mode == LayerGate::Mode::kRun && layer.reductions.empty()) continue;
    if (out.tellp() > 0) out << "; ";
    out << l << ":";
    if (layer.gate.mode != LayerGate::Mode::kRun) out << " gate " << layer.gate.describe();
    for (const auto& r : layer.reductions) {
      // An evaluation plan runs the method's evaluation strategy (e.g. policy → prune).
      const auto& strategy = training ? r.method->strategy() : r.method->eval_strategy();
      out << " " << r.method->criterion().name() << "+" << strategy.name() << "@"
          << site_name(r.site);
      if (r.method->criterion().decides_count())
        out << " by threshold";
      else if (r.keep_count >= 0)
        out << " keep " << r.keep_count;
      else if (r.remove_count >= 0)
        out << " remove " << r.remove_count;
      else
        out << " keep " << r.keep;
    }
  }
  return out.tellp() > 0 ? out.str() : "dense";
}

}  // namespace winnow::compression
