// Study files: grid expansion and cell names, bad study files refused naming the cell and the
// option, and the report's mean and std over seeds from known summaries.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "launch/config.h"
#include "launch/study_file.h"
#include "launch/study_report.h"
#include "launch/study_run.h"

using namespace winnow::launch;
using testing::HasSubstr;

namespace {

std::string write_file(const std::string& name, const std::string& text) {
  const std::string path = testing::TempDir() + "/winnow_study_" + name;
  std::ofstream(path) << text;
  return path;
}

std::string base_config() {
  return write_file(
      "base.ini",
      "[data]\nsynthetic = images\n[model]\ndim = 16\ndepth = 2\nheads = 2\n"
      "patch = 7\n[train]\nsteps = 10\nglobal_batch = 8\n[optim]\nwarmup_steps = 1\n");
}

std::vector<std::string> names(const std::vector<StudyCell>& cells) {
  std::vector<std::string> out;
  for (const auto& c : cells) out.push_back(c.name);
  return out;
}

// The error validate_cells (or the parser) raises for a study, or "no error".
std::string study_error(const std::string& body) {
  try {
    auto study = parse_study_file("[study]\nconfig = " + base_config() + "\n" + body, "s.ini");
    validate_cells(study, expand_cells(study), 1);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST(StudyFile, GridExpandsLastOptionFastestWithReadableNames) {
  auto study = parse_study_file(
      "[study]\nconfig = base.ini\n[grid]\ncompress.criterion = norm, random\n"
      "compress.keep = 0.5 0.7\ntrain.seed = 1 2\n",
      "s.ini");
  auto cells = expand_cells(study);
  ASSERT_EQ(cells.size(), 8u);
  EXPECT_EQ(cells[0].name, "criterion=norm,keep=0.5,seed=1");
  EXPECT_EQ(cells[1].name, "criterion=norm,keep=0.5,seed=2");
  EXPECT_EQ(cells[2].name, "criterion=norm,keep=0.7,seed=1");
  EXPECT_EQ(cells[7].name, "criterion=random,keep=0.7,seed=2");
  EXPECT_THAT(
      cell_train_options(cells[7]),
      testing::ElementsAre("--compress.criterion=random", "--compress.keep=0.7", "--train.seed=2"));
  // Stable: the same file gives the same names.
  EXPECT_EQ(names(expand_cells(study)), names(cells));
}

TEST(StudyFile, VariantsAreOutermostAndGridOverridesVariantOverridesOptions) {
  auto study = parse_study_file(
      "[study]\nconfig = base.ini\n[options]\ntrain.steps = 700\ngate.gamma = 0.1\n"
      "[grid]\ntrain.seed = 0 1\n[variant.dense]\n[variant.pld]\ngate.kind = pld\n"
      "gate.gamma = 0.005\n[variant.cut]\ntrain.steps = 450\ntrain.seed = 9\n",
      "s.ini");
  auto cells = expand_cells(study);
  EXPECT_THAT(names(cells), testing::ElementsAre("dense,seed=0", "dense,seed=1", "pld,seed=0",
                                                 "pld,seed=1", "cut,seed=0", "cut,seed=1"));
  EXPECT_THAT(cell_train_options(cells[2]),
              testing::ElementsAre("--train.steps=700", "--gate.gamma=0.005", "--gate.kind=pld",
                                   "--train.seed=0"));
  EXPECT_THAT(cell_train_options(cells[5]),
              testing::ElementsAre("--train.steps=450", "--gate.gamma=0.1", "--train.seed=1"));
}

TEST(StudyFile, NamesAreFilesystemSafeAndClashingKeysSpelledOut) {
  auto study = parse_study_file(
      "[study]\nconfig = b.ini\n[grid]\ncompress.keep = \"0.9,0.7\" 0.5\n"
      "stage.pool.keep = 0.3\ndata.train = a/b.h5\n",
      "s.ini");
  auto cells = expand_cells(study);
  ASSERT_EQ(cells.size(), 2u);
  EXPECT_EQ(cells[0].name, "compress.keep=0.9_0.7,stage.pool.keep=0.3,train=a_b.h5");
  EXPECT_EQ(cell_train_options(cells[0])[0], "--compress.keep=0.9,0.7");  // value unchanged
  // Two values that only differ where names are sanitised would share a directory.
  auto clash = parse_study_file("[study]\nconfig = b.ini\n[grid]\ndata.train = a/b a_b\n", "s.ini");
  EXPECT_THROW(expand_cells(clash), ConfigError);
}

TEST(StudyFile, BadStudyFilesAreRefusedNamingTheProblem) {
  EXPECT_THAT(study_error(""), HasSubstr("empty grid"));
  EXPECT_THAT(study_error("[grid]\ntrain.seed =\n"), HasSubstr("expected at least one value"));
  EXPECT_THAT(study_error("[grid]\ntrain.seed = 1 1\n"), HasSubstr("'1' is given twice"));
  EXPECT_THAT(study_error("[grids]\n"), HasSubstr("got [grids]"));
  EXPECT_THAT(study_error("[grid]\ntrain.run_dir = x\n"), HasSubstr("set by the study"));
  EXPECT_THAT(study_error("[variant.a b]\n"), HasSubstr("variant name"));
  try {
    parse_study_file("[grid]\ntrain.seed = 1\n", "s.ini");
    ADD_FAILURE() << "no base config accepted";
  } catch (const ConfigError& e) {
    EXPECT_THAT(e.what(), HasSubstr("config = FILE"));
  }
}

TEST(StudyFile, EveryCellIsValidatedWithWinnowsOwnConfigParsing) {
  EXPECT_EQ(study_error("[grid]\ncompress.keep = 0.5 0.7\ntrain.seed = 0 1\n"), "no error");
  // An unknown option: the cell and the option.
  auto error = study_error("[grid]\ntrain.seed = 0 1\n[variant.a]\ncompress.bogus = 1\n");
  EXPECT_THAT(error, HasSubstr("cell 'a,seed=0'"));
  EXPECT_THAT(error, HasSubstr("compress.bogus"));
  // A value of the wrong type, only in the second value of the grid.
  error = study_error("[grid]\nmodel.dim = 16 abc\n");
  EXPECT_THAT(error, HasSubstr("cell 'dim=abc'"));
  EXPECT_THAT(error, HasSubstr("model.dim"));
  // A value its check refuses (the option table), and one validate()'s cross-checks refuse.
  error = study_error("[grid]\ntrain.seed = 0\nmonitor.ema = 0.5 1.5\n");
  EXPECT_THAT(error, HasSubstr("cell 'seed=0,ema=1.5'"));
  EXPECT_THAT(error, HasSubstr("monitor.ema: expected a decay in [0, 1)"));
  EXPECT_THAT(study_error("[grid]\nmodel.heads = 2 3\n"), HasSubstr("cell 'heads=3': model.dim"));
  // An unknown token criterion and a bad list.
  error = study_error("[grid]\ncompress.criterion = norm magic\n");
  EXPECT_THAT(error, HasSubstr("cell 'criterion=magic': compress.criterion: expected one of"));
  EXPECT_THAT(study_error("[grid]\ngate.layers = 1,2 x\n"), HasSubstr("gate.layers"));
}

TEST(StudyRun, CellStatesAndCommands) {
  const std::string dir = testing::TempDir() + "/winnow_study_cell";
  std::filesystem::remove_all(dir);
  EXPECT_EQ(cell_state(dir), CellState::kNew);
  std::filesystem::create_directories(dir + "/checkpoints");
  EXPECT_EQ(cell_state(dir), CellState::kNew);
  std::ofstream(dir + "/checkpoints/step-5.h5") << "x";
  EXPECT_EQ(cell_state(dir), CellState::kInterrupted);
  std::ofstream(dir + "/summary.json") << "{}";
  EXPECT_EQ(cell_state(dir), CellState::kDone);

  auto study = parse_study_file("[study]\nconfig = b.ini\n[grid]\ntrain.seed = 3\n", "s.ini");
  const auto cell = expand_cells(study)[0];
  StudyRunOptions options;
  options.winnow = "/bin/winnow";
  options.launcher = "/l/winnow-mpirun";
  EXPECT_THAT(cell_command(study, cell, "S/seed=3", CellState::kNew, options),
              testing::ElementsAre("/bin/winnow", "train", "--config", "b.ini", "--train.run_dir",
                                   "S/seed=3", "--train.seed=3"));
  options.ranks = 2;
  EXPECT_THAT(cell_command(study, cell, "S/seed=3", CellState::kInterrupted, options),
              testing::ElementsAre("/l/winnow-mpirun", "--winnow", "/bin/winnow", "-n", "2", "--",
                                   "train", "--config", "b.ini", "--train.run_dir", "S/seed=3",
                                   "--resume", "S/seed=3", "--train.seed=3"));
}

// [study] init_from: a new cell starts from the weights, an interrupted one from its checkpoint
// (train refuses --resume with --init-from).
TEST(StudyRun, InitFromStartsNewCellsOnly) {
  auto study = parse_study_file(
      "[study]\nconfig = b.ini\ninit_from = dense/model.h5\n[grid]\ntrain.seed = 3\n", "s.ini");
  EXPECT_EQ(study.init_from, "dense/model.h5");
  const auto cell = expand_cells(study)[0];
  StudyRunOptions options;
  options.winnow = "/bin/winnow";
  EXPECT_THAT(cell_command(study, cell, "S/seed=3", CellState::kNew, options),
              testing::ElementsAre("/bin/winnow", "train", "--config", "b.ini", "--train.run_dir",
                                   "S/seed=3", "--init-from", "dense/model.h5", "--train.seed=3"));
  EXPECT_THAT(cell_command(study, cell, "S/seed=3", CellState::kInterrupted, options),
              testing::ElementsAre("/bin/winnow", "train", "--config", "b.ini", "--train.run_dir",
                                   "S/seed=3", "--resume", "S/seed=3", "--train.seed=3"));
}

TEST(StudyReport, SummariesAreReadWithAJsonParser) {
  auto path = write_file("summary.json",
                         "{\"event\":\"summary\",\"steps\":10,\"train_seconds\":2.5,"
                         "\"training_flops\":1.5e+12,\"eval_loss\":0.4,\"eval_accuracy\":0.875}\n");
  auto run = read_run_summary(path);
  EXPECT_EQ(run.metric, "eval_accuracy");
  EXPECT_DOUBLE_EQ(run.metric_value, 0.875);
  EXPECT_DOUBLE_EQ(run.training_flops, 1.5e12);
  EXPECT_DOUBLE_EQ(run.train_seconds, 2.5);
  path = write_file("summary_text.json",
                    "{\"train_seconds\":1,\"training_flops\":2,\"eval_loss\":3.25,"
                    "\"eval_accuracy\":0,\"eval_perplexity\":25.8}");
  run = read_run_summary(path);
  EXPECT_EQ(run.metric, "eval_loss");
  EXPECT_DOUBLE_EQ(run.metric_value, 3.25);
  try {
    read_run_summary(write_file("summary_bad.json", "{\"train_seconds\":1,\"eval_accuracy\":1}"));
    ADD_FAILURE() << "a summary without training_flops was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("expected a number 'training_flops'"));
  }
  EXPECT_THROW(read_run_summary(write_file("summary_cut.json", "{\"train_seconds\":")),
               std::runtime_error);
}

TEST(StudyReport, GroupsOverSeedsWithMeanAndSampleStd) {
  auto study = parse_study_file(
      "[study]\nconfig = b.ini\n[grid]\ncompress.keep = 0.5 0.7\ntrain.seed = 0 1 2\n"
      "[variant.tome]\n",
      "s.ini");
  const auto cells = expand_cells(study);
  ASSERT_EQ(cells.size(), 6u);
  // keep=0.5: accuracies 0.80, 0.82, 0.84 (mean 0.82, std 0.02); keep=0.7: one seed only.
  const double accuracy[] = {0.80, 0.82, 0.84, 0.90};
  std::vector<CellResult> results;
  for (size_t i = 0; i < 4; ++i) {
    CellResult r = cell_group(cells[i], true);
    r.summary.metric = "eval_accuracy";
    r.summary.metric_value = accuracy[i];
    r.summary.training_flops = 1e9 * static_cast<double>(i + 1);
    r.summary.train_seconds = 10.0;
    results.push_back(r);
  }
  EXPECT_EQ(results[0].group, "tome,keep=0.5");
  EXPECT_THAT(results[0].group_values, testing::ElementsAre(OptionValue{"variant", "tome"},
                                                            OptionValue{"compress.keep", "0.5"}));
  const auto groups = aggregate(results);
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].seeds, 3);
  EXPECT_NEAR(groups[0].metric_value.mean, 0.82, 1e-12);
  EXPECT_NEAR(groups[0].metric_value.std, 0.02, 1e-12);
  EXPECT_NEAR(groups[0].training_flops.mean, 2e9, 1e-3);
  EXPECT_NEAR(groups[0].training_flops.std, 1e9, 1e-3);
  EXPECT_DOUBLE_EQ(groups[0].train_seconds.std, 0.0);
  EXPECT_EQ(groups[1].name, "tome,keep=0.7");
  EXPECT_EQ(groups[1].seeds, 1);
  EXPECT_DOUBLE_EQ(groups[1].metric_value.mean, 0.90);
  EXPECT_DOUBLE_EQ(groups[1].metric_value.std, 0.0);

  std::ostringstream csv, markdown;
  write_report_csv(groups, csv);
  write_report_markdown(groups, markdown);
  EXPECT_THAT(csv.str(), HasSubstr("group,variant,compress.keep,seeds,metric,metric_mean,"));
  EXPECT_THAT(csv.str(),
              HasSubstr("\n\"tome,keep=0.5\",tome,0.5,3,eval_accuracy,0.82,0.02,2e+09,1e+09,"));
  EXPECT_THAT(markdown.str(), HasSubstr("| tome,keep=0.5 | 3 | 82.00 ± 2.00 |"));

  results.back().summary.metric = "eval_loss";
  EXPECT_THROW(aggregate(results), std::runtime_error);
}

TEST(StudyReport, MeasurementsAreAggregatedOverSeeds) {
  auto study = parse_study_file(
      "[study]\nconfig = b.ini\n[grid]\ncompress.keep = 0.5\ntrain.seed = 0 1\n", "s.ini");
  const auto cells = expand_cells(study);
  ASSERT_EQ(cells.size(), 2u);
  // Two seeds of a ViT with 2 layers on a 2x2 patch grid (5 tokens): throughput 100 and 140
  // samples/s (mean 120, std 28.28), speedups 1.2 and 1.4, peak 1 and 3 MiB (mean 2, std 1.41);
  // layer 1 keeps 3 and 2 tokens (fractions 0.6 and 0.4: mean 0.5).
  const char* summaries[] = {
      "{\"train_seconds\":1,\"training_flops\":2,\"eval_accuracy\":0.5,\"eval_loss\":1,"
      "\"peak_activation_bytes\":1048576,\"inference_samples_per_second\":100,"
      "\"dense_inference_samples_per_second\":80,\"inference_speedup\":1.2,"
      "\"dense_tokens\":5,\"kept_tokens_per_layer\":[5,3],\"patch_grid\":[2,2],"
      "\"kept_position_fraction\":[1,1,1,1,1, 1,1,0,0.5,0.5]}",
      "{\"train_seconds\":1,\"training_flops\":2,\"eval_accuracy\":0.7,\"eval_loss\":1,"
      "\"peak_activation_bytes\":3145728,\"inference_samples_per_second\":140,"
      "\"dense_inference_samples_per_second\":100,\"inference_speedup\":1.4,"
      "\"dense_tokens\":5,\"kept_tokens_per_layer\":[5,2],\"patch_grid\":[2,2],"
      "\"kept_position_fraction\":[1,1,1,1,1, 1,0,0,0.5,0.5]}"};
  std::vector<CellResult> results;
  for (size_t i = 0; i < 2; ++i) {
    CellResult r = cell_group(cells[i], false);
    r.summary =
        read_run_summary(write_file("measured" + std::to_string(i) + ".json", summaries[i]));
    results.push_back(r);
  }
  EXPECT_EQ(results[0].summary.kept_token_fraction, (std::vector<double>{1.0, 0.6}));
  const auto groups = aggregate(results);
  ASSERT_EQ(groups.size(), 1u);
  const auto& g = groups[0];
  EXPECT_DOUBLE_EQ(g.inference_samples_per_second.mean, 120.0);
  EXPECT_NEAR(g.inference_samples_per_second.std, 28.2842712474619, 1e-9);
  EXPECT_DOUBLE_EQ(g.dense_inference_samples_per_second.mean, 90.0);
  EXPECT_NEAR(g.inference_speedup.mean, 1.3, 1e-12);
  EXPECT_DOUBLE_EQ(g.peak_activation_bytes.mean, 2097152.0);
  EXPECT_NEAR(g.peak_activation_bytes.std, 1048576.0 * std::sqrt(2.0), 1e-6);
  ASSERT_EQ(g.kept_token_fraction.size(), 2u);
  EXPECT_DOUBLE_EQ(g.kept_token_fraction[1], 0.5);
  EXPECT_EQ(g.kept_position_fraction, (std::vector<double>{1, 1, 1, 1, 1, 1, 0.5, 0, 0.5, 0.5}));

  std::ostringstream csv, markdown, layers, positions;
  write_report_csv(groups, csv);
  write_report_markdown(groups, markdown);
  write_layers_csv(groups, layers);
  write_positions_csv(groups, positions);
  EXPECT_THAT(csv.str(), HasSubstr(",inference_samples_per_second_mean,"
                                   "inference_samples_per_second_std,"));
  EXPECT_THAT(csv.str(), HasSubstr(",120,28.2843,90,14.1421,1.3,0.141421,2.09715e+06,"));
  EXPECT_THAT(markdown.str(),
              HasSubstr("| 120.0 ± 28.3 | 90.0 ± 14.1 | 1.30 ± 0.14 | 2.00 ± 1.41 |"));
  EXPECT_EQ(layers.str(), "group,layer,kept_token_fraction\nkeep=0.5,0,1\nkeep=0.5,1,0.5\n");
  // Position 0 is the CLS token; 1..4 lie on the 2x2 grid row by row.
  EXPECT_THAT(positions.str(), HasSubstr("\nkeep=0.5,1,0,,,1\n"));
  EXPECT_THAT(positions.str(), HasSubstr("\nkeep=0.5,1,2,0,1,0\n"));
  EXPECT_THAT(positions.str(), HasSubstr("\nkeep=0.5,1,4,1,1,0.5\n"));

  // A summary from before the measurements: n/a in the table, no per-layer rows.
  results[1].summary = read_run_summary(write_file("old.json",
                                                   "{\"train_seconds\":1,\"training_flops\":2,"
                                                   "\"eval_accuracy\":0.7,\"eval_loss\":1}"));
  const auto mixed = aggregate(results);
  EXPECT_TRUE(std::isnan(mixed[0].inference_samples_per_second.mean));
  EXPECT_TRUE(mixed[0].kept_token_fraction.empty());
  std::ostringstream mixed_markdown;
  write_report_markdown(mixed, mixed_markdown);
  EXPECT_THAT(mixed_markdown.str(), HasSubstr("| n/a | n/a | n/a | n/a |"));
}
