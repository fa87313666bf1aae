// GradientReadyHooks: a callback from autograd each time a parameter's gradient has been
// accumulated.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <unordered_map>
#include <vector>

namespace torch::autograd {
struct Node;
}  // namespace torch::autograd

namespace winnow::dist {

// Registers a post-hook on each parameter's gradient accumulator (the AccumulateGrad node of a leaf
// tensor), the mechanism of PyTorch DDP's Reducer (torch/csrc/distributed/c10d/reducer.cpp). A
// post-hook runs after the node has added this backward pass's gradient into `.grad()`, so the
// callback sees the accumulated value; a tensor hook (Tensor::register_hook) would run before.
//
// The hooks hold the accumulators alive (a leaf keeps only a weak reference to its own), so later
// graphs reuse the hooked nodes. They fire in every backward pass that reaches a parameter, on the
// thread that runs that part of the graph: for CPU tensors LibTorch runs backward on the thread
// that called backward(); for CUDA tensors on the device's autograd thread.
//
// The API used (Node::add_post_hook returning a key, Node::del_post_hook, FunctionPostHook) is the
// same in LibTorch 1.13 and 2.x.
class GradientReadyHooks {
 public:
  // on_ready(i) is called after parameters[i]'s gradient was accumulated. Every parameter must be
  // a leaf that requires grad.
  GradientReadyHooks(const std::vector<torch::Tensor>& parameters,
                     std::function<void(int64_t index)> on_ready);
  // Removes the hooks (graphs still alive may hold the accumulators; they no longer call back).
  ~GradientReadyHooks();
  GradientReadyHooks(const GradientReadyHooks&) = delete;
  GradientReadyHooks& operator=(const GradientReadyHooks&) = delete;

  // reachable[i]: whether backward from `root` will reach parameters[i] (walks the autograd graph
  // behind `root`, as DDP does with find_unused_parameters). A parameter that is not reachable will
  // get no gradient from this backward pass, and its hook will not fire.
  std::vector<bool> reachable_from(const torch::Tensor& root) const;

 private:
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators_;
  std::vector<uintptr_t> hook_keys_;
  std::unordered_map<const torch::autograd::Node*, int64_t> index_of_;
};

}  // namespace winnow::dist
