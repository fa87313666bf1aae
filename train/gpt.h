// GPT decoder: token + position embeddings, causal pre-LN blocks, output head tied to the
// token embedding.
#pragma once

#include <torch/torch.h>

#include "train/model.h"

namespace winnow::train {

struct GptOptions {
  int64_t vocab_size = 256;
  int64_t context = 128;
  int64_t dim = 192;
  int64_t depth = 6;
  int64_t heads = 3;
  double mlp_ratio = 4.0;
  double norm_eps = 1e-5;  // LayerNorm epsilon everywhere (nanoGPT: 1e-5)

  void validate() const;
};

// Parameter names: tok_embed.weight [V, C] (also the output head, tied), pos_embed [1, T, C],
// blocks.<i>.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}.*, norm.*.
class GptImpl : public TransformerModel {
 public:
  explicit GptImpl(const GptOptions& options);

  // tokens: int64 [B, T] with T <= context. Logits [B, T, V].
  ModelOutput forward(const torch::Tensor& tokens, const ForwardContext& context) override;
  std::string kind() const override { return "gpt"; }
  // Tokens per second (every position of a window is a prediction); next-token accuracy and
  // perplexity.
  TaskUnits task_units() const override {
    return {"tok/s", dense_tokens(), "sequences", "next_token_accuracy", true};
  }
  int64_t depth() const override { return options.depth; }
  int64_t dense_tokens() const override { return options.context; }
  double dense_forward_flops_per_sample() const override;
  double dense_block_flops_per_sample() const override;

  GptOptions options;
  torch::nn::Embedding tok_embed{nullptr};
  torch::Tensor pos_embed;  // [1, T, C]
  torch::nn::ModuleList blocks{nullptr};
  torch::nn::LayerNorm norm{nullptr};

 private:
  BlockOptions block_options() const;
};

}  // namespace winnow::train
