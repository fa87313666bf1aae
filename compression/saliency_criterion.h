// saliency: scores each token by the EMA of its Taylor skip saliency τ = |⟨∂L/∂y, y − x⟩|,
// measured in the backward passes of earlier steps and keyed by original position (images) or
// token id (text), so that it can rank tokens before the backward of the step it reduces in.
#pragma once

#include <memory>

#include "compression/criterion.h"
#include "compression/token_saliency.h"

namespace winnow::compression {

// The score of token i at layer l is the table value of its key (TokenSaliencyTable::lookup)
// in the row of its source layer: l itself (source_layer < 0), or source_layer for every
// reducing layer. Protected tokens score 0 (strategies ignore them). Keys never observed score
// the table's init (+∞ by default: kept first, as Token Dropping keeps unseen tokens); scores
// are clamped to ± the largest float, so that differences of scores stay finite.
//
// Scores do not depend on the sample, only on its tokens' keys: for images every sample keeps
// the same positions (a learned spatial prior, like Token Dropping's vocabulary table for text).
// Not learned: no parameters and no gradient to the scores; the table changes only through the
// trainer's update after each step's backward (Planner::saliency_tables).
class SaliencyCriterion : public Criterion {
 public:
  // `table` options: its size may be 0 until the planner knows the model (create_parameters
  // then makes a table with the sizes given here).
  SaliencyCriterion(SaliencyTableOptions table, int64_t source_layer)
      : table_options_(table), source_layer_(source_layer) {}
  std::string name() const override { return "saliency"; }
  // ScoreContext::token_ids are read when the table is keyed by token id.
  torch::Tensor score(const TokenState& state, const ScoreContext& context) const override;
  // Makes the table: one row per layer of `layers` (source_layer < 0) or one for source_layer.
  // Registers no parameters.
  void create_parameters(torch::nn::Module& stage, const std::vector<int64_t>& layers,
                         int64_t width) override;
  std::shared_ptr<TokenSaliencyTable> saliency_table() const override { return table_; }

  int64_t source_layer() const { return source_layer_; }
  // The row a reducing layer reads.
  int64_t source_of(int64_t layer) const { return source_layer_ >= 0 ? source_layer_ : layer; }

 private:
  SaliencyTableOptions table_options_;
  int64_t source_layer_;
  std::shared_ptr<TokenSaliencyTable> table_;  // null until create_parameters
};

}  // namespace winnow::compression
