// The registry of token criteria: an explicit list, one line per criterion.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "compression/criterion.h"
#include "data/registry.h"

namespace winnow::compression {

// Options of every criterion; each reads only its own.
struct CriterionOptions {
  // uniform: the original patch grid (rows × columns) of the reducible tokens.
  TORCH_ARG(int64_t, grid_height) = 0;
  TORCH_ARG(int64_t, grid_width) = 0;
  // linear: weight of the z-loss Σ s² on its scores (keeps router logits small; ST-MoE).
  TORCH_ARG(double, z_loss) = 1e-3;
  // predictor: weight of the keep-ratio loss Σ_s (ρ_s − mean keep_s)² (DynamicViT's 2).
  TORCH_ARG(double, ratio_loss) = 2.0;
};

using CriterionRegistry = data::Registry<std::unique_ptr<Criterion>, const CriterionOptions&>;

// Every criterion, in the order --help and the conformance suite list them.
const CriterionRegistry& criterion_registry();

// Shorthands for criterion_registry().create(...) and .names(): an unknown name throws, listing
// the known ones.
std::unique_ptr<Criterion> make_criterion(const std::string& name,
                                          const CriterionOptions& options = {});
std::vector<std::string> known_criteria();

}  // namespace winnow::compression
