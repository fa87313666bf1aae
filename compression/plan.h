// Plan: for one step, per layer, the layer gate and the token reductions to run there. Built by
// a Planner (the static [compress]/[gate] schedule, or a co-scheduler); the model executes it and
// never decides.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "compression/layer_gate.h"
#include "compression/method.h"

namespace winnow::compression {

class TokenSaliencyTable;

// Where in a block a reduction acts.
enum class Site {
  kPreBlock,       // before the block (random, norm, uniform criteria; prune, pool, mask)
  kPostAttention,  // after the attention residual, before the MLP (ToMe, EViT: needs attention)
  kAroundBlock,    // route: the block runs on the kept tokens, the rest skip it (random-LTD, MoD)
};
std::string site_name(Site site);

// One reduction at one layer: criterion ∘ strategy at a site, and how many tokens remain.
struct PlannedReduction {
  std::string stage;                     // the configured stage it comes from (logs, metrics)
  std::shared_ptr<const Method> method;  // criterion ∘ strategy
  Site site = Site::kPreBlock;
  double keep = 1.0;  // fraction of the reducible tokens entering the site that it keeps
  // Exact counts instead of a fraction (planners that count tokens; -1 = unused): reducible
  // tokens kept, or tokens removed (ToMe's r).
  int64_t keep_count = -1;
  int64_t remove_count = -1;

  // Reducible tokens this reduction keeps of `reducible` (>= 1 when reducible >= 1).
  int64_t keep_of(int64_t reducible) const;
  // Whether it leaves every token in place (so executing it is skipped).
  bool is_identity(int64_t reducible) const { return keep_of(reducible) >= reducible; }
};

struct LayerPlan {
  LayerGate gate;
  std::vector<PlannedReduction> reductions;  // in execution order: pre, post-attention, around
  // Tables that take this block's per-token Taylor saliency from the step's backward (training
  // only); the block reports its input and output to each (TokenSaliencyTable::observe).
  std::vector<std::shared_ptr<TokenSaliencyTable>> saliency;
};

struct Plan {
  int64_t step = 0;
  bool training = true;
  std::vector<LayerPlan> layers;  // [depth]
  // Collect token-evolution statistics during this forward (and backward, for Taylor saliency).
  bool statistics = false;

  // True when no layer is gated and no reduction acts: the model runs dense.
  bool dense() const;
  // One line per layer that does anything, e.g. "3: skip; 4: similarity+merge keep 0.9".
  std::string describe() const;
};

}  // namespace winnow::compression
