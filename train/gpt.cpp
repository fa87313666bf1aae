// GPT decoder with a tied output head.
#include "train/gpt.h"

#include "compression/flops.h"
#include "train/init.h"

namespace winnow::train {

void GptOptions::validate() const {
  TORCH_CHECK(vocab_size > 1, "gpt: expected vocab_size > 1, got ", vocab_size);
  TORCH_CHECK(context > 0, "gpt: expected context > 0, got ", context);
  TORCH_CHECK(dim > 0 && depth > 0 && heads > 0 && dim % heads == 0,
              "gpt: expected dim divisible by heads, got dim=", dim, " heads=", heads,
              " depth=", depth);
  TORCH_CHECK(mlp_ratio > 0, "gpt: expected mlp_ratio > 0, got ", mlp_ratio);
  TORCH_CHECK(norm_eps > 0, "gpt: expected norm_eps > 0, got ", norm_eps);
}

BlockOptions GptImpl::block_options() const {
  return BlockOptions(options.dim, options.heads)
      .mlp_ratio(options.mlp_ratio)
      .causal(true)
      .norm_eps(options.norm_eps);
}

GptImpl::GptImpl(const GptOptions& options_) : options(options_) {
  options.validate();
  tok_embed = register_module("tok_embed", torch::nn::Embedding(options.vocab_size, options.dim));
  pos_embed = register_parameter("pos_embed", torch::empty({1, options.context, options.dim}));
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < options.depth; ++i) blocks->push_back(Block(block_options()));
  norm = register_module(
      "norm",
      torch::nn::LayerNorm(torch::nn::LayerNormOptions({options.dim}).eps(options.norm_eps)));

  torch::NoGradGuard no_grad;
  init_transformer_weights(*this, options.depth);
  init_truncated_normal_(tok_embed->weight, 0.02);
  init_truncated_normal_(pos_embed, 0.01);
}

ModelOutput GptImpl::forward(const torch::Tensor& tokens, const ForwardContext& context) {
  TORCH_CHECK(tokens.dim() == 2 && tokens.size(1) <= options.context && tokens.size(1) > 0,
              "gpt: expected tokens [B, T] with 0 < T <= ", options.context, ", got ",
              tokens.sizes());
  TORCH_CHECK(tokens.scalar_type() == torch::kInt64, "gpt: expected int64 tokens, got ",
              tokens.scalar_type());
  const int64_t batch = tokens.size(0), length = tokens.size(1);
  compression::TokenState state;
  state.x = tok_embed->forward(tokens) + pos_embed.narrow(1, 0, length);  // [B, T, C]

  LayerAccounting accounting(block_options(), options.depth);
  for (int64_t layer = 0; layer < options.depth; ++layer) {
    BlockHook* hook = context.hook_for ? context.hook_for(layer) : nullptr;
    accounting.record(
        blocks[layer]->as<BlockImpl>()->forward(state, hook, context.measurement(layer)), batch);
    if (hook) accounting.add_flops(hook->extra_forward_flops());
  }
  TORCH_CHECK(state.tokens() == length,
              "gpt: a causal LM needs every position back after the blocks (use the "
              "route strategy, which restores the sequence); got ",
              state.tokens(), " of ", length, " tokens");
  ModelOutput output;
  const auto normed = norm->forward(state.x);  // [B, T, C]
  if (context.final_tokens) {
    output.final_state = state;
    output.final_state.x = normed;
  }
  output.logits = torch::matmul(normed, tok_embed->weight.t());  // [B, T, V]
  accounting.add_flops(compression::linear_forward_flops(static_cast<double>(batch * length),
                                                         options.dim, options.vocab_size));
  accounting.finish(output);
  if (context.aux_losses) output.aux_losses = *context.aux_losses;
  return output;
}

double GptImpl::dense_block_flops_per_sample() const {
  const double tokens = static_cast<double>(options.context);
  return static_cast<double>(options.depth) *
         compression::block_forward_flops({options.dim, block_options().mlp_hidden()}, tokens,
                                          tokens);
}

double GptImpl::dense_forward_flops_per_sample() const {
  const double tokens = static_cast<double>(options.context);
  // Causal attention computes the full T×T scores here (no fused causal kernel on CPU).
  return static_cast<double>(options.depth) *
             compression::block_forward_flops({options.dim, block_options().mlp_hidden()}, tokens,
                                              tokens) +
         compression::linear_forward_flops(tokens, options.dim, options.vocab_size);
}

}  // namespace winnow::train
