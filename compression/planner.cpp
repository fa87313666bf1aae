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

}  // namespace

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
    stages_.emplace_back(stage.name, ReductionSchedule(stage.reduction, depth, model.grid_height,
                                                       model.grid_width, prefix));
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
        layer_plan.reductions.push_back(std::move(reduction));
      }
    }
  }
  return plan;
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
