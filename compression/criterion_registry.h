// The registry of token criteria: an explicit list, one line per criterion.
#pragma once

#include <limits>
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
  // saliency: what its table is keyed by (position | token; auto = position here, the planner
  // resolves auto from the model), the table size (0 until the planner knows the model), the EMA
  // decay, the score of keys never observed, and the block whose τ it reads (-1: each reducing
  // layer its own).
  TORCH_ARG(std::string, saliency_key) = "auto";
  TORCH_ARG(int64_t, saliency_keys) = 0;
  TORCH_ARG(double, saliency_decay) = 0.99;
  TORCH_ARG(double, saliency_init) = std::numeric_limits<double>::infinity();
  TORCH_ARG(int64_t, saliency_layer) = -1;
  // router: weight of its causal predictor's BCE against the top-k membership.
  TORCH_ARG(double, predictor_loss) = 1.0;
  // router: weight of MoD's BCE of σ(r) against its own top-k membership (0 = off).
  TORCH_ARG(double, router_topk_loss) = 0.0;
  // router: weight of the BCE between σ(r) and the top-k membership by the saliency table (the
  // saliency_* options describe the table); 0 = no table, no loss.
  TORCH_ARG(double, router_saliency_loss) = 0.0;
  // threshold: the parameter-free criterion whose scores the learned thresholds cut (LTMP:
  // attention received), and θ at creation (LTMP's pruning thresholds start at 0).
  TORCH_ARG(std::string, threshold_base) = "attention_received";
  TORCH_ARG(double, threshold_init) = 0.0;
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
