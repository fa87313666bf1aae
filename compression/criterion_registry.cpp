// Criterion registry: one line per entry, no static self-registration.
#include "compression/criterion_registry.h"

#include "compression/attention_criteria.h"
#include "compression/linear_criterion.h"
#include "compression/norm_criteria.h"
#include "compression/predictor_criterion.h"
#include "compression/random_criterion.h"
#include "compression/router_criterion.h"
#include "compression/saliency_criterion.h"
#include "compression/similarity_criterion.h"
#include "compression/threshold_criterion.h"
#include "compression/uniform_criterion.h"

namespace winnow::compression {

namespace {

// The saliency table the options describe (keys "auto" = position until the planner resolves it).
SaliencyTableOptions saliency_table_options(const CriterionOptions& o) {
  SaliencyTableOptions table;
  table.key = saliency_key_from_name(o.saliency_key() == "auto" ? "position" : o.saliency_key(),
                                     "saliency_key");
  table.keys = o.saliency_keys();
  table.decay = o.saliency_decay();
  table.init = o.saliency_init();
  return table;
}

}  // namespace

const CriterionRegistry& criterion_registry() {
  using Options = CriterionOptions;
  static const CriterionRegistry registry(
      "unknown token criterion '{name}'; known criteria: {names}",
      {
          {"random", "keyed uniform random scores",
           [](const Options&) { return std::make_unique<RandomCriterion>(); }},
          {"norm", "L2 norm of each token's features",
           [](const Options&) { return std::make_unique<NormCriterion>(); }},
          {"key_norm", "L2 norm of each token's attention keys",
           [](const Options&) { return std::make_unique<KeyNormCriterion>(); }},
          {"cls_attention", "attention the CLS token pays to each token (EViT)",
           [](const Options&) { return std::make_unique<ClsAttentionCriterion>(); }},
          {"attention_received", "attention each token receives from all queries",
           [](const Options&) { return std::make_unique<AttentionReceivedCriterion>(); }},
          {"uniform", "a spatially uniform subset of the patch grid",
           [](const Options& o) {
             return std::make_unique<UniformCriterion>(o.grid_height(), o.grid_width());
           }},
          {"similarity", "ToMe's key similarity (redundant tokens score low)",
           [](const Options&) { return std::make_unique<SimilarityCriterion>(); }},
          {"linear", "a learned linear scorer per layer (Mixture-of-Depths router)",
           [](const Options& o) { return std::make_unique<LinearCriterion>(o.z_loss()); }},
          {"predictor", "DynamicViT's learned keep/drop prediction module",
           [](const Options& o) { return std::make_unique<PredictorCriterion>(o.ratio_loss()); }},
          {"saliency", "EMA of the Taylor skip saliency from backward, by position or token id",
           [](const Options& o) {
             return std::make_unique<SaliencyCriterion>(saliency_table_options(o),
                                                        o.saliency_layer());
           }},
          {"router", "Mixture-of-Depths' router wᵀx with its causal routing predictor",
           [](const Options& o) {
             RouterLosses losses;
             losses.predictor = o.predictor_loss();
             losses.topk = o.router_topk_loss();
             losses.saliency = {o.router_saliency_loss(), saliency_table_options(o),
                                o.saliency_layer()};
             return std::make_unique<RouterCriterion>(losses);
           }},
          {"threshold", "LTMP's learned per-layer threshold on a base criterion's scores",
           [](const Options& o) -> std::unique_ptr<Criterion> {
             TORCH_CHECK(o.threshold_base() != "threshold",
                         "threshold_base: expected a parameter-free criterion, got 'threshold'");
             return std::make_unique<ThresholdCriterion>(make_criterion(o.threshold_base(), o),
                                                         o.threshold_init());
           }},
      });
  return registry;
}

std::unique_ptr<Criterion> make_criterion(const std::string& name,
                                          const CriterionOptions& options) {
  return criterion_registry().create(name, options);
}

std::vector<std::string> known_criteria() {
  return criterion_registry().names();
}

}  // namespace winnow::compression
