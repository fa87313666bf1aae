// Distillation from a frozen teacher (DynamicViT, Rao et al. 2021; raoyongming/DynamicViT 1322e62,
// losses.py DistillDiffPruningLoss_dynamic with mse_token=True, distill_weight 0.5, as main.py
// configures it for DeiT): a KL term on the logits and an MSE term on the final features of the
// tokens the student kept, added to the step as auxiliary losses.
#pragma once

#include <memory>
#include <string>

#include "compression/criterion.h"
#include "compression/token_state.h"
#include "train/model.h"

namespace winnow::train {

struct DistillationOptions {
  std::string teacher;         // weights file of the frozen teacher (same model kind); "" = off
  double logits_weight = 0.5;  // aux loss "distill_logits": KL(teacher ‖ student) on the logits
  double tokens_weight = 0.5;  // aux loss "distill_tokens": MSE on the kept tokens' features

  bool enabled() const { return !teacher.empty(); }
  void validate() const;
};

// Σ over samples of KL(softmax(teacher) ‖ softmax(student)) over the last dimension; for
// sequence logits [B, T, V] each sample's KL is its mean over positions. Divided by the batch
// size this is F.kl_div(log_softmax(student), log_softmax(teacher), 'batchmean', log_target=True).
torch::Tensor logit_distillation_sum(const torch::Tensor& student,   // [B, K] or [B, T, V]
                                     const torch::Tensor& teacher);  // same shape, no gradient

// Σ over samples of the mean squared difference, over the sample's kept reducible tokens
// (keep > 0.5) and channels, between the student's final token features and the teacher's at the
// same original positions. A sample that kept no token adds 0. The student's state may be
// shorter than the teacher's (tokens pruned or merged: compared at their original position).
torch::Tensor token_distillation_sum(const compression::TokenState& student,  // x [B, N, C]
                                     const torch::Tensor& teacher);  // [B, N0, C], no gradient

// The frozen teacher and the losses it gives. The teacher is loaded once, runs dense in
// evaluation mode without gradients, and never enters the optimizer or gradient sync.
class Distillation {
 public:
  Distillation(std::shared_ptr<TransformerModel> teacher, DistillationOptions options);

  // Runs the teacher on `inputs` and adds the two losses (sums over the batch's samples, like
  // every auxiliary loss) to `losses`. `student` must have been run with
  // ForwardContext::final_tokens. Returns the teacher's forward FLOPs.
  double add_losses(const torch::Tensor& inputs, const ModelOutput& student,
                    compression::AuxLosses& losses) const;

  const TransformerModel& teacher() const { return *teacher_; }

 private:
  std::shared_ptr<TransformerModel> teacher_;
  DistillationOptions options_;
};

}  // namespace winnow::train
