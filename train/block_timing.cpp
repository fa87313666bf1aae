// Training-time measurement of a model's blocks for the co-scheduler's wall-clock cost model.
#include "train/block_timing.h"

#include <algorithm>
#include <chrono>

namespace winnow::train {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

// Marks the moments the block passes its post_attention site: in the forward, and in the
// backward when the gradient of the state there is complete (the MLP half's backward is done,
// the attention half's begins).
class HalfwayMark : public BlockHook {
 public:
  void post_attention(compression::TokenState& state, const AttentionOutput& /*attn*/) override {
    forward = Clock::now();
    state.x.register_hook([this](const torch::Tensor& /*grad*/) { backward = Clock::now(); });
  }
  Clock::time_point forward, backward;
};

std::vector<BlockImpl*> blocks_of(TransformerModel& model) {
  std::shared_ptr<torch::nn::ModuleListImpl> list;
  for (const auto& child : model.named_children())
    if (child.key() == "blocks")
      list = std::dynamic_pointer_cast<torch::nn::ModuleListImpl>(child.value());
  TORCH_CHECK(list != nullptr, "block timing: the ", model.kind(),
              " model has no module list 'blocks'");
  std::vector<BlockImpl*> blocks;
  for (size_t l = 0; l < list->size(); ++l) {
    auto* block = (*list)[l]->as<BlockImpl>();
    TORCH_CHECK(block != nullptr, "block timing: blocks.", l, " is not a transformer block");
    blocks.push_back(block);
  }
  TORCH_CHECK(static_cast<int64_t>(blocks.size()) == model.depth(), "block timing: ", blocks.size(),
              " blocks for a model of depth ", model.depth());
  return blocks;
}

}  // namespace

compression::LayerTimingTable measure_block_times(TransformerModel& model,
                                                  const BlockTimingOptions& options,
                                                  dist::Communicator& comm) {
  TORCH_CHECK(options.batch >= 1, "block timing: expected a batch >= 1, got ", options.batch);
  TORCH_CHECK(options.warmup >= 0 && options.repeats >= 1,
              "block timing: expected warmup >= 0 and repeats >= 1, got ", options.warmup, " and ",
              options.repeats);
  TORCH_CHECK(!options.token_counts.empty(), "block timing: no token counts to time");
  const auto blocks = blocks_of(model);
  const auto depth = static_cast<int64_t>(blocks.size());
  const auto points = static_cast<int64_t>(options.token_counts.size());
  const int64_t width = blocks.front()->options.dim();
  const auto dtype = model.parameters().front().options();
  const bool was_training = model.is_training();
  model.train();

  auto seconds = torch::zeros({2, depth, points}, torch::kFloat64);  // [attention | mlp, L, P]
  auto table = seconds.accessor<double, 3>();
  for (int64_t l = 0; l < depth; ++l) {
    BlockImpl& block = *blocks[static_cast<size_t>(l)];
    for (int64_t p = 0; p < points; ++p) {
      const int64_t tokens = options.token_counts[static_cast<size_t>(p)];
      // A fixed, bounded pattern: no draw from the global generator, which training may use.
      auto input = torch::sin(torch::arange(options.batch * tokens * width, dtype).mul(0.37))
                       .reshape({options.batch, tokens, width})
                       .set_requires_grad(true);  // [B, n, C]: earlier layers need its gradient
      std::vector<double> attention, mlp;
      for (int64_t call = 0; call < options.warmup + options.repeats; ++call) {
        HalfwayMark mark;
        compression::TokenState state;
        state.x = input;
        const auto start = Clock::now();
        block.forward(state, &mark);
        const auto forward_end = Clock::now();
        state.x.backward(torch::ones_like(state.x));
        const auto backward_end = Clock::now();
        if (call >= options.warmup) {
          attention.push_back(seconds_between(start, mark.forward) +
                              seconds_between(mark.backward, backward_end));
          mlp.push_back(seconds_between(mark.forward, forward_end) +
                        seconds_between(forward_end, mark.backward));
        }
        for (auto& parameter : block.parameters()) parameter.mutable_grad() = torch::Tensor();
        input.mutable_grad() = torch::Tensor();
      }
      // The fastest call: interference (another process, a descheduled OpenMP thread) only
      // ever adds time, and on a shared 2-core machine it hits most calls, so a median
      // measures the interference (docs/results.md, "Cost model").
      table[0][l][p] = *std::min_element(attention.begin(), attention.end());
      table[1][l][p] = *std::min_element(mlp.begin(), mlp.end());
    }
  }
  model.train(was_training);
  // The max is exact in any reduction order, so every rank holds the same bits.
  comm.all_reduce(seconds, dist::ReduceOp::kMax);
  return compression::LayerTimingTable(options.token_counts, seconds[0], seconds[1]);
}

}  // namespace winnow::train
