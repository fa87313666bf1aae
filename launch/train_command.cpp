// `winnow train`: trains a model from a config on one rank or many, evaluates, saves weights.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>

#include "dist/launch_environment.h"
#include "launch/commands.h"
#include "launch/config.h"
#include "launch/run_setup.h"
#include "launch/system_info.h"
#include "train/metrics.h"
#include "train/model_weights.h"
#include "train/trainer.h"

namespace winnow::launch {
namespace po = boost::program_options;

void print_run_header(const RunConfig& config, const RunData& data,
                      const train::TransformerModel& model, const dist::Communicator& comm) {
  int64_t parameters = 0;
  for (const auto& p : model.parameters()) parameters += p.numel();
  std::cout << "winnow train: " << comm.world_size() << " rank(s) [" << comm.backend_name()
            << "] x " << threads_per_rank(config, comm) << " thread(s)\n"
            << "  BLAS    " << loaded_blas() << "\n"
            << "  train   " << data.train->describe() << "\n";
  if (data.eval) std::cout << "  eval    " << data.eval->describe() << "\n";
  const double epochs = static_cast<double>(config.train.steps * config.train.global_batch) /
                        static_cast<double>(data.train->size());
  std::cout << "  model   " << model.kind() << ": " << si(static_cast<double>(parameters))
            << " parameters, " << model.depth() << " blocks x " << model.dense_tokens()
            << " tokens, " << si(model.dense_forward_flops_per_sample())
            << "FLOP forward per sample\n"
            << "  steps   " << config.train.steps << " x " << config.train.global_batch
            << " samples (" << epochs << " epochs)\n";
  std::cout << "---- effective configuration ----\n"
            << to_ini(config) << "---------------------------------" << std::endl;
}

int train_command(const Args& args) {
  RunConfig config;
  bool help = false;
  po::options_description extra;
  parse_run_config(args, extra, config, help);
  if (help) {
    std::cout
        << "usage: winnow train [--config FILE] [--section.key=value ...]\n\n"
           "Trains a ViT on images or a GPT on token streams, data-parallel over MPI ranks when\n"
           "started with mpirun/srun. Example: winnow train --config "
           "launch/configs/vit-fashion-mnist.ini\n\n"
        << run_options(config) << std::endl;
    return 0;
  }
  auto comm = start_communicator(config);
  validate(config, comm->world_size());
  auto data = open_run_data(config);
  torch::manual_seed(config.train.seed);
  auto model = train::make_model(data.model);
  auto reduction = make_reduction_schedule(config, data.model);
  const bool root = comm->is_root();

  if (root && !config.train.run_dir.empty()) {
    std::filesystem::create_directories(config.train.run_dir);
    std::ofstream(config.train.run_dir + "/config.ini") << to_ini(config);
  }
  comm->barrier();  // the run directory exists before anyone writes to it
  if (root) {
    print_run_header(config, data, *model, *comm);
    std::cout << "  tokens  " << reduction->describe() << std::endl;
  }

  train::TrainerOptions trainer_options = config.train;
  trainer_options.prefetch = config.data.prefetch;
  // A live progress line only on a real terminal: mpirun hands ranks a pseudo-terminal even when
  // its own output goes to a log file, so under a launcher progress is plain lines.
  trainer_options.progress_live = isatty(STDOUT_FILENO) && !dist::started_by_mpi_launcher();
  train::Trainer trainer(model, data.train, data.eval, comm, trainer_options, config.optim);
  trainer.set_reduction(reduction);
  auto summary = trainer.run();

  if (root) {
    const bool text = model->kind() == "gpt";
    std::cout << "==== summary ====\n"
              << "  steps          " << summary.steps << " (" << summary.skipped_steps
              << " skipped)\n"
              << "  training time  " << train::format_duration(summary.train_seconds) << " ("
              << summary.train_seconds << " s)\n"
              << "  throughput     " << summary.samples_per_second
              << (text ? " sequences/s" : " images/s") << " (" << comm->world_size() << " ranks)\n"
              << "  training FLOPs " << si(summary.training_flops)
              << "FLOP (analytic, forward + backward)\n"
              << "  comm. share    " << 100.0 * summary.comm_fraction
              << "% of step time in gradient all-reduce\n"
              << "  final loss     " << summary.final_loss << "\n";
    if (data.eval) {
      if (text) {
        std::cout << "  eval loss      " << summary.eval.loss << " (perplexity "
                  << summary.eval.perplexity << ")\n";
      } else {
        std::cout << "  eval accuracy  " << 100.0 * summary.eval.accuracy << "% ("
                  << summary.eval.samples << " samples, loss " << summary.eval.loss << ")\n";
      }
    }
    if (!config.train.run_dir.empty()) {
      const std::string weights = config.train.run_dir + "/model.h5";
      train::save_model_weights(*model, weights, to_ini(config));
      train::JsonLine line;
      line.add("event", "summary")
          .add("steps", summary.steps)
          .add("skipped_steps", summary.skipped_steps)
          .add("world_size", comm->world_size())
          .add("threads_per_rank", threads_per_rank(config, *comm))
          .add("train_seconds", summary.train_seconds)
          .add("samples_per_second", summary.samples_per_second)
          .add("training_flops", summary.training_flops)
          .add("comm_fraction", summary.comm_fraction)
          .add("final_loss", summary.final_loss)
          .add("eval_loss", summary.eval.loss)
          .add("eval_accuracy", summary.eval.accuracy);
      if (text) line.add("eval_perplexity", summary.eval.perplexity);
      std::ofstream(config.train.run_dir + "/summary.json") << line.str() << "\n";
      std::cout << "  saved          " << weights << ", " << config.train.run_dir
                << "/metrics.jsonl, summary.json\n";
    }
    std::cout << std::flush;
  }
  comm->barrier();
  return 0;
}

}  // namespace winnow::launch
