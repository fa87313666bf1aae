// Post-hooks on gradient accumulators, and reachability of parameters in an autograd graph.
#include "dist/gradient_ready_hooks.h"

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/utils/lambda_post_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <unordered_set>

namespace winnow::dist {

using torch::autograd::Node;
using torch::autograd::variable_list;

GradientReadyHooks::GradientReadyHooks(const std::vector<torch::Tensor>& parameters,
                                       std::function<void(int64_t index)> on_ready) {
  TORCH_CHECK(on_ready, "GradientReadyHooks: expected a callback, got an empty function");
  for (size_t i = 0; i < parameters.size(); ++i) {
    const torch::Tensor& parameter = parameters[i];
    TORCH_CHECK(parameter.defined() && parameter.requires_grad() && parameter.is_leaf(),
                "GradientReadyHooks: expected leaf tensors that require grad, got one at index ", i,
                " that is ", !parameter.defined() ? "undefined" : "not a leaf requiring grad");
    std::shared_ptr<Node> accumulator = torch::autograd::impl::grad_accumulator(parameter);
    TORCH_INTERNAL_ASSERT(accumulator != nullptr, "no gradient accumulator for parameter ", i);
    const auto index = static_cast<int64_t>(i);
    hook_keys_.push_back(
        accumulator->add_post_hook(std::make_unique<torch::autograd::utils::LambdaPostHook>(
            [on_ready, index](const variable_list& outputs, const variable_list& /*inputs*/) {
              on_ready(index);
              return outputs;
            })));
    index_of_.emplace(accumulator.get(), index);
    accumulators_.push_back(std::move(accumulator));
  }
}

GradientReadyHooks::~GradientReadyHooks() {
  for (size_t i = 0; i < accumulators_.size(); ++i) accumulators_[i]->del_post_hook(hook_keys_[i]);
}

std::vector<bool> GradientReadyHooks::reachable_from(const torch::Tensor& root) const {
  std::vector<bool> reachable(accumulators_.size(), false);
  if (!root.defined() || !root.requires_grad()) return reachable;
  std::vector<Node*> pending;
  std::unordered_set<Node*> seen;
  const auto visit = [&](const std::shared_ptr<Node>& node) {
    if (node && seen.insert(node.get()).second) pending.push_back(node.get());
  };
  visit(torch::autograd::impl::gradient_edge(root).function);
  while (!pending.empty()) {
    Node* node = pending.back();
    pending.pop_back();
    const auto found = index_of_.find(node);
    if (found != index_of_.end()) reachable[static_cast<size_t>(found->second)] = true;
    for (const auto& edge : node->next_edges()) visit(edge.function);
  }
  return reachable;
}

}  // namespace winnow::dist
