// TransformerModel: what the trainer needs from a model (ViT, GPT), independent of its kind.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "compression/criterion.h"
#include "train/block.h"

namespace winnow::train {

// Per-step context a forward pass may need. Model code never decides token reduction: the
// hook for each layer (if any) comes from the plan built outside the model.
struct ForwardContext {
  int64_t step = 0;
  uint64_t seed = 0;
  torch::Tensor sample_ids;  // [B] int64, global dataset indices (keyed randomness)
  // hook_for(layer) -> hook or nullptr. Empty function = dense. Built from the step's Plan
  // (train/plan_hooks.h).
  std::function<BlockHook*(int64_t layer)> hook_for;
  // Where the hooks' components put auxiliary losses during this forward (null = none); the
  // model returns them in ModelOutput::aux_losses.
  compression::AuxLosses* aux_losses = nullptr;
  // Also return the final, normalised token features (ModelOutput::final_state; distillation).
  bool final_tokens = false;
  // Per layer, what each block measures (attention times, attended positions); null = nothing
  // measured, the ordinary case. Sized to the model's depth by the caller.
  std::vector<BlockMeasurement>* block_measurements = nullptr;

  BlockMeasurement* measurement(int64_t layer) const {
    if (block_measurements == nullptr) return nullptr;
    TORCH_CHECK(layer < static_cast<int64_t>(block_measurements->size()),
                "forward: block_measurements has ", block_measurements->size(),
                " entries, expected one per layer (layer ", layer, ")");
    return &(*block_measurements)[static_cast<size_t>(layer)];
  }
};

struct ModelOutput {
  torch::Tensor logits;  // ViT: [B, classes]; GPT: [B, T, vocab]
  // Tokens entering each block, summed over the batch (for FLOPs and metrics).
  std::vector<int64_t> tokens_per_layer;
  // Analytic forward FLOPs of this batch from the actual token counts.
  double forward_flops = 0.0;
  // The part of them in each block's attention (qkv, scores, weighted sum, proj), and in its core
  // (scores and weighted sum, compression::attention_core_forward_flops), this batch.
  std::vector<double> attention_flops_per_layer;
  std::vector<double> attention_core_flops_per_layer;
  // Analytic forward FLOPs of the blocks for each sample counting only its live tokens (keep > 0;
  // masked and padding slots are free), i.e. what the sample costs with its dropped tokens
  // removed: [B] float64, differentiable through straight-through keep masks. Embedding, head
  // and learned scorers are not included (compare with dense_block_flops_per_sample()).
  torch::Tensor live_block_flops;
  // Auxiliary losses of learned components (sums over this batch's samples; the trainer divides
  // by the global sample count and adds them with their weights).
  compression::AuxLosses aux_losses;
  // With ForwardContext::final_tokens: the state after the last block with x replaced by the
  // final LayerNorm of every token [B, N, C] (keep, pos and protected_count as the blocks left
  // them); undefined x otherwise.
  compression::TokenState final_state;
};

// How a model's task is counted and scored in progress lines, metrics and summaries, so the
// trainer and the CLI never ask which kind of model they hold.
struct TaskUnits {
  // Progress lines: throughput in these items per second, counting this many per sample.
  const char* throughput_unit = "img/s";
  int64_t throughput_items_per_sample = 1;
  // Run summaries: samples per second as "<sample_name>/s".
  const char* sample_name = "images";
  // metrics.jsonl key of the evaluation accuracy.
  const char* accuracy_metric = "accuracy";
  // Language models also report perplexity (and not the accuracy in human-readable lines).
  bool perplexity = false;
};

class TransformerModel : public torch::nn::Module {
 public:
  // inputs: images float [B, C, H, W] or tokens int64 [B, T].
  virtual ModelOutput forward(const torch::Tensor& inputs, const ForwardContext& context) = 0;
  // Summed cross-entropy of the batch (the trainer divides by the *global* count).
  // targets: int64 [B] (classes) or [B, T] (next tokens).
  virtual torch::Tensor loss_sum(const ModelOutput& output, const torch::Tensor& targets) const;
  // Items the loss is a sum over for this batch: samples (ViT) or target tokens (GPT).
  virtual int64_t loss_count(const torch::Tensor& targets) const { return targets.numel(); }
  virtual std::string kind() const = 0;
  virtual TaskUnits task_units() const = 0;
  virtual int64_t depth() const = 0;
  // Tokens each block sees when nothing is reduced.
  virtual int64_t dense_tokens() const = 0;
  // Analytic forward FLOPs of one sample with no token reduction.
  virtual double dense_forward_flops_per_sample() const = 0;
  // The patch grid (rows, columns) of an image model's tokens after the protected CLS token, at
  // original positions 1..rows·columns; {0, 0} for sequences.
  virtual std::pair<int64_t, int64_t> patch_grid() const { return {0, 0}; }
  // The blocks' share of it (no embedding, no head): the reference of live_block_flops.
  virtual double dense_block_flops_per_sample() const = 0;
  // Parameters that get no weight decay: norms, biases, embeddings (and CLS / position tokens).
  virtual bool exempt_from_weight_decay(const std::string& name, const torch::Tensor& p) const;
  // Registers the parameters of learned compression components (a Planner's parameters()) as
  // the submodule `compress`, before the optimizer and gradient sync are built. Null: none.
  void attach_compression(const std::shared_ptr<torch::nn::Module>& components);
  // Whether a parameter name belongs to a compression component (compress.*), not the backbone.
  static bool is_compression_parameter(const std::string& name);
};

// Builds the ModelOutput token/FLOP bookkeeping shared by both model kinds.
class LayerAccounting {
 public:
  LayerAccounting(const BlockOptions& block, int64_t depth);
  // After a block ran on a batch of `batch` samples.
  void record(const BlockTokens& tokens, int64_t batch);
  void add_flops(double flops) { extra_flops_ += flops; }
  void finish(ModelOutput& output) const;

 private:
  int64_t width_, mlp_hidden_;
  std::vector<int64_t> tokens_;
  std::vector<double> attention_flops_, attention_core_flops_;
  double block_flops_ = 0.0, extra_flops_ = 0.0;
  int64_t batch_ = 0;
  // Live FLOPs per sample: the same for every sample from blocks without keep, [B] from the others.
  double uniform_live_flops_ = 0.0;
  torch::Tensor live_flops_;  // [B] float64, undefined until a block had keep
};

}  // namespace winnow::train
