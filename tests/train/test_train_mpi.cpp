// N ranks ≡ 1 rank: the same global batches trained for 5 steps on R ranks (each holding a slice)
// give the parameters a single process gets on the whole batch.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <functional>

#include "compression/co_scheduler.h"
#include "compression/planner.h"
#include "compression/random_criterion.h"
#include "data/loader.h"
#include "data/synthetic_dataset.h"
#include "dist/communicator.h"
#include "tests/dist/mpi_test_env.h"
#include "tests/train/tiny_models.h"
#include "train/block_timing.h"
#include "train/gpt.h"
#include "train/layer_removal.h"
#include "train/trainer.h"
#include "train/vit.h"

using namespace winnow;
using namespace winnow::train;

namespace {

std::shared_ptr<dist::Communicator> world_ptr() {
  return {&dist::testing::world(), [](dist::Communicator*) {}};  // owned by the test main
}

// Trains `steps` steps of `model` with `comm`, each rank reading its slice of the global batch
// in `accumulation` micro-batches. Returns the trainer (its optimizer state is inspected).
std::unique_ptr<Trainer> train_steps(
    const std::shared_ptr<TransformerModel>& model, const std::shared_ptr<data::Dataset>& data,
    const std::shared_ptr<dist::Communicator>& comm, int64_t global_batch, int64_t steps,
    const std::shared_ptr<compression::Planner>& planner,
    const std::shared_ptr<compression::TokenEvolutionMonitor>& monitor = nullptr,
    int64_t accumulation = 1, const OptimizerOptions* optimizer = nullptr,
    const std::shared_ptr<Distillation>& distillation = nullptr,
    const std::shared_ptr<FlopsRegularizer>& flops = nullptr,
    const ModelFactory& model_factory = nullptr) {
  TrainerOptions t;
  t.steps = steps;
  t.global_batch = global_batch;
  t.accumulation = accumulation;
  t.warmup_steps = 2;
  t.progress = false;
  t.bucket_mb = 1;  // the tiny models fit one bucket anyway; the bucket tests are in tests/dist
  OptimizerOptions opt = optimizer ? *optimizer : OptimizerOptions{};
  opt.lr = 3e-3;
  auto trainer = std::make_unique<Trainer>(model, data, nullptr, comm, t, opt);
  trainer->set_planner(planner);
  trainer->set_monitor(monitor);
  trainer->set_distillation(distillation);
  trainer->set_flops_regularizer(flops);
  trainer->set_model_factory(model_factory);
  data::LoaderOptions lo;
  lo.global_batch_size = global_batch;
  lo.rank = comm->rank();
  lo.world_size = comm->world_size();
  lo.prefetch_depth = 0;
  data::Loader loader(data, lo);
  for (int64_t step = 0; step < steps; ++step) trainer->train_step(loader.next(), step);
  return trainer;
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
// Returns the model trained on the world communicator (the one on this rank).
template <typename MakeModel>
auto check_rank_invariance(MakeModel make_model_float32, const std::shared_ptr<data::Dataset>& data,
                           int64_t global_batch,
                           std::shared_ptr<compression::Planner> reduction = nullptr,
                           int64_t accumulation = 1) {
  auto make_model = [&] {
    auto model = make_model_float32();
    model->to(torch::kFloat64);
    return model;
  };
  auto comm = world_ptr();
  torch::manual_seed(11);
  auto distributed = make_model();
  train_steps(distributed, data, comm, global_batch, 5, reduction, nullptr, accumulation);

  torch::manual_seed(11);
  auto single = make_model();
  train_steps(single, data, dist::make_communicator("local"), global_batch, 5, reduction, nullptr,
              accumulation);
  torch::manual_seed(11);
  auto initial = make_model();
  expect_same_parameters(*distributed, *single, *initial);
  return distributed;
}

std::shared_ptr<compression::Planner> reduction(const std::string& criterion,
                                                const std::string& strategy, int64_t depth,
                                                int64_t grid) {
  compression::StaticPlannerConfig config;
  config.stages.push_back({"compress", {}});
  auto& c = config.stages.back().reduction;
  c.criterion = criterion;
  c.strategy = strategy;
  c.layers = {1};
  c.keep = {0.5};
  return std::make_shared<compression::StaticPlanner>(
      config, compression::ModelShape{depth, 16, grid, grid});
}

VitOptions tiny_vit_options() {
  VitOptions v;
  v.image_height = v.image_width = 8;
  v.patch = 2;
  v.dim = 16;
  v.depth = 2;
  v.heads = 2;
  v.num_classes = 4;
  return v;
}

std::shared_ptr<VisionTransformerImpl> tiny_vit() {
  return std::make_shared<VisionTransformerImpl>(tiny_vit_options());
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
  auto make = [] { return tiny::small_gpt(16, 8); };
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

namespace {

// A 4-block ViT: layer gates need depth to choose from.
std::shared_ptr<VisionTransformerImpl> tiny_deep_vit() {
  auto options = tiny_vit_options();
  options.depth = 4;
  return std::make_shared<VisionTransformerImpl>(options);
}

}  // namespace

// Progressive Layer Dropping gates (keyed on seed, step, layer: every rank gates the same layers)
// with token-evolution statistics on: the parameters and the all-reduced statistics' EMAs are
// those of one process holding the whole batch.
TEST(RankInvariance, LayerGatesAndStatisticsMatchOneProcess) {
  compression::StaticPlannerConfig config;
  config.gate.kind = "pld";
  config.gate.gamma = 0.5;  // θ(t) falls fast: deep layers skip within the 5 steps
  config.statistics = true;
  const compression::ModelShape shape{4, 16, 4, 4};
  compression::TokenEvolutionOptions statistics;
  statistics.taylor = true;
  struct Run {
    std::shared_ptr<VisionTransformerImpl> model;
    std::shared_ptr<compression::TokenEvolutionMonitor> monitor;
  };
  auto train_on = [&](const std::shared_ptr<dist::Communicator>& comm) {
    torch::manual_seed(11);
    Run run{tiny_deep_vit(), std::make_shared<compression::TokenEvolutionMonitor>(4, statistics)};
    run.model->to(torch::kFloat64);
    train_steps(run.model, tiny_images(), comm, 20, 5,
                std::make_shared<compression::StaticPlanner>(config, shape), run.monitor);
    return run;
  };
  const Run distributed = train_on(world_ptr());
  const Run single = train_on(dist::make_communicator("local"));
  torch::manual_seed(11);
  auto initial = tiny_deep_vit();
  initial->to(torch::kFloat64);
  expect_same_parameters(*distributed.model, *single.model, *initial);
  EXPECT_EQ(distributed.monitor->updates(), 5);
  bool some_layer_skipped = false;
  for (int64_t layer = 0; layer < 4; ++layer) {
    ASSERT_TRUE(distributed.monitor->observed(layer)) << layer;
    const auto a = distributed.monitor->ema(layer), b = single.monitor->ema(layer);
    EXPECT_NEAR(a.block_influence, b.block_influence, 1e-9) << layer;
    EXPECT_NEAR(a.relative_update, b.relative_update, 1e-9) << layer;
    EXPECT_NEAR(a.uniformity, b.uniformity, 1e-9) << layer;
    EXPECT_NEAR(a.taylor, b.taylor, 1e-9 * std::max(1.0, std::abs(b.taylor))) << layer;
    EXPECT_GT(a.block_influence, 0.0) << layer;
    // The last step's raw sums: a skipped layer observed no token on any rank.
    const double tokens = distributed.monitor->last(layer).tokens;
    EXPECT_EQ(tokens, single.monitor->last(layer).tokens) << layer;
    some_layer_skipped = some_layer_skipped || tokens == 0;
  }
  EXPECT_TRUE(some_layer_skipped) << "PLD skipped no layer at the last step: the test covers "
                                     "gates less than it should";
}

// The co-scheduler decides from all-reduced statistics: every rank, and one process holding the
// whole batch, take the same decisions (capacities, pruned layers) and train the same parameters.
// Float64, so the statistics agree to ~1e-15 and no decision sits on a rounding tie.
TEST(RankInvariance, CoSchedulerDecisionsMatchOneProcess) {
  compression::CoSchedulerConfig config;
  config.mode = "joint";
  config.budget.target = 0.5;
  config.budget.warmup_steps = 2;
  config.interval = 2;
  config.probe_every = 3;
  config.allocator.grid = 4;
  config.allocator.min_protected_level = 2;
  config.allocator.protected_layers = {0};
  config.allocator.dwell = 1;
  compression::ModelShape shape{4, 16, 4, 4};
  shape.mlp_hidden = 64;
  shape.tokens = 17;
  shape.protected_tokens = 1;
  struct Run {
    std::shared_ptr<VisionTransformerImpl> model;
    std::shared_ptr<compression::CoScheduler> planner;
  };
  auto train_on = [&](const std::shared_ptr<dist::Communicator>& comm) {
    torch::manual_seed(11);
    Run run{tiny_deep_vit(), std::make_shared<compression::CoScheduler>(config, shape)};
    run.model->to(torch::kFloat64);
    train_steps(run.model, tiny_images(), comm, 20, 8, run.planner,
                std::make_shared<compression::TokenEvolutionMonitor>(4));
    return run;
  };
  const Run distributed = train_on(world_ptr());
  const Run single = train_on(dist::make_communicator("local"));
  torch::manual_seed(11);
  auto initial = tiny_deep_vit();
  initial->to(torch::kFloat64);
  expect_same_parameters(*distributed.model, *single.model, *initial);
  EXPECT_EQ(distributed.planner->capacities(), single.planner->capacities());
  for (const auto& [name, tensor] : distributed.planner->state())
    EXPECT_TRUE(torch::equal(tensor, single.planner->state().at(name))) << name;
  bool reduced = false;
  for (double k : distributed.planner->capacities()) reduced = reduced || k < 1.0;
  EXPECT_TRUE(reduced) << "the co-scheduler reduced nothing: the test covers less than it should";
}

// coschedule.cost = time: every rank times its own blocks (the times differ between ranks), and
// the table is the max over ranks, so every rank holds the same bits and decides the same.
TEST(RankInvariance, TheTimingTableIsTheSameOnEveryRank) {
  auto comm = world_ptr();
  auto model = tiny_deep_vit();
  BlockTimingOptions options;
  options.batch = 8;
  options.token_counts = {2, 9, 17};
  const auto table = measure_block_times(*model, options, *comm);
  ASSERT_EQ(table.depth(), 4);
  for (const auto& seconds : {table.attention_seconds(), table.mlp_seconds()}) {
    auto highest = seconds.clone(), negated_lowest = -seconds;  // [L, P]
    comm->all_reduce(highest, dist::ReduceOp::kMax);
    comm->all_reduce(negated_lowest, dist::ReduceOp::kMax);
    EXPECT_TRUE(torch::equal(highest, seconds));
    EXPECT_TRUE(torch::equal(-negated_lowest, seconds));
  }
}

// The heal phase removes the pruned blocks (1 and 3 of 4) at step 3 on every rank alike: the
// smaller model trained on R ranks matches the one process's.
TEST(RankInvariance, HealRemovalMatchesOneProcess) {
  compression::CoSchedulerConfig config;
  config.mode = "joint";
  config.budget.warmup_steps = 3;  // the configured structure up to the heal start
  config.budget.heal_steps = 3;
  config.budget.total_steps = 6;
  config.allocator.grid = 2;
  config.allocator.min_protected_level = 1;
  config.allocator.protected_layers = {0};
  config.capacities = {1.0, 0.0, 0.5, 0.0};
  compression::ModelShape shape{4, 16, 4, 4};
  shape.mlp_hidden = 64;
  shape.tokens = 17;
  shape.protected_tokens = 1;
  const ModelFactory factory = [](int64_t depth) {
    auto options = tiny_vit_options();
    options.depth = depth;
    auto model = std::make_shared<VisionTransformerImpl>(options);
    model->to(torch::kFloat64);
    return model;
  };
  auto train_on = [&](const std::shared_ptr<dist::Communicator>& comm) {
    torch::manual_seed(11);
    auto model = factory(4);
    return train_steps(model, tiny_images(), comm, 20, 6,
                       std::make_shared<compression::CoScheduler>(config, shape),
                       std::make_shared<compression::TokenEvolutionMonitor>(4), 1, nullptr, nullptr,
                       nullptr, factory);
  };
  const auto distributed = train_on(world_ptr());
  const auto single = train_on(dist::make_communicator("local"));
  ASSERT_EQ(distributed->model().depth(), 2);
  EXPECT_EQ(distributed->removed_layers(), (std::vector<int64_t>{1, 3}));
  torch::manual_seed(11);
  auto initial = factory(4);
  auto initial_kept = factory(2);
  copy_kept_blocks(*initial, *initial_kept, {0, 2});
  expect_same_parameters(distributed->model(), single->model(), *initial_kept);
  EXPECT_EQ(distributed->optimizer().state().size(), distributed->model().parameters().size());
}

namespace {

// A learned stage trained on every rank and in one process: the parameters (compress.* included)
// match, and the stage's parameter `name` moved (it received synchronised gradients).
// With `optimizer` (e.g. a frozen backbone) and `distill` (a frozen teacher of other weights) when
// given.
void check_learned_stage(const compression::StaticPlannerConfig& config, const std::string& name,
                         const OptimizerOptions* optimizer = nullptr, bool distill = false,
                         const FlopsRegularizerOptions* flops = nullptr) {
  const compression::ModelShape shape{2, 16, 4, 4};
  const auto teacher = [&]() -> std::shared_ptr<Distillation> {
    if (!distill) return nullptr;
    torch::manual_seed(12);
    auto model = tiny_vit();
    model->to(torch::kFloat64);
    DistillationOptions options;
    options.teacher = "in memory";
    return std::make_shared<Distillation>(model, options);
  };
  auto make = [&] {
    torch::manual_seed(11);
    auto model = tiny_vit();
    auto planner = std::make_shared<compression::StaticPlanner>(config, shape);
    model->attach_compression(planner->parameters());
    model->to(torch::kFloat64);
    return std::make_pair(model, planner);
  };
  const auto regularizer = [&](const TransformerModel& model) -> std::shared_ptr<FlopsRegularizer> {
    if (!flops) return nullptr;
    return std::make_shared<FlopsRegularizer>(*flops, model.dense_block_flops_per_sample());
  };
  auto [distributed, distributed_planner] = make();
  train_steps(distributed, tiny_images(), world_ptr(), 20, 5, distributed_planner, nullptr, 1,
              optimizer, teacher(), regularizer(*distributed));
  auto [single, single_planner] = make();
  train_steps(single, tiny_images(), dist::make_communicator("local"), 20, 5, single_planner,
              nullptr, 1, optimizer, teacher(), regularizer(*single));
  auto [initial, initial_planner] = make();
  expect_same_parameters(*distributed, *single, *initial);
  const auto named = distributed->named_parameters();
  ASSERT_NE(named.find(name), nullptr);
  const auto moved = (named[name] - initial->named_parameters()[name]).abs().max().item<double>();
  EXPECT_GT(moved, 1e-6) << name << " did not train";
}

}  // namespace

// A learned scorer (linear criterion, trained through a straight-through mask, with its z-loss).
TEST(RankInvariance, LearnedScorerMatchesOneProcess) {
  compression::StaticPlannerConfig config;
  config.stages.push_back({"scorer", {}});
  auto& c = config.stages.back().reduction;
  c.criterion = "linear";
  c.strategy = "mask";
  c.straight_through = true;
  c.layers = {1};
  c.keep = {0.5};
  c.z_loss = 0.1;
  check_learned_stage(config, "compress.scorer.1.score.weight");
}

// DynamicViT's predictor (criterion predictor, strategy policy): keyed Gumbel decisions, the
// policy softmax in the attention, the ratio loss; noise included.
TEST(RankInvariance, PredictorMatchesOneProcess) {
  compression::StaticPlannerConfig config;
  config.stages.push_back({"dyvit", {}});
  auto& c = config.stages.back().reduction;
  c.criterion = "predictor";
  c.strategy = "policy";
  c.layers = {1};
  c.keep = {0.5};
  check_learned_stage(config, "compress.dyvit.1.out_conv.4.weight");
}

// Fine-tuning the predictor on a frozen backbone that unfreezes after 3 of 5 steps, distilled
// from a frozen teacher (KL on logits, MSE on kept tokens): the same on any number of ranks.
TEST(RankInvariance, DistilledPredictorOnAFrozenBackboneMatchesOneProcess) {
  compression::StaticPlannerConfig config;
  config.stages.push_back({"dyvit", {}});
  auto& c = config.stages.back().reduction;
  c.criterion = "predictor";
  c.strategy = "policy";
  c.layers = {1};
  c.keep = {0.5};
  OptimizerOptions optimizer;
  optimizer.freeze = "backbone";
  optimizer.unfreeze_at = 3;
  optimizer.backbone_lr_scale = 0.5;
  check_learned_stage(config, "compress.dyvit.1.out_conv.4.weight", &optimizer, /*distill=*/true);
}

// LTMP's learned thresholds (criterion threshold on the attention received, strategy policy):
// straight-through σ((s − θ)/τ) masks read by the policy softmax, the FLOPs regulariser on each
// sample's live tokens, θ in its own optimizer group; θ trains identically on any number of ranks.
TEST(RankInvariance, LearnedThresholdsMatchOneProcess) {
  compression::StaticPlannerConfig config;
  config.stages.push_back({"ltmp", {}});
  auto& c = config.stages.back().reduction;
  c.criterion = "threshold";
  c.strategy = "policy";
  c.layers = {1};
  c.threshold_init = 1.0 / 17.0;  // the uniform share of attention: some tokens on each side
  c.temperature = 0.01;
  OptimizerOptions optimizer;
  optimizer.threshold_lr = 1e-2;
  FlopsRegularizerOptions flops;
  flops.target = 0.5;
  check_learned_stage(config, "compress.ltmp.1.threshold", &optimizer, /*distill=*/false, &flops);
}

// Mixture-of-Depths on a GPT (criterion router, strategy weighted_route): each sample's top-k by
// the router, the update scaled by σ(r), and the causal predictor's BCE; the router and the
// predictor train identically on any number of ranks.
namespace {

// A 2-block GPT with a Mixture-of-Depths router at block 1 (capacity 0.25), 12 steps on N ranks
// against one process; router_saliency_loss > 0 adds the τ-table supervision (keys: token ids),
// whose tables must then agree too.
void check_mixture_of_depths(double router_saliency_loss) {
  compression::StaticPlannerConfig config;
  config.stages.push_back({"mod", {}});
  auto& c = config.stages.back().reduction;
  c.criterion = "router";
  c.strategy = "weighted_route";
  c.layers = {1};
  c.keep = {0.25};
  c.router_saliency_loss = router_saliency_loss;
  data::SyntheticTokenOptions o;
  o.num_windows = 128;
  o.vocab_size = 16;
  o.context_length = 8;
  auto data = data::make_synthetic_token_dataset(o);
  auto make = [&] {
    torch::manual_seed(11);
    auto model = tiny::small_gpt(16, 8);
    auto planner = std::make_shared<compression::StaticPlanner>(
        config, compression::ModelShape{2, 16, 0, 0, 0, 8, 0, 16});
    model->attach_compression(planner->parameters());
    model->to(torch::kFloat64);
    return std::make_pair(model, planner);
  };
  auto [distributed, distributed_planner] = make();
  train_steps(distributed, data, world_ptr(), 12, 5, distributed_planner);
  auto [single, single_planner] = make();
  train_steps(single, data, dist::make_communicator("local"), 12, 5, single_planner);
  auto [initial, initial_planner] = make();
  expect_same_parameters(*distributed, *single, *initial);
  const auto named = distributed->named_parameters();
  for (const char* name : {"compress.mod.1.router.weight", "compress.mod.1.predictor.fc1.weight"}) {
    ASSERT_NE(named.find(name), nullptr) << name;
    const auto moved = (named[name] - initial->named_parameters()[name]).abs().max().item<double>();
    EXPECT_GT(moved, 1e-6) << name << " did not train";
  }
  if (router_saliency_loss > 0) {
    const auto tables = distributed_planner->saliency_tables();
    ASSERT_EQ(tables.size(), 1u);
    const auto one = single_planner->saliency_tables().at(0);
    EXPECT_GT(tables[0]->updates(), 0);
    EXPECT_GT(tables[0]->observations(1).sum().item<int64_t>(), 0);
    EXPECT_TRUE(torch::allclose(tables[0]->values(1), one->values(1), 1e-9, 1e-12))
        << tables[0]->values(1) << one->values(1);
  }
}

}  // namespace

TEST(RankInvariance, MixtureOfDepthsRouterMatchesOneProcess) {
  check_mixture_of_depths(0.0);
}

TEST(RankInvariance, SaliencySupervisedRouterMatchesOneProcess) {
  check_mixture_of_depths(0.5);
}

namespace {

// Skips the whole block for the samples `runs` marks false (a rank-divergent layer skip). A batch
// in which no sample runs the layer never calls the block, so its parameters get no gradient.
class LayerSkipHook : public BlockHook {
 public:
  explicit LayerSkipHook(torch::Tensor runs) : runs_(std::move(runs)) {}  // [B] bool

  void around_block(compression::TokenState& state,
                    const std::function<void(compression::TokenState&)>& block) override {
    const torch::Tensor rows = runs_.nonzero().squeeze(1);  // [R] int64
    if (rows.numel() == 0) return;
    compression::TokenState running = state;
    for (torch::Tensor* field : {&running.x, &running.size, &running.pos, &running.keep}) {
      if (field->defined()) *field = field->index_select(0, rows);
    }
    block(running);
    state.x = state.x.index_copy(0, rows, running.x);  // [B, N, C]
  }

 private:
  torch::Tensor runs_;
};

// A ViT whose layer `l` runs for sample s at step t when a keyed uniform draw of
// (seed, t, l, s) is below run_probability[l]: a property of the sample, not of the rank holding
// it, so one process with the whole batch skips exactly what the ranks skip together.
// samples_running() records, per forward call, how many samples ran each layer.
class LayerSkippingVit : public VisionTransformerImpl {
 public:
  LayerSkippingVit(const VitOptions& options, std::vector<double> run_probability)
      : VisionTransformerImpl(options), run_probability_(std::move(run_probability)) {}

  ModelOutput forward(const torch::Tensor& images, const ForwardContext& context) override {
    const int64_t batch = images.size(0);
    const torch::Tensor first_position = torch::zeros({batch, 1}, torch::kLong);  // [B, 1]
    std::vector<std::unique_ptr<LayerSkipHook>> hooks;
    std::vector<int64_t> running;
    for (int64_t layer = 0; layer < options.depth; ++layer) {
      const torch::Tensor draw = compression::keyed_uniform_scores(  // [B, 1]
          context.seed, context.step, layer, context.sample_ids, first_position);
      const torch::Tensor runs = draw.squeeze(1) < run_probability_[static_cast<size_t>(layer)];
      running.push_back(runs.sum().item<int64_t>());
      hooks.push_back(std::make_unique<LayerSkipHook>(runs));
    }
    samples_running_.push_back(running);
    ForwardContext skipping = context;
    skipping.hook_for = [&hooks](int64_t layer) { return hooks[static_cast<size_t>(layer)].get(); };
    return VisionTransformerImpl::forward(images, skipping);
  }

  const std::vector<std::vector<int64_t>>& samples_running() const { return samples_running_; }

 private:
  std::vector<double> run_probability_;
  std::vector<std::vector<int64_t>> samples_running_;  // [forward call][layer]
};

// Layer 0 always runs; layer 1 for about one sample in six, so a rank with a few samples often
// has none running it while another rank has some.
std::shared_ptr<LayerSkippingVit> tiny_skipping_vit() {
  return std::make_shared<LayerSkippingVit>(tiny_vit_options(), std::vector<double>{1.0, 0.16});
}

// Per forward call, whether some rank ran layer 1 on none of its samples while another ran it on
// some: [forward calls] of (min over ranks == 0 and max > 0). Collective.
std::vector<bool> layer_one_divergence(const LayerSkippingVit& model) {
  std::vector<int64_t> counts;
  for (const auto& running : model.samples_running()) counts.push_back(running[1]);
  const torch::Tensor mine = torch::tensor(counts);                   // [calls]
  const torch::Tensor all = dist::testing::world().all_gather(mine);  // [world, calls]
  const torch::Tensor divergent = all.amin(0).eq(0).logical_and(all.amax(0).gt(0));  // [calls]
  return std::vector<bool>(divergent.data_ptr<bool>(),
                           divergent.data_ptr<bool>() + divergent.numel());
}

}  // namespace

// Rank-divergent graphs: layer 1's parameters have a gradient on some ranks and none on others
// (zero-filled there), yet every rank steps them identically to one process on the whole batch.
TEST(RankInvariance, LayerSkippingMatchesOneProcess) {
  auto distributed = check_rank_invariance(tiny_skipping_vit, tiny_images(), 20);
  if (dist::testing::world().world_size() == 1) return;  // divergence needs two ranks
  const std::vector<bool> divergent = layer_one_divergence(*distributed);
  EXPECT_NE(std::find(divergent.begin(), divergent.end(), true), divergent.end())
      << "no step had a rank without layer 1 while another rank ran it: the test covers nothing";
}

// With two micro-batches, some rank runs layer 1 in its first micro-batch and not in its last:
// its gradient from the first must still be synchronised (pytorch/pytorch#69031).
TEST(RankInvariance, LayerSkippingWithAccumulationMatchesOneProcess) {
  auto distributed = check_rank_invariance(tiny_skipping_vit, tiny_images(), 24, nullptr,
                                           /*accumulation=*/2);
  const auto& calls = distributed->samples_running();  // [step * 2 + micro][layer]
  ASSERT_EQ(calls.size(), 10u);
  int64_t only_first = 0;
  for (size_t step = 0; step < 5; ++step) {
    only_first += calls[2 * step][1] > 0 && calls[2 * step + 1][1] == 0;
  }
  torch::Tensor any = torch::tensor({only_first});
  dist::testing::world().all_reduce(any, dist::ReduceOp::kSum);
  EXPECT_GT(any.item<int64_t>(), 0) << "no rank ran layer 1 only in its first micro-batch";
}

namespace {

// A ViT with one more registered matrix that forward never uses (a scorer whose method is off):
// weight decay would shrink it if it ever got a gradient, even a zero one.
class VitWithUnusedParameter : public VisionTransformerImpl {
 public:
  VitWithUnusedParameter() : VisionTransformerImpl(tiny_vit_options()) {
    unused = register_parameter("unused_scorer", torch::randn({4, 16}));
  }
  torch::Tensor unused;
};

}  // namespace

TEST(RankInvariance, ParameterUnusedOnEveryRankKeepsItsValueAndHasNoOptimizerState) {
  auto make = [] { return std::make_shared<VitWithUnusedParameter>(); };
  auto distributed = check_rank_invariance(make, tiny_images(), 20);
  torch::manual_seed(11);
  auto initial = make();
  initial->to(torch::kFloat64);
  EXPECT_TRUE(torch::equal(distributed->unused, initial->unused));
  EXPECT_FALSE(distributed->unused.grad().defined());

  // The same through a trainer whose optimizer state we can see.
  torch::manual_seed(11);
  auto model = make();
  model->to(torch::kFloat64);
  const auto trainer = train_steps(model, tiny_images(), world_ptr(), 20, 3, nullptr, nullptr);
  const auto& state = trainer->optimizer().state();
  EXPECT_EQ(state.count(optimizer_state_key(model->unused)), 0u);
  EXPECT_EQ(state.count(optimizer_state_key(model->head->weight)), 1u);  // the check can fail
  EXPECT_TRUE(torch::equal(model->unused, initial->unused));
}

// dist.check_every: a replica that drifted (here: one rank's parameter nudged) stops the run on
// every rank with the same error, at the first check after the drift; identical replicas pass.
TEST(ReplicaCheck, DriftedReplicaStopsEveryRankAtTheNextCheck) {
  auto comm = world_ptr();
  TrainerOptions t;
  t.steps = 4;
  t.global_batch = 12;
  t.warmup_steps = 1;
  t.progress = false;
  t.prefetch = 0;
  t.replica_check_every = 2;
  t.checkpoint.minutes = 0;
  {
    torch::manual_seed(0);
    Trainer healthy(tiny_vit(), tiny_images(), nullptr, comm, t, OptimizerOptions{});
    EXPECT_EQ(healthy.run().steps, 4);
  }
  if (comm->world_size() == 1) return;  // one replica cannot drift from itself
  torch::manual_seed(0);
  auto model = tiny_vit();
  Trainer drifting(model, tiny_images(), nullptr, comm, t, OptimizerOptions{});
  if (comm->rank() == comm->world_size() - 1) {
    torch::NoGradGuard no_grad;
    model->parameters()[0].view(-1)[0] += 1.0;  // after the constructor's broadcast from rank 0
  }
  try {
    drifting.run();
    ADD_FAILURE() << "a drifted replica went unnoticed";
  } catch (const c10::Error& e) {
    EXPECT_NE(e.msg().find("after step 2: the replicas' parameters differ"), std::string::npos)
        << e.msg();
  }
}

namespace {

// A saliency stage: its τ table is filled from each step's backward, summed over ranks, and read
// by the next steps' reductions. Parameters and tables must be those of one process.
void check_saliency_stage(const std::function<std::shared_ptr<TransformerModel>()>& make_model,
                          const std::shared_ptr<data::Dataset>& data, int64_t global_batch,
                          const compression::StaticPlannerConfig& config,
                          const compression::ModelShape& shape, int64_t accumulation) {
  struct Run {
    std::shared_ptr<TransformerModel> model;
    std::shared_ptr<compression::StaticPlanner> planner;
  };
  auto train_on = [&](const std::shared_ptr<dist::Communicator>& comm) {
    torch::manual_seed(11);
    Run run{make_model(), std::make_shared<compression::StaticPlanner>(config, shape)};
    run.model->to(torch::kFloat64);
    train_steps(run.model, data, comm, global_batch, 5, run.planner, nullptr, accumulation);
    return run;
  };
  const Run distributed = train_on(world_ptr());
  const Run single = train_on(dist::make_communicator("local"));
  torch::manual_seed(11);
  auto initial = make_model();
  initial->to(torch::kFloat64);
  expect_same_parameters(*distributed.model, *single.model, *initial);
  const auto a = distributed.planner->saliency_tables().at(0);
  const auto b = single.planner->saliency_tables().at(0);
  EXPECT_EQ(a->updates(), 5);
  for (const int64_t layer : a->layers()) {
    const auto observed = a->observations(layer);
    EXPECT_TRUE(torch::equal(observed, b->observations(layer))) << layer;
    EXPECT_GT(observed.sum().item<int64_t>(), 0) << layer;
    const auto seen = observed.gt(0);
    const auto va = a->values(layer).masked_select(seen);
    const auto vb = b->values(layer).masked_select(seen);
    EXPECT_GT(vb.abs().max().item<double>(), 0) << layer;
    EXPECT_LE((va - vb).abs().max().item<double>(), 1e-9 * vb.abs().max().item<double>()) << layer;
  }
}

}  // namespace

// ViT, keys by patch position; layer 1 prunes by its own block's table (dropped tokens get no τ)
// and layer 2 too; two micro-batches per rank.
TEST(RankInvariance, SaliencyPruningMatchesOneProcess) {
  compression::StaticPlannerConfig config;
  config.stages.push_back({"sal", {}});
  auto& c = config.stages.back().reduction;
  c.criterion = "saliency";
  c.strategy = "prune";
  c.layers = {1, 2};
  c.keep = {0.5};
  c.saliency_decay = 0.5;
  compression::ModelShape shape{4, 16, 4, 4};
  shape.tokens = 17;
  shape.protected_tokens = 1;
  check_saliency_stage(tiny_deep_vit, tiny_images(), 20, config, shape, 2);
}

// GPT, keys by token id (ScoreContext::token_ids from the batch); layer 1 routes by the table of
// block 0 (a source layer that sees every token).
TEST(RankInvariance, SaliencyRoutingByTokenIdMatchesOneProcess) {
  data::SyntheticTokenOptions o;
  o.num_windows = 128;
  o.vocab_size = 16;
  o.context_length = 8;
  auto data = data::make_synthetic_token_dataset(o);
  auto make = []() -> std::shared_ptr<TransformerModel> { return tiny::small_gpt(16, 8); };
  compression::StaticPlannerConfig config;
  config.stages.push_back({"sal", {}});
  auto& c = config.stages.back().reduction;
  c.criterion = "saliency";
  c.strategy = "route";
  c.layers = {1};
  c.keep = {0.5};
  c.saliency_layer = 0;
  compression::ModelShape shape{2, 16, 0, 0};
  shape.tokens = 8;
  shape.vocab = 16;
  check_saliency_stage(make, data, 12, config, shape, 1);
}
