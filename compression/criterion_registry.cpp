// Criterion registry: one line per entry, no static self-registration.
#include "compression/criterion_registry.h"

#include <functional>
#include <utility>

#include "compression/attention_criteria.h"
#include "compression/linear_criterion.h"
#include "compression/norm_criteria.h"
#include "compression/predictor_criterion.h"
#include "compression/random_criterion.h"
#include "compression/similarity_criterion.h"
#include "compression/uniform_criterion.h"

namespace winnow::compression {
namespace {

using Factory = std::function<std::unique_ptr<Criterion>(const CriterionOptions&)>;
using Options = CriterionOptions;

const std::vector<std::pair<std::string, Factory>>& registry() {
  static const std::vector<std::pair<std::string, Factory>> entries = {
      {"random", [](const Options&) { return std::make_unique<RandomCriterion>(); }},
      {"norm", [](const Options&) { return std::make_unique<NormCriterion>(); }},
      {"key_norm", [](const Options&) { return std::make_unique<KeyNormCriterion>(); }},
      {"cls_attention", [](const Options&) { return std::make_unique<ClsAttentionCriterion>(); }},
      {"attention_received",
       [](const Options&) { return std::make_unique<AttentionReceivedCriterion>(); }},
      {"uniform",
       [](const Options& o) {
         return std::make_unique<UniformCriterion>(o.grid_height(), o.grid_width());
       }},
      {"similarity", [](const Options&) { return std::make_unique<SimilarityCriterion>(); }},
      {"linear", [](const Options& o) { return std::make_unique<LinearCriterion>(o.z_loss()); }},
      {"predictor",
       [](const Options& o) { return std::make_unique<PredictorCriterion>(o.ratio_loss()); }},
  };
  return entries;
}

}  // namespace

std::unique_ptr<Criterion> make_criterion(const std::string& name,
                                          const CriterionOptions& options) {
  for (const auto& [entry, factory] : registry()) {
    if (entry == name) return factory(options);
  }
  std::string known;
  for (const auto& known_name : known_criteria()) known += (known.empty() ? "" : ", ") + known_name;
  TORCH_CHECK(false, "unknown token criterion '", name, "'; known criteria: ", known);
  return nullptr;
}

std::vector<std::string> known_criteria() {
  std::vector<std::string> names;
  for (const auto& entry : registry()) names.push_back(entry.first);
  return names;
}

}  // namespace winnow::compression
