// The static planner: configured stages and gates, step by step.
#include "compression/planner.h"

#include <algorithm>
#include <cctype>
#include <sstream>

namespace winnow::compression {

namespace {

// Stage names become parameter-name segments and INI sections: letters, digits and '_'.
bool valid_stage_name(const std::string& name) {
  if (name.empty()) return false;
  for (char ch : name)
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '_') return false;
  return true;
}

// A saliency stage's (or a saliency-supervised router's) table keys resolved against the model:
// auto is the token id for text models (a vocabulary) and the position otherwise; the table has a
// slot per key.
ReductionConfig with_saliency_table_size(ReductionConfig reduction, const ModelShape& model,
                                         const std::string& prefix) {
  const bool router_table = reduction.criterion == "router" && reduction.router_saliency_loss > 0;
  if (reduction.criterion != "saliency" && !router_table) return reduction;
  if (reduction.saliency_key == "auto")
    reduction.saliency_key = model.vocab > 0 ? "token" : "position";
  if (reduction.saliency_key == "token") {
    TORCH_CHECK(model.vocab > 0, prefix,
                ".saliency_key: token ids need a text model with a vocabulary; use position");
    reduction.saliency_keys = model.vocab;
  } else {
    TORCH_CHECK(model.tokens > 0, prefix,
                ".saliency_key: position keys need the model's token count");
    reduction.saliency_keys = model.tokens;
  }
  return reduction;
}

}  // namespace

std::shared_ptr<Planner> Planner::without_layers(const std::vector<int64_t>& /*kept*/) const {
  TORCH_CHECK(false, "the ", name(), " planner does not remove layers while training");
}

StaticPlanner::StaticPlanner(const StaticPlannerConfig& config, const ModelShape& model)
    : gates_(config.gate, model.depth), depth_(model.depth), statistics_(config.statistics) {
  const int64_t depth = model.depth;
  for (const auto& stage : config.stages) {
    TORCH_CHECK(valid_stage_name(stage.name), "compress.stages: expected stage names of letters, ",
                "digits and '_', got '", stage.name, "'");
    const std::string prefix = stage.name == "compress" ? "compress" : "stage." + stage.name;
    TORCH_CHECK(stage.reduction.criterion != "none", prefix,
                ".criterion: a stage needs a criterion (none is the dense model)");
    for (const auto& [other, unused] : stages_)
      TORCH_CHECK(other != stage.name, "compress.stages: stage '", stage.name, "' given twice");
    stages_.emplace_back(stage.name,
                         ReductionSchedule(with_saliency_table_size(stage.reduction, model, prefix),
                                           depth, model.grid_height, model.grid_width, prefix));
    auto module = std::make_shared<torch::nn::Module>();
    if (stages_.back().second.create_parameters(*module, model.width)) {
      if (!parameters_) parameters_ = std::make_shared<torch::nn::Module>();
      parameters_->register_module(stage.name, module);
    }
  }
  // A routed layer runs its block on a subset and scatters it back: nothing else may change
  // that layer's tokens inside the block, and one route per layer.
  for (int64_t layer = 0; layer < depth; ++layer) {
    std::vector<std::string> routes, inside;
    for (const auto& [name, schedule] : stages_) {
      if (schedule.target_keep(layer) >= 1.0) continue;
      if (schedule.site() == Site::kAroundBlock) routes.push_back(name);
      if (schedule.site() == Site::kPostAttention) inside.push_back(name);
    }
    TORCH_CHECK(routes.size() <= 1, "compress.stages: stages '", routes[0], "' and '",
                routes.size() > 1 ? routes[1] : "", "' both route layer ", layer,
                "; a layer takes at most one route");
    TORCH_CHECK(routes.empty() || inside.empty(), "compress.stages: stage '",
                routes.empty() ? "" : routes[0], "' routes layer ", layer, " and stage '",
                inside.empty() ? "" : inside[0],
                "' reduces inside the same block (post_attention); a routed block must give "
                "back the tokens it took");
  }
}

bool StaticPlanner::active() const {
  if (gates_.enabled()) return true;
  return std::any_of(stages_.begin(), stages_.end(),
                     [](const auto& stage) { return stage.second.enabled(); });
}

Plan StaticPlanner::plan(int64_t step, bool training) const {
  Plan plan;
  plan.step = step;
  plan.training = training;
  plan.statistics = training && statistics_;
  plan.layers.resize(static_cast<size_t>(depth_));
  for (int64_t layer = 0; layer < depth_; ++layer) {
    auto& layer_plan = plan.layers[static_cast<size_t>(layer)];
    layer_plan.gate = gates_.at(layer, step, training);
    // Sites in execution order, stages in configured order within a site.
    for (Site site : {Site::kPreBlock, Site::kPostAttention, Site::kAroundBlock}) {
      for (const auto& [name, schedule] : stages_) {
        if (schedule.site() != site) continue;
        if (!training && !schedule.reduce_in_eval()) continue;
        const double keep = training ? schedule.keep_at(layer, step) : schedule.target_keep(layer);
        if (keep >= 1.0) continue;
        PlannedReduction reduction;
        reduction.stage = name;
        reduction.method = schedule.shared_method();
        reduction.site = site;
        reduction.keep = keep;
        // Learned thresholds: the scores decide the count (strategies policy, threshold_prune).
        if (schedule.decides_count()) reduction.keep_count = 0;
        layer_plan.reductions.push_back(std::move(reduction));
      }
    }
  }
  // Saliency tables observe their source blocks at every training step, warmup included, so that
  // the table is filled before the first reduction reads it.
  if (training)
    for (const auto& table : saliency_tables())
      for (const int64_t layer : table->layers())
        plan.layers[static_cast<size_t>(layer)].saliency.push_back(table);
  return plan;
}

std::vector<std::shared_ptr<TokenSaliencyTable>> StaticPlanner::saliency_tables() const {
  std::vector<std::shared_ptr<TokenSaliencyTable>> tables;
  for (const auto& [name, schedule] : stages_)
    if (schedule.enabled())
      if (auto table = schedule.method().criterion().saliency_table()) tables.push_back(table);
  return tables;
}

std::map<std::string, torch::Tensor> StaticPlanner::state() const {
  std::map<std::string, torch::Tensor> state;
  for (const auto& [name, schedule] : stages_) {
    if (!schedule.enabled()) continue;
    const auto table = schedule.method().criterion().saliency_table();
    if (!table) continue;
    for (const auto& [entry, tensor] : table->state())
      state["saliency." + name + "." + entry] = tensor;
  }
  return state;
}

void StaticPlanner::load_state(const std::map<std::string, torch::Tensor>& state) {
  std::map<std::string, std::map<std::string, torch::Tensor>> by_stage;
  for (const auto& [key, tensor] : state) {
    const std::string prefix = "saliency.";
    const auto dot = key.find('.', prefix.size());
    TORCH_CHECK(key.rfind(prefix, 0) == 0 && dot != std::string::npos,
                "static planner: unknown state entry '", key,
                "' (expected saliency.<stage>.<entry>)");
    by_stage[key.substr(prefix.size(), dot - prefix.size())][key.substr(dot + 1)] = tensor;
  }
  for (const auto& [name, schedule] : stages_) {
    const auto table = schedule.enabled() ? schedule.method().criterion().saliency_table()
                                          : std::shared_ptr<TokenSaliencyTable>();
    const auto found = by_stage.find(name);
    // A checkpoint of a run without this stage's table leaves the table fresh.
    if (!table || found == by_stage.end()) continue;
    table->load_state(found->second);
    by_stage.erase(found);
  }
  TORCH_CHECK(by_stage.empty(), "static planner: the checkpoint has the saliency table of stage '",
              by_stage.empty() ? "" : by_stage.begin()->first,
              "', which this run does not have (or not with criterion saliency)");
}

std::string StaticPlanner::describe() const {
  std::ostringstream out;
  if (stages_.empty()) out << "dense (no token reduction)";
  for (size_t i = 0; i < stages_.size(); ++i) {
    if (i > 0) out << "; ";
    if (stages_.size() > 1 || stages_[i].first != "compress")
      out << "stage " << stages_[i].first << ": ";
    out << stages_[i].second.describe();
  }
  if (gates_.enabled()) out << "; gates: " << gates_.describe();
  if (statistics_) out << "; token-evolution statistics";
  return out.str();
}

}  // namespace winnow::compression
