// Distillation from a frozen teacher.
#include "train/distillation.h"

namespace winnow::train {

void DistillationOptions::validate() const {
  TORCH_CHECK(logits_weight >= 0, "distill.logits_weight: expected >= 0, got ", logits_weight);
  TORCH_CHECK(tokens_weight >= 0, "distill.tokens_weight: expected >= 0, got ", tokens_weight);
  TORCH_CHECK(!enabled() || logits_weight > 0 || tokens_weight > 0,
              "distill.teacher is set but both distill.logits_weight and distill.tokens_weight "
              "are 0: expected at least one loss");
}

torch::Tensor logit_distillation_sum(const torch::Tensor& student, const torch::Tensor& teacher) {
  TORCH_CHECK(student.sizes() == teacher.sizes() && (student.dim() == 2 || student.dim() == 3),
              "distillation: expected student and teacher logits of one shape [B, K] or [B, T, V], "
              "got ",
              student.sizes(), " and ", teacher.sizes());
  const auto log_student = torch::log_softmax(student, -1);
  const auto log_teacher = torch::log_softmax(teacher.to(student.scalar_type()), -1);
  auto kl = (log_teacher.exp() * (log_teacher - log_student)).sum(-1);  // [B] or [B, T]
  if (kl.dim() == 2) kl = kl.mean(1);
  return kl.sum();
}

torch::Tensor token_distillation_sum(const compression::TokenState& student,
                                     const torch::Tensor& teacher) {
  const auto& x = student.x;  // [B, N, C]
  TORCH_CHECK(x.dim() == 3 && teacher.dim() == 3 && teacher.size(0) == x.size(0) &&
                  teacher.size(2) == x.size(2),
              "distillation: expected student tokens [B, N, C] and teacher tokens [B, N0, C], got ",
              x.sizes(), " and ", teacher.sizes());
  const int64_t p = student.protected_count;
  const auto positions = student.positions().narrow(1, p, x.size(1) - p);  // [B, R]
  TORCH_CHECK(positions.numel() == 0 || positions.max().item<int64_t>() < teacher.size(1),
              "distillation: the student's token positions exceed the teacher's ", teacher.size(1),
              " tokens");
  const auto teacher_tokens =
      teacher.to(x.scalar_type()).gather(1, positions.unsqueeze(-1).expand({-1, -1, x.size(2)}));
  const auto squared = (x.narrow(1, p, x.size(1) - p) - teacher_tokens).pow(2).mean(-1);  // [B, R]
  auto kept = student.keep.defined()
                  ? (student.keep.narrow(1, p, x.size(1) - p) > 0.5).to(x.scalar_type())
                  : torch::ones_like(squared);  // [B, R]
  const auto count = kept.sum(1);               // [B]
  const auto per_sample = (squared * kept).sum(1) / count.clamp_min(1);
  return per_sample.sum();
}

Distillation::Distillation(std::shared_ptr<TransformerModel> teacher, DistillationOptions options)
    : teacher_(std::move(teacher)), options_(std::move(options)) {
  TORCH_CHECK(teacher_, "distillation: no teacher model");
  options_.validate();
  teacher_->eval();
  for (auto& p : teacher_->parameters()) p.set_requires_grad(false);
}

double Distillation::add_losses(const torch::Tensor& inputs, const ModelOutput& student,
                                compression::AuxLosses& losses) const {
  ModelOutput taught;
  {
    torch::NoGradGuard no_grad;
    ForwardContext dense;
    dense.final_tokens = options_.tokens_weight > 0;
    taught = teacher_->forward(inputs, dense);
  }
  if (options_.logits_weight > 0)
    compression::add_aux_loss(losses, "distill_logits",
                              logit_distillation_sum(student.logits, taught.logits),
                              options_.logits_weight);
  if (options_.tokens_weight > 0) {
    TORCH_CHECK(student.final_state.x.defined(),
                "distillation: the student ran without ForwardContext::final_tokens");
    compression::add_aux_loss(losses, "distill_tokens",
                              token_distillation_sum(student.final_state, taught.final_state.x),
                              options_.tokens_weight);
  }
  return taught.forward_flops;
}

}  // namespace winnow::train
