// ReductionHook: runs one layer's token-reduction method at its site of a block (the bridge from
// a ReductionSchedule in compression/ to the BlockHook interface the blocks call).
#pragma once

#include <memory>
#include <vector>

#include "compression/schedule.h"
#include "train/block.h"

namespace winnow::train {

class ReductionHook : public BlockHook {
 public:
  // `keep`: fraction of the reducible tokens entering the layer it keeps (1 = no-op).
  ReductionHook(const compression::ReductionSchedule& schedule, double keep,
                compression::ScoreContext context);

  AttentionRequest attention_request() const override;
  void pre_block(compression::TokenState& state) override;
  void post_attention(compression::TokenState& state, const AttentionOutput& attention) override;
  void around_block(compression::TokenState& state,
                    const std::function<void(compression::TokenState&)>& block) override;

 private:
  int64_t keep_count(const compression::TokenState& state) const;
  void reduce(compression::TokenState& state);

  const compression::ReductionSchedule& schedule_;
  double keep_;
  compression::ScoreContext context_;
};

// The hooks of one forward pass: one per reducing layer, built from the schedule for a step.
class StepHooks {
 public:
  // `training`: the step's ramped keep; otherwise the target keep (or none when the schedule
  // evaluates dense).
  StepHooks(const compression::ReductionSchedule& schedule, int64_t depth, int64_t step,
            uint64_t seed, const torch::Tensor& sample_ids, bool training);
  BlockHook* operator()(int64_t layer) const { return hooks_[static_cast<size_t>(layer)].get(); }
  bool any() const { return any_; }

 private:
  std::vector<std::unique_ptr<ReductionHook>> hooks_;
  bool any_ = false;
};

}  // namespace winnow::train
