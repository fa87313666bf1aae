// Criterion: the "which tokens matter" half of a token-reduction method, and the inputs it may
// read.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "compression/token_state.h"

namespace winnow::compression {

class TokenSaliencyTable;

// Attention extras a criterion reads. It mirrors train's AttentionRequest (compression does not
// depend on train), so that the attention computes only what the active criterion asks for.
struct CriterionNeeds {
  bool cls_row = false;    // ScoreContext::cls_row
  bool received = false;   // ScoreContext::received
  bool mean_keys = false;  // ScoreContext::keys
};

// A named auxiliary loss a component adds during the forward pass (a router's z-loss, a ratio
// loss): `sum` is a sum over this batch's samples, so the trainer divides it by the *global*
// sample count like the task loss; `weight` multiplies it in the total loss.
struct AuxLoss {
  torch::Tensor sum;  // [] scalar, on the autograd graph
  double weight = 1.0;
};
using AuxLosses = std::map<std::string, AuxLoss>;
// Adds `sum` into losses[name] (several layers may add to the same loss).
void add_aux_loss(AuxLosses& losses, const std::string& name, const torch::Tensor& sum,
                  double weight);

// A named statistic a component reports during the forward pass (a router predictor's accuracy),
// in training and evaluation, without entering the loss: a (sum, count) pair, so that the trainer
// and the evaluation all-reduce both and report the global sum / count.
struct AuxMetric {
  double sum = 0.0;
  double count = 0.0;
};
using AuxMetrics = std::map<std::string, AuxMetric>;
// Adds (sum, count) into metrics[name].
void add_aux_metric(AuxMetrics& metrics, const std::string& name, double sum, double count);

// Everything a criterion may read besides the token state. Extras are undefined unless the
// criterion's needs() asked for them.
struct ScoreContext {
  int64_t layer = 0;         // block index
  int64_t step = 0;          // optimizer step (keyed randomness)
  uint64_t seed = 0;         // run seed (keyed randomness)
  torch::Tensor sample_ids;  // [B] int64: global sample ids, identical on any number of ranks
  torch::Tensor cls_row;     // [B, N]: attention of query 0 to every key, mean over heads
  torch::Tensor received;    // [B, N]: attention each key receives, mean over heads and queries
  torch::Tensor keys;        // [B, N, D]: attention keys averaged over heads
  torch::Tensor token_ids;   // [B, T] int64: the input tokens of a text model (else undefined)
  AuxLosses* aux_losses = nullptr;  // where learned criteria add their losses (null: eval/none)
  AuxMetrics* metrics = nullptr;    // where components report statistics (null: none)
  bool training = false;  // a training step's forward: learned criteria may sample (Gumbel noise)
  // Fraction of the reducible tokens the plan means to be live (keep > 0) after this reduction,
  // for ratio losses: the product of the planned keep of this and the earlier length-keeping
  // (mask-mode) reductions of the step, DynamicViT's ρ^s (train/plan_hooks.cpp).
  double planned_keep = 1.0;
};

// A criterion scores tokens; higher means "keep". It is a pure function of its inputs: the same
// state and context give bitwise the same scores, and each sample's scores depend only on that
// sample (so a batch split over ranks scores exactly as the whole batch).
class Criterion {
 public:
  virtual ~Criterion() = default;

  // Registry name, as the configuration spells it.
  virtual std::string name() const = 0;

  // Attention extras score() or metric() read.
  virtual CriterionNeeds needs() const { return {}; }

  // Scores of every token, protected ones included (strategies ignore those): [B, N].
  virtual torch::Tensor score(const TokenState& state, const ScoreContext& context) const = 0;

  // Features whose cosine similarity pairs tokens for merging: [B, N, D]. Only criteria with
  // provides_metric() implement it; the others throw.
  virtual torch::Tensor metric(const TokenState& state, const ScoreContext& context) const;
  virtual bool provides_metric() const { return false; }

  // True when scores are non-negative attention probabilities, so that they can weight tokens
  // (EViT's fused token); false when they only rank.
  virtual bool scores_are_weights() const { return false; }

  // True when scores are the log-odds of keeping each token, so that s ≥ 0 is a keep decision
  // (strategy 'policy'); false when only their order means something.
  virtual bool scores_are_log_odds() const { return false; }

  // True when the sign of each score decides whether its token stays (s ≥ 0 keeps), so that each
  // sample keeps its own number of tokens (learned thresholds): a stage's keep fraction and ramp
  // do not apply, and only strategies that read scores as decisions (needs_log_odds) pair with it
  // in a schedule.
  virtual bool decides_count() const { return false; }

  // Adds the criterion's auxiliary losses (context.aux_losses, training) and metrics
  // (context.metrics) on the reduction its scores led to (`reduced`: the strategy's output, e.g.
  // the cumulative keep policy; for route strategies, the block's input with keep = 1 on the
  // top-k tokens by score and 0 elsewhere). Method::apply calls it when context.aux_losses is
  // set, the route path of the model when either is; most criteria add none.
  virtual void add_losses(const TokenState& /*reduced*/, const ScoreContext& /*context*/) const {}

  // Causal routing (evaluation of a route stage with eval = causal): the log-odds that each
  // token is among the top-k a routed block would choose, computed from that token alone, so that
  // the decision at position t depends only on tokens <= t: [B, N]. Only criteria with
  // predicts_routing() implement it; the others throw.
  virtual torch::Tensor routing_log_odds(const TokenState& state,
                                         const ScoreContext& context) const;
  virtual bool predicts_routing() const { return false; }

  // Learned criteria own parameters (Δθ). create_parameters() makes them for each of `layers` in
  // a model of width `width`, as submodules of `stage` named by the layer index, so that they
  // appear as compress.<stage>.<layer>.<name> in the model; score() then reads them by
  // ScoreContext::layer. Parameter-free criteria do nothing.
  virtual void create_parameters(torch::nn::Module& /*stage*/,
                                 const std::vector<int64_t>& /*layers*/, int64_t /*width*/) {}
  virtual bool learned() const { return false; }

  // Analytic forward FLOPs of score() on `tokens` tokens (summed over the batch) of width `width`:
  // the matmuls of a learned scorer, which the step's FLOPs count like a block's. Parameter-free
  // criteria return 0 (their few element-wise passes are not counted, like norms and softmax).
  virtual double score_flops(double /*tokens*/, int64_t /*width*/) const { return 0.0; }

  // Running state that backward fills and the trainer folds in after each step (the saliency
  // criterion's τ table, made by create_parameters); null for the other criteria.
  virtual std::shared_ptr<TokenSaliencyTable> saliency_table() const { return nullptr; }
};

// Checks a context extra against the state: defined, `dims` dimensions, and leading sizes [B, N]
// (so [B, N] for dims = 2, [B, N, D] for dims = 3). `criterion` and `what` name it in the message.
void check_context_extra(const torch::Tensor& extra, const TokenState& state,
                         const std::string& criterion, const char* what, int64_t dims);

}  // namespace winnow::compression
