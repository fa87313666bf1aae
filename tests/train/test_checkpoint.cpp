// Checkpoints: round trip of every part, validation errors (mismatched model, truncated and
// corrupted files), the checkpoint folder (latest link, retention, stale temporaries, fallback),
// and bit-exact resume of the trainer.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>

#include "compression/co_scheduler.h"
#include "compression/planner.h"
#include "data/h5_file.h"
#include "data/synthetic_dataset.h"
#include "dist/communicator.h"
#include "tests/data/test_support.h"
#include "tests/train/tiny_models.h"
#include "train/checkpoint.h"
#include "train/checkpoint_directory.h"
#include "train/model_weights.h"
#include "train/optimizer.h"
#include "train/trainer.h"
#include "train/vit.h"

using namespace winnow;
using namespace winnow::train;
namespace fs = std::filesystem;

namespace {

std::string fresh_dir(const std::string& name) {
  const std::string dir = std::string(testing::TempDir()) + "/winnow_checkpoint_" + name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

using tiny::images;
using tiny::small_vit;

TrainerOptions quick(int64_t steps) {
  TrainerOptions t = tiny::quick_options(steps, /*global_batch=*/16, /*warmup=*/2, /*log_every=*/1);
  t.prefetch = 0;
  t.checkpoint.minutes = 0;
  return t;
}

// A model with AdamW state after a few real steps.
struct Trained {
  std::shared_ptr<VisionTransformerImpl> model;
  std::unique_ptr<Trainer> trainer;
};
Trained trained(int64_t steps, uint64_t init_seed = 0) {
  torch::manual_seed(init_seed);
  Trained t;
  t.model = small_vit();
  t.trainer =
      std::make_unique<Trainer>(t.model, images(256), nullptr, dist::make_communicator("local"),
                                quick(steps), OptimizerOptions{});
  t.trainer->run();
  return t;
}

CheckpointMeta some_meta(int64_t step) {
  CheckpointMeta meta;
  meta.step = step;
  meta.epoch = 1;
  meta.samples_consumed = step * 16;
  meta.global_batch = 16;
  meta.world_size = 3;
  meta.seed = 7;
  meta.reason = "interval";
  meta.config_ini = "[model]\ndim = 32\n";
  meta.token_schedule = "dense";
  meta.lr_schedule = LrSchedule{1e-3, 2, 10, 0.01};
  return meta;
}

// A model trained 2 steps and its checkpoint (with optimizer state) in a fresh folder.
struct SavedCheckpoint {
  std::string dir, path;
  Trained source;
};
SavedCheckpoint saved_after_two_steps(const std::string& name) {
  SavedCheckpoint saved{fresh_dir(name), "", trained(2)};
  saved.path = saved.dir + "/c.h5";
  write_checkpoint(saved.path, *saved.source.model, &saved.source.trainer->optimizer(),
                   some_meta(2));
  return saved;
}

using ::winnow::data::testing::error_of;  // "<no error>" when nothing throws

const torch::optim::AdamWParamState& state_of(torch::optim::AdamW& optimizer,
                                              const torch::Tensor& p) {
#if TORCH_VERSION_MAJOR >= 2
  return static_cast<const torch::optim::AdamWParamState&>(
      *optimizer.state().at(p.unsafeGetTensorImpl()));
#else
  return static_cast<const torch::optim::AdamWParamState&>(
      *optimizer.state().at(optimizer_state_key(p)));
#endif
}

bool has_state(torch::optim::AdamW& optimizer, const torch::Tensor& p) {
#if TORCH_VERSION_MAJOR >= 2
  return optimizer.state().count(p.unsafeGetTensorImpl()) > 0;
#else
  return optimizer.state().count(optimizer_state_key(p)) > 0;
#endif
}

// Asserts bitwise equality of parameters, buffers and AdamW state of two trainers.
void expect_same_state(Trainer& a, Trainer& b) {
  auto pa = a.model().named_parameters(), pb = b.model().named_parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (size_t i = 0; i < pa.size(); ++i) {
    EXPECT_TRUE(torch::equal(pa[i].value(), pb[i].value())) << pa[i].key();
    ASSERT_EQ(has_state(a.optimizer(), pa[i].value()), has_state(b.optimizer(), pb[i].value()));
    if (!has_state(a.optimizer(), pa[i].value())) continue;
    const auto& sa = state_of(a.optimizer(), pa[i].value());
    const auto& sb = state_of(b.optimizer(), pb[i].value());
    EXPECT_EQ(sa.step(), sb.step()) << pa[i].key();
    EXPECT_TRUE(torch::equal(sa.exp_avg(), sb.exp_avg())) << pa[i].key();
    EXPECT_TRUE(torch::equal(sa.exp_avg_sq(), sb.exp_avg_sq())) << pa[i].key();
  }
}

}  // namespace

TEST(Checkpoint, RoundTripRestoresModelOptimizerAndMeta) {
  const std::string dir = fresh_dir("roundtrip");
  auto source = trained(3, /*init_seed=*/1);
  const std::string path = dir + "/c.h5";
  write_checkpoint(path, *source.model, &source.trainer->optimizer(), some_meta(3));

  auto target = trained(1, /*init_seed=*/2);  // different values and fewer Adam steps
  const CheckpointMeta meta = read_checkpoint(path, *target.model, &target.trainer->optimizer());
  expect_same_state(*source.trainer, *target.trainer);
  for (size_t i = 0; i < source.model->buffers().size(); ++i)
    EXPECT_TRUE(torch::equal(source.model->buffers()[i], target.model->buffers()[i]));
  const auto& ga = source.trainer->optimizer().param_groups();
  const auto& gb = target.trainer->optimizer().param_groups();
  ASSERT_EQ(ga.size(), gb.size());
  for (size_t g = 0; g < ga.size(); ++g) {
    const auto& oa = static_cast<const torch::optim::AdamWOptions&>(ga[g].options());
    const auto& ob = static_cast<const torch::optim::AdamWOptions&>(gb[g].options());
    EXPECT_EQ(oa.weight_decay(), ob.weight_decay());
    EXPECT_EQ(oa.eps(), ob.eps());
    EXPECT_EQ(oa.lr(), ob.lr());
  }
  const CheckpointMeta expected = some_meta(3);
  EXPECT_EQ(meta.step, 3);
  EXPECT_EQ(meta.epoch, expected.epoch);
  EXPECT_EQ(meta.samples_consumed, expected.samples_consumed);
  EXPECT_EQ(meta.global_batch, 16);
  EXPECT_EQ(meta.world_size, 3);
  EXPECT_EQ(meta.seed, 7u);
  EXPECT_EQ(meta.reason, "interval");
  EXPECT_EQ(meta.config_ini, expected.config_ini);
  EXPECT_EQ(meta.token_schedule, "dense");
  EXPECT_EQ(meta.model_kind, "vit");
  EXPECT_EQ(meta.lr_schedule.total_steps, 10);
  EXPECT_EQ(meta.lr_schedule.warmup_steps, 2);
  EXPECT_DOUBLE_EQ(meta.lr_schedule.peak_lr, 1e-3);
  EXPECT_FALSE(meta.winnow_version.empty());

  const auto summary = summarize_checkpoint(path, /*verify_checksums=*/true);
  EXPECT_TRUE(summary.has_optimizer);
  int64_t parameters = 0;
  for (const auto& p : source.model->parameters()) parameters += p.numel();
  EXPECT_EQ(summary.parameters, parameters);
  EXPECT_EQ(summary.tensors.size(),
            source.model->parameters().size() + source.model->buffers().size());
}

TEST(Checkpoint, WeightsFileIsACheckpointWithoutOptimizer) {
  const std::string dir = fresh_dir("weights");
  auto source = trained(2, 1);
  save_model_weights(*source.model, dir + "/model.h5", "[model]\n");
  auto target = small_vit();
  load_model_weights(*target, dir + "/model.h5");
  for (size_t i = 0; i < target->parameters().size(); ++i)
    EXPECT_TRUE(torch::equal(target->parameters()[i], source.model->parameters()[i]));
  EXPECT_FALSE(summarize_checkpoint(dir + "/model.h5", true).has_optimizer);
  EXPECT_EQ(read_weights_config(dir + "/model.h5"), "[model]\n");
}

TEST(Checkpoint, MismatchedModelListsMissingUnexpectedAndMisshapedNames) {
  const std::string dir = fresh_dir("mismatch");
  auto source = small_vit(/*depth=*/2, /*dim=*/32);
  write_checkpoint(dir + "/c.h5", *source, nullptr, some_meta(0));

  auto deeper = small_vit(/*depth=*/3);
  const auto before = deeper->parameters()[0].clone();
  const std::string deeper_error =
      error_of([&] { read_checkpoint(dir + "/c.h5", *deeper, nullptr); });
  EXPECT_NE(deeper_error.find("does not fit the configured model"), std::string::npos)
      << deeper_error;
  EXPECT_NE(deeper_error.find("missing:\n    blocks.2."), std::string::npos) << deeper_error;
  EXPECT_TRUE(torch::equal(before, deeper->parameters()[0])) << "nothing may change on error";

  auto shallower = small_vit(/*depth=*/1);
  const std::string shallow_error =
      error_of([&] { read_checkpoint(dir + "/c.h5", *shallower, nullptr); });
  EXPECT_NE(shallow_error.find("unexpected:\n    blocks.1."), std::string::npos) << shallow_error;

  auto wider = small_vit(/*depth=*/2, /*dim=*/64);
  const std::string wide_error = error_of([&] { read_checkpoint(dir + "/c.h5", *wider, nullptr); });
  EXPECT_NE(wide_error.find("mis-shaped:\n    "), std::string::npos) << wide_error;
  EXPECT_NE(wide_error.find("checkpoint [32"), std::string::npos) << wide_error;
}

TEST(Checkpoint, TruncatedFileIsRejectedNamingTheFile) {
  SavedCheckpoint saved = saved_after_two_steps("truncated");
  const std::string &dir = saved.dir, &path = saved.path;
  for (const double fraction : {0.0, 0.1, 0.5, 0.9, 0.999}) {
    const std::string cut = dir + "/cut.h5";
    fs::copy_file(path, cut, fs::copy_options::overwrite_existing);
    fs::resize_file(cut, static_cast<uintmax_t>(fraction * fs::file_size(path)));
    auto target = small_vit();
    const std::string error = error_of([&] { read_checkpoint(cut, *target, nullptr); });
    EXPECT_NE(error.find(cut), std::string::npos) << "fraction " << fraction << ": " << error;
  }
}

TEST(Checkpoint, CorruptedDatasetIsRejectedNamingFileAndDataset) {
  SavedCheckpoint saved = saved_after_two_steps("corrupted");
  const std::string& path = saved.path;
  Trained& source = saved.source;
  const std::string name = source.model->named_parameters()[3].key();
  {  // silent corruption of one value behind the checksum's back
    data::H5File file(path, data::H5File::Mode::kReadWrite);
    torch::Tensor values = file.read_tensor("model/" + name);
    values.view(-1)[0] += 1.0f;
    file.write_rows("model/" + name, 0, values);
    file.close();
  }
  auto target = small_vit();
  const std::string error = error_of([&] { read_checkpoint(path, *target, nullptr); });
  EXPECT_NE(error.find(path), std::string::npos) << error;
  EXPECT_NE(error.find("/model/" + name), std::string::npos) << error;
  EXPECT_NE(error.find("checksum"), std::string::npos) << error;
}

TEST(Checkpoint, FlippedBitsAnywhereNeverLoadSilently) {
  SavedCheckpoint saved = saved_after_two_steps("bitflip");
  const std::string &dir = saved.dir, &path = saved.path;
  Trained& source = saved.source;
  std::ifstream in(path, std::ios::binary);
  const std::string original((std::istreambuf_iterator<char>(in)),
                             std::istreambuf_iterator<char>());
  // Flip one bit at positions spread over the file: each flip must be caught, or hit bytes HDF5
  // never reads (padding), in which case the loaded state is exactly the saved one.
  int rejected = 0;
  const int trials = 24;
  for (int t = 0; t < trials; ++t) {
    std::string damaged = original;
    const size_t at = (original.size() * (2 * t + 1)) / (2 * trials);
    damaged[at] = static_cast<char>(damaged[at] ^ 0x10);
    const std::string flipped = dir + "/flipped.h5";
    std::ofstream(flipped, std::ios::binary | std::ios::trunc) << damaged;
    auto target = trained(1, 3);
    const std::string error =
        error_of([&] { read_checkpoint(flipped, *target.model, &target.trainer->optimizer()); });
    if (error != "<no error>") {
      ++rejected;
      EXPECT_NE(error.find(flipped), std::string::npos) << error;
    } else {
      expect_same_state(*source.trainer, *target.trainer);
    }
  }
  // In this tiny model HDF5's own structures and free space take much of the file; flips there
  // are harmless (checked above). Flips in the data are caught.
  EXPECT_GT(rejected, 0);
}

TEST(Checkpoint, NotHdf5AndMissingFilesGiveClearErrors) {
  const std::string dir = fresh_dir("foreign");
  std::ofstream(dir + "/text.h5") << "not an HDF5 file\n";
  auto model = small_vit();
  EXPECT_NE(error_of([&] {
              read_checkpoint(dir + "/text.h5", *model, nullptr);
            }).find("is not a readable HDF5 file"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              read_checkpoint(dir + "/absent.h5", *model, nullptr);
            }).find("does not exist"),
            std::string::npos);
}

TEST(CheckpointDirectory, LatestLinkAndRetentionKeepExactlyTheNewest) {
  const std::string dir = fresh_dir("retention");
  auto model = small_vit();
  CheckpointDirectory directory(dir, /*keep=*/2);
  for (int64_t step : {1, 2, 3, 4, 5}) directory.save(*model, nullptr, some_meta(step));
  EXPECT_EQ(directory.checkpoints(),
            (std::vector<std::string>{directory.path_for(5), directory.path_for(4)}));
  ASSERT_TRUE(directory.latest().has_value());
  EXPECT_TRUE(fs::equivalent(*directory.latest(), directory.path_for(5)));
  EXPECT_EQ(read_checkpoint_meta(dir + "/latest").step, 5);

  const std::string all = fresh_dir("retention_all");
  CheckpointDirectory keep_all(all, /*keep=*/0);
  for (int64_t step : {1, 2, 3}) keep_all.save(*model, nullptr, some_meta(step));
  EXPECT_EQ(keep_all.checkpoints().size(), 3u);
}

TEST(CheckpointDirectory, StaleTemporariesAreNeverCheckpointsAndAreRemoved) {
  const std::string dir = fresh_dir("stale");
  auto model = small_vit();
  CheckpointDirectory directory(dir, 3);
  directory.save(*model, nullptr, some_meta(1));
  const std::string stale = directory.path_for(2) + ".tmp.12345";
  std::ofstream(stale) << "half a checkpoint";
  EXPECT_EQ(directory.checkpoints(), std::vector<std::string>{directory.path_for(1)});
  directory.save(*model, nullptr, some_meta(3));
  EXPECT_FALSE(fs::exists(stale));
}

TEST(CheckpointDirectory, ResumeFallsBackToTheNewestLoadableCheckpoint) {
  const std::string dir = fresh_dir("fallback");
  auto model = small_vit();
  CheckpointDirectory directory(dir, 0);
  directory.save(*model, nullptr, some_meta(4));
  directory.save(*model, nullptr, some_meta(8));
  fs::resize_file(directory.path_for(8), fs::file_size(directory.path_for(8)) / 2);

  auto target = small_vit();
  CheckpointMeta meta;
  const auto choice = resolve_resume(
      dir, [&](const std::string& path) { meta = read_checkpoint(path, *target, nullptr); });
  EXPECT_EQ(choice.path, directory.path_for(4));
  EXPECT_EQ(meta.step, 4);
  ASSERT_EQ(choice.rejected.size(), 1u);
  EXPECT_NE(choice.rejected[0].find(directory.path_for(8)), std::string::npos);
  // A damaged file named explicitly is an error, not a fallback.
  EXPECT_THROW(
      resolve_resume(directory.path_for(8),
                     [&](const std::string& path) { read_checkpoint(path, *target, nullptr); }),
      c10::Error);
}

namespace {

// What compresses the resume test's model when `compressed`: PLD layer gates, a learned linear
// scorer (a parameterised component with an auxiliary loss) and token-evolution statistics with
// Taylor saliency (state across steps).
struct Compression {
  std::shared_ptr<compression::Planner> planner;
  std::shared_ptr<compression::TokenEvolutionMonitor> monitor;
  std::shared_ptr<FlopsRegularizer> flops;
};
// The co-scheduler instead (joint mode, decisions every 2 steps, probes every 3): its capacities,
// dwell and fade counters and the monitor's EMAs carry over the resume.
// With `timed` (coschedule.cost = time) on a fresh run, it gets the timing table a measurement
// would give, fixed here (layer l's halves take (l + 1)·n/17 ms) so that the straight and the
// first-half runs decide alike; a resumed run gets none and must read it from the checkpoint.
Compression coschedule_for(TransformerModel& model, bool timed = false, bool fresh = true) {
  compression::CoSchedulerConfig config;
  config.mode = "joint";
  if (timed) config.cost = "time";
  config.budget.target = 0.5;
  config.budget.warmup_steps = 1;
  config.interval = 2;
  config.probe_every = 3;
  config.allocator.grid = 4;
  config.allocator.min_protected_level = 2;
  config.allocator.protected_layers = {0};
  compression::ModelShape shape{model.depth(), 32, 4, 4};
  shape.mlp_hidden = 128;
  shape.tokens = 17;
  shape.protected_tokens = 1;
  Compression result;
  auto planner = std::make_shared<compression::CoScheduler>(config, shape);
  if (timed && fresh) {
    const auto counts = planner->timing_token_counts();
    auto half = torch::zeros({model.depth(), static_cast<int64_t>(counts.size())}, torch::kFloat64);
    for (int64_t l = 0; l < model.depth(); ++l)
      for (size_t p = 0; p < counts.size(); ++p)
        half[l][static_cast<int64_t>(p)] = 1e-3 * static_cast<double>((l + 1) * counts[p]) / 17.0;
    planner->set_timing(compression::LayerTimingTable(counts, half, half.clone()));
  }
  result.planner = planner;
  model.attach_compression(result.planner->parameters());
  result.monitor = std::make_shared<compression::TokenEvolutionMonitor>(model.depth());
  return result;
}
Compression compression_for(TransformerModel& model) {
  compression::StaticPlannerConfig config;
  config.gate.kind = "pld";
  config.gate.gamma = 0.3;
  config.statistics = true;
  config.stages.push_back({"scorer", {}});
  auto& c = config.stages.back().reduction;
  c.criterion = "linear";
  c.strategy = "mask";
  c.straight_through = true;
  c.layers = {1, 2};
  c.keep = {0.5};
  Compression result;
  result.planner = std::make_shared<compression::StaticPlanner>(
      config, compression::ModelShape{model.depth(), 32, 4, 4});
  model.attach_compression(result.planner->parameters());
  compression::TokenEvolutionOptions statistics;
  statistics.taylor = true;
  result.monitor = std::make_shared<compression::TokenEvolutionMonitor>(model.depth(), statistics);
  return result;
}

// A saliency stage instead (prune at layers 2 and 3 by the τ table of block 1, filled from backward
// from step 0): the table carries over the resume, and the pruning reads it.
Compression saliency_for(TransformerModel& model) {
  compression::StaticPlannerConfig config;
  config.stages.push_back({"sal", {}});
  auto& c = config.stages.back().reduction;
  c.criterion = "saliency";
  c.strategy = "prune";
  c.layers = {2, 3};
  c.keep = {0.5};
  c.saliency_layer = 1;
  c.saliency_decay = 0.5;
  compression::ModelShape shape{model.depth(), 32, 4, 4};
  shape.tokens = 17;
  shape.protected_tokens = 1;
  Compression result;
  result.planner = std::make_shared<compression::StaticPlanner>(config, shape);
  return result;
}

// Learned thresholds instead (LTMP: θ on the attention received after the attention of blocks 1
// and 2, the policy mask, the FLOPs regulariser, θ at its own learning rate).
Compression thresholds_for(TransformerModel& model) {
  compression::StaticPlannerConfig config;
  config.stages.push_back({"ltmp", {}});
  auto& c = config.stages.back().reduction;
  c.criterion = "threshold";
  c.strategy = "policy";
  c.layers = {1, 2};
  c.threshold_init = 1.0 / 17.0;
  c.temperature = 0.01;
  Compression result;
  result.planner = std::make_shared<compression::StaticPlanner>(
      config, compression::ModelShape{model.depth(), 32, 4, 4});
  model.attach_compression(result.planner->parameters());
  FlopsRegularizerOptions flops;
  flops.target = 0.5;
  result.flops = std::make_shared<FlopsRegularizer>(flops, model.dense_block_flops_per_sample());
  return result;
}

// The llm.c standard: k steps, save, a new process state, resume, k more steps gives the same
// bits as 2k uninterrupted steps (parameters, optimizer state, compression state, and the logged
// losses and statistics).
void expect_bit_identical_resume(const std::string& prefix, bool compressed,
                                 bool coschedule = false, bool saliency = false,
                                 const OptimizerOptions& optimizer = OptimizerOptions{},
                                 bool thresholds = false, bool timed = false) {
  const int64_t k = 4;
  auto comm = dist::make_communicator("local");
  const auto run = [&](const std::string& name, int64_t stop_at, const std::string& resume) {
    torch::manual_seed(resume.empty() ? 0 : 99);  // a resumed run must not depend on its init
    auto options = quick(2 * k);
    options.run_dir = fresh_dir(prefix + name);
    options.checkpoint.dir = options.run_dir + "/checkpoints";
    options.checkpoint.every = 0;
    options.stop_at = stop_at;
    if (!resume.empty()) {
      fs::remove_all(options.run_dir);
      fs::copy(resume, options.run_dir, fs::copy_options::recursive);
    }
    auto model = small_vit(compressed ? 4 : 2);
    Compression parts;
    if (compressed)
      parts = coschedule ? coschedule_for(*model, timed, resume.empty())
                         : (saliency     ? saliency_for(*model)
                            : thresholds ? thresholds_for(*model)
                                         : compression_for(*model));
    auto trainer = std::make_unique<Trainer>(model, images(256), nullptr, comm, options, optimizer);
    trainer->set_planner(parts.planner);
    trainer->set_monitor(parts.monitor);
    trainer->set_flops_regularizer(parts.flops);
    if (!resume.empty()) trainer->resume(options.run_dir);
    const auto summary = trainer->run();
    return std::make_pair(std::move(trainer), summary);
  };
  auto [straight, straight_summary] = run("straight", 0, "");
  auto [first, first_summary] = run("first_half", k, "");
  EXPECT_TRUE(first_summary.stopped_early);
  EXPECT_EQ(first_summary.last_step, k);
  const std::string first_dir =
      std::string(testing::TempDir()) + "/winnow_checkpoint_" + prefix + "first_half";
  auto [resumed, resumed_summary] = run("resumed", 0, first_dir);
  EXPECT_EQ(resumed->start_step(), k);
  EXPECT_EQ(resumed_summary.steps, k);
  expect_same_state(*straight, *resumed);
  const auto straight_state = straight->compression_state();
  const auto resumed_state = resumed->compression_state();
  EXPECT_EQ(straight_state.size(), resumed_state.size());
  EXPECT_EQ(straight_state.empty(), !compressed || thresholds);  // θ are parameters, not state
  for (const auto& [name, tensor] : straight_state) {
    ASSERT_TRUE(resumed_state.count(name)) << name;
    EXPECT_TRUE(torch::equal(tensor, resumed_state.at(name))) << name;
  }

  // The step lines (everything but timings) agree step by step: loss, and with compression the
  // gates, auxiliary losses and statistics.
  const auto lines = [](const std::string& dir) {
    std::ifstream in(dir + "/metrics.jsonl");
    std::vector<std::string> out;
    std::string line;
    while (std::getline(in, line)) {
      if (line.find("\"event\":\"step\"") == std::string::npos) continue;
      std::string kept = line.substr(0, line.find(",\"lr\""));  // event, step, loss
      const auto tail = line.find(",\"tokens_per_layer\"");
      if (tail != std::string::npos) kept += line.substr(tail, line.find(",\"elapsed") - tail);
      out.push_back(kept);
    }
    return out;
  };
  const std::string temp = std::string(testing::TempDir()) + "/winnow_checkpoint_" + prefix;
  const auto straight_lines = lines(temp + "straight");
  const auto resumed_lines = lines(temp + "resumed");
  ASSERT_EQ(straight_lines.size(), static_cast<size_t>(2 * k));
  EXPECT_EQ(straight_lines, resumed_lines);
  if (compressed) {
    // Every step trained (a NaN from the straight-through mask would skip them all and still
    // "match").
    for (const auto& line : straight_lines)
      EXPECT_EQ(line.find("\"loss\":null"), std::string::npos) << line;
    if (saliency) {
      // The saliency stage prunes layers 2 and 3 by the table (no monitor, no auxiliary loss).
      EXPECT_NE(straight_lines.back().find("\"tokens_per_layer\":[272,272,144,80]"),
                std::string::npos)
          << straight_lines.back();
    } else if (thresholds) {
      EXPECT_NE(straight_lines.back().find("aux_flops"), std::string::npos)
          << straight_lines.back();
      EXPECT_NE(straight_lines.back().find("flops_ratio"), std::string::npos);
    } else if (coschedule) {
      EXPECT_NE(straight_lines.back().find("evolution_bi"), std::string::npos);
      EXPECT_NE(straight_lines.back().find("\"capacity\""), std::string::npos);
    } else {
      EXPECT_NE(straight_lines.back().find("evolution_bi"), std::string::npos);
      EXPECT_NE(straight_lines.back().find("aux_score_z"), std::string::npos)
          << straight_lines.back();
      EXPECT_NE(straight_lines.back().find("layers_run"), std::string::npos);
    }
  }
  if (coschedule) {
    // The decisions after the resume point are the same lines too, and some were taken.
    const auto decisions = [](const std::string& dir) {
      std::ifstream in(dir + "/metrics.jsonl");
      std::vector<std::string> out;
      std::string line;
      while (std::getline(in, line))
        if (line.find("\"event\":\"capacity\"") != std::string::npos) out.push_back(line);
      return out;
    };
    const auto straight_decisions = decisions(temp + "straight");
    EXPECT_FALSE(straight_decisions.empty());
    EXPECT_EQ(straight_decisions, decisions(temp + "resumed"));
  }
}

}  // namespace

TEST(Resume, KStepsSaveResumeKStepsIsBitIdenticalToTwoK) {
  expect_bit_identical_resume("", /*compressed=*/false);
}

TEST(Resume, BitIdenticalWithGatesStatisticsAndALearnedScorer) {
  expect_bit_identical_resume("compressed_", /*compressed=*/true);
}

// Fine-tuning a learned scorer on a frozen backbone that unfreezes at train.unfreeze_at: resumed
// before the unfreeze (step 6 of 8) and after it (step 2), the checkpoint restores the groups
// and moments of what trained.
TEST(Resume, BitIdenticalAcrossTheBackboneUnfreeze) {
  for (const int64_t unfreeze_at : {2, 6}) {
    OptimizerOptions optimizer;
    optimizer.freeze = "backbone";
    optimizer.unfreeze_at = unfreeze_at;
    optimizer.backbone_lr_scale = 0.5;
    expect_bit_identical_resume("unfreeze" + std::to_string(unfreeze_at) + "_",
                                /*compressed=*/true, /*coschedule=*/false, /*saliency=*/false,
                                optimizer);
  }
}

TEST(Resume, BitIdenticalWithTheCoScheduler) {
  expect_bit_identical_resume("coschedule_", /*compressed=*/true, /*coschedule=*/true);
}

// coschedule.cost = time: the resumed run decides from the timing table in the checkpoint.
TEST(Resume, BitIdenticalWithTheCoSchedulerOnMeasuredTime) {
  expect_bit_identical_resume("coschedule_time_", /*compressed=*/true, /*coschedule=*/true,
                              /*saliency=*/false, OptimizerOptions{}, /*thresholds=*/false,
                              /*timed=*/true);
}

TEST(Resume, BitIdenticalWithASaliencyTable) {
  expect_bit_identical_resume("saliency_", /*compressed=*/true, /*coschedule=*/false,
                              /*saliency=*/true);
}

TEST(Resume, BitIdenticalWithLearnedThresholds) {
  OptimizerOptions optimizer;
  optimizer.threshold_lr = 1e-2;
  expect_bit_identical_resume("thresholds_", /*compressed=*/true, /*coschedule=*/false,
                              /*saliency=*/false, optimizer, /*thresholds=*/true);
}

// θ is saved under its stable name compress.<stage>.<layer>.threshold with its optimizer state,
// and a fresh model (other θ) loads it back.
TEST(Checkpoint, LearnedThresholdsRoundTrip) {
  auto comm = dist::make_communicator("local");
  auto options = quick(3);
  options.run_dir = fresh_dir("thresholds");
  options.checkpoint.dir = options.run_dir + "/checkpoints";
  auto model = small_vit(4);
  auto parts = thresholds_for(*model);
  OptimizerOptions optimizer;
  optimizer.threshold_lr = 1e-2;
  Trainer trainer(model, images(64), nullptr, comm, options, optimizer);
  trainer.set_planner(parts.planner);
  trainer.set_flops_regularizer(parts.flops);
  const auto summary = trainer.run();
  const auto theta = model->named_parameters()["compress.ltmp.2.threshold"];
  EXPECT_NE(theta.item<double>(), 1.0f / 17.0f);  // it trained
  const auto saved = summarize_checkpoint(summary.last_checkpoint, /*verify_checksums=*/true);
  EXPECT_TRUE(
      std::any_of(saved.tensors.begin(), saved.tensors.end(),
                  [](const CheckpointTensor& t) { return t.name == "compress.ltmp.1.threshold"; }));
  EXPECT_TRUE(has_state(trainer.optimizer(), theta));
  auto fresh = small_vit(4);
  auto fresh_parts = thresholds_for(*fresh);
  read_checkpoint(summary.last_checkpoint, *fresh, nullptr);
  for (const auto* name : {"compress.ltmp.1.threshold", "compress.ltmp.2.threshold"})
    EXPECT_TRUE(torch::equal(fresh->named_parameters()[name], model->named_parameters()[name]))
        << name;
}

// A learned component's parameters are model parameters under compress.*: in the checkpoint's
// model tensors (so `winnow inspect` lists them), with optimizer state; /compression holds the
// monitor's state.
TEST(Checkpoint, CompressionParametersAndStateAreSaved) {
  auto comm = dist::make_communicator("local");
  auto options = quick(2);
  options.run_dir = fresh_dir("components");
  options.checkpoint.dir = options.run_dir + "/checkpoints";
  auto model = small_vit(4);
  auto parts = compression_for(*model);
  Trainer trainer(model, images(64), nullptr, comm, options, OptimizerOptions{});
  trainer.set_planner(parts.planner);
  trainer.set_monitor(parts.monitor);
  const auto summary = trainer.run();
  const auto saved = summarize_checkpoint(summary.last_checkpoint, /*verify_checksums=*/true);
  const auto has_tensor = [&](const std::string& name) {
    return std::any_of(saved.tensors.begin(), saved.tensors.end(),
                       [&](const CheckpointTensor& t) { return t.name == name; });
  };
  EXPECT_TRUE(has_tensor("compress.scorer.1.score.weight"));
  EXPECT_TRUE(has_tensor("compress.scorer.2.norm.bias"));
  EXPECT_TRUE(
      has_state(trainer.optimizer(), model->named_parameters()["compress.scorer.1.score.weight"]));
  EXPECT_FALSE(saved.compression.empty());
  EXPECT_TRUE(
      std::any_of(saved.compression.begin(), saved.compression.end(),
                  [](const CheckpointTensor& t) { return t.name.rfind("monitor.", 0) == 0; }));
  EXPECT_EQ(saved.optimizer_entries, static_cast<int64_t>(model->parameters().size()));
}

TEST(Resume, StopSignalSavesAfterTheCurrentStepAndStops) {
  auto comm = dist::make_communicator("local");
  auto options = quick(10);
  options.run_dir = fresh_dir("signal");
  options.checkpoint.dir = options.run_dir + "/checkpoints";
  options.checkpoint.every = 0;
  int polls = 0;
  Trainer trainer(small_vit(), images(256), nullptr, comm, options, OptimizerOptions{});
  trainer.set_stop_signal([&polls] { return ++polls >= 3 ? SIGUSR1 : 0; });
  const auto summary = trainer.run();
  EXPECT_TRUE(summary.stopped_early);
  EXPECT_EQ(summary.stop_signal, SIGUSR1);
  EXPECT_EQ(summary.last_step, 3);
  const auto meta = read_checkpoint_meta(summary.last_checkpoint);
  EXPECT_EQ(meta.step, 3);
  EXPECT_EQ(meta.reason, "signal SIGUSR1");
}

TEST(Resume, IntervalCheckpointsFollowTheConfiguredSteps) {
  auto comm = dist::make_communicator("local");
  auto options = quick(7);
  options.run_dir = fresh_dir("interval");
  options.checkpoint.dir = options.run_dir + "/checkpoints";
  options.checkpoint.every = 3;
  options.checkpoint.keep = 0;
  Trainer trainer(small_vit(), images(256), nullptr, comm, options, OptimizerOptions{});
  const auto summary = trainer.run();
  CheckpointDirectory directory(options.checkpoint.dir, 0);
  EXPECT_EQ(directory.checkpoints(),
            (std::vector<std::string>{directory.path_for(7), directory.path_for(6),
                                      directory.path_for(3)}));
  EXPECT_EQ(summary.checkpoints_written, 3);
  EXPECT_EQ(read_checkpoint_meta(directory.path_for(7)).reason, "end");
}

TEST(Resume, TimedCheckpointsAreDecidedByRankZerosClock) {
  auto comm = dist::make_communicator("local");
  auto options = quick(3);
  options.run_dir = fresh_dir("timed");
  options.checkpoint.dir = options.run_dir + "/checkpoints";
  options.checkpoint.every = 0;
  options.checkpoint.at_end = false;
  options.checkpoint.keep = 0;
  options.checkpoint.minutes = 1e-9;  // due after every step
  Trainer trainer(small_vit(), images(256), nullptr, comm, options, OptimizerOptions{});
  trainer.run();
  CheckpointDirectory directory(options.checkpoint.dir, 0);
  ASSERT_EQ(directory.checkpoints().size(), 3u);
  for (const auto& path : directory.checkpoints())
    EXPECT_EQ(read_checkpoint_meta(path).reason, "time");

  auto hourly = quick(3);
  hourly.run_dir = fresh_dir("hourly");
  hourly.checkpoint.dir = hourly.run_dir + "/checkpoints";
  hourly.checkpoint.every = 0;
  hourly.checkpoint.at_end = false;
  hourly.checkpoint.minutes = 60;
  Trainer quiet(small_vit(), images(256), nullptr, comm, hourly, OptimizerOptions{});
  EXPECT_EQ(quiet.run().checkpoints_written, 0);
}
