// N ranks ≡ 1 rank: the same global batches trained for 5 steps on R ranks (each holding a slice)
// give the parameters a single process gets on the whole batch.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "compression/schedule.h"
#include "data/loader.h"
#include "data/synthetic_dataset.h"
#include "dist/communicator.h"
#include "tests/dist/mpi_test_env.h"
#include "train/gpt.h"
#include "train/trainer.h"
#include "train/vit.h"

using namespace winnow;
using namespace winnow::train;

namespace {

std::shared_ptr<dist::Communicator> world_ptr() {
  return {&dist::testing::world(), [](dist::Communicator*) {}};  // owned by the test main
}

// Trains `steps` steps of `model` with `comm`, each rank reading its slice of the global batch.
void train_steps(const std::shared_ptr<TransformerModel>& model,
                 const std::shared_ptr<data::Dataset>& data,
                 const std::shared_ptr<dist::Communicator>& comm, int64_t global_batch,
                 int64_t steps,
                 const std::shared_ptr<const compression::ReductionSchedule>& reduction) {
  TrainerOptions t;
  t.steps = steps;
  t.global_batch = global_batch;
  t.warmup_steps = 2;
  t.progress = false;
  OptimizerOptions opt;
  opt.lr = 3e-3;
  Trainer trainer(model, data, nullptr, comm, t, opt);
  trainer.set_reduction(reduction);
  data::LoaderOptions lo;
  lo.global_batch_size = global_batch;
  lo.rank = comm->rank();
  lo.world_size = comm->world_size();
  lo.prefetch_depth = 0;
  data::Loader loader(data, lo);
  for (int64_t step = 0; step < steps; ++step) trainer.train_step(loader.next(), step);
}

void expect_same_parameters(const TransformerModel& distributed, const TransformerModel& single,
                            const TransformerModel& initial) {
  auto a = distributed.named_parameters(), b = single.named_parameters(),
       c = initial.named_parameters();
  ASSERT_EQ(a.size(), b.size());
  double moved = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    const auto& x = a[i].value();
    const auto& y = b[i].value();
    const double scale = std::max(y.abs().max().item<double>(), 1e-12);
    const double relative = (x - y).abs().max().item<double>() / scale;
    EXPECT_LE(relative, 1e-5) << a[i].key();
    moved = std::max(moved, (x - c[i].value()).abs().max().item<double>());
  }
  // Training moved the parameters, so agreeing on them says something.
  EXPECT_GT(moved, 1e-4);
}

// In float64: in float32, gradients that are zero in exact arithmetic (the key bias: softmax is
// shift-invariant) are rounding noise of ~1e-9 whose sum depends on how the batch is split, and
// Adam's normalisation turns that noise into lr-sized steps. In float64 the noise (~1e-17) sits
// far below Adam's eps and the comparison measures the distributed algorithm, not rounding.
template <typename MakeModel>
void check_rank_invariance(
    MakeModel make_model_float32, const std::shared_ptr<data::Dataset>& data, int64_t global_batch,
    std::shared_ptr<const compression::ReductionSchedule> reduction = nullptr) {
  auto make_model = [&] {
    auto model = make_model_float32();
    model->to(torch::kFloat64);
    return model;
  };
  auto comm = world_ptr();
  torch::manual_seed(11);
  auto distributed = make_model();
  train_steps(distributed, data, comm, global_batch, 5, reduction);

  torch::manual_seed(11);
  auto single = make_model();
  train_steps(single, data, dist::make_communicator("local"), global_batch, 5, reduction);
  torch::manual_seed(11);
  auto initial = make_model();
  expect_same_parameters(*distributed, *single, *initial);
}

std::shared_ptr<const compression::ReductionSchedule> reduction(const std::string& criterion,
                                                                const std::string& strategy,
                                                                int64_t depth, int64_t grid) {
  compression::ReductionConfig c;
  c.criterion = criterion;
  c.strategy = strategy;
  c.layers = {1};
  c.keep = {0.5};
  return std::make_shared<compression::ReductionSchedule>(c, depth, grid, grid);
}

std::shared_ptr<VisionTransformerImpl> tiny_vit() {
  VitOptions v;
  v.image_height = v.image_width = 8;
  v.patch = 2;
  v.dim = 16;
  v.depth = 2;
  v.heads = 2;
  v.num_classes = 4;
  return std::make_shared<VisionTransformerImpl>(v);
}

std::shared_ptr<data::Dataset> tiny_images() {
  data::SyntheticImageOptions o;
  o.size = 256;
  o.height = o.width = 8;
  o.num_classes = 4;
  return std::make_shared<data::SyntheticImageDataset>(o);
}

}  // namespace

TEST(RankInvariance, DenseVitMatchesOneProcess) {
  check_rank_invariance(tiny_vit, tiny_images(), 20);  // 20 samples: uneven slices on 3 ranks
}

TEST(RankInvariance, DenseGptMatchesOneProcess) {
  data::SyntheticTokenOptions o;
  o.num_windows = 128;
  o.vocab_size = 16;
  o.context_length = 8;
  auto data = data::make_synthetic_token_dataset(o);
  auto make = [] {
    GptOptions g;
    g.vocab_size = 16;
    g.context = 8;
    g.dim = 16;
    g.depth = 2;
    g.heads = 2;
    return std::make_shared<GptImpl>(g);
  };
  check_rank_invariance(make, data, 12);
}

// Random token choices are keyed on (seed, step, layer, sample id, token), so a sample loses the
// same tokens whichever rank holds it.
TEST(RankInvariance, RandomPruningMatchesOneProcess) {
  check_rank_invariance(tiny_vit, tiny_images(), 20, reduction("random", "prune", 2, 4));
}

TEST(RankInvariance, AttentionPruningMatchesOneProcess) {
  check_rank_invariance(tiny_vit, tiny_images(), 20, reduction("cls_attention", "prune", 2, 4));
}

TEST(RankInvariance, RandomRoutingMatchesOneProcess) {
  check_rank_invariance(tiny_vit, tiny_images(), 20, reduction("random", "route", 2, 4));
}
