// `winnow train`: trains a model from a config on one rank or many, evaluates, saves weights.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "data/atomic_file.h"
#include "dist/launch_environment.h"
#include "launch/commands.h"
#include "launch/config.h"
#include "launch/pruned_config.h"
#include "launch/run_setup.h"
#include "launch/stop_signals.h"
#include "launch/system_info.h"
#include "train/checkpoint.h"
#include "train/checkpoint_directory.h"
#include "train/metrics.h"
#include "train/metrics_lines.h"
#include "train/model_registry.h"
#include "train/model_weights.h"
#include "train/root_work.h"
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
            << "  malloc  " << active_allocator() << "\n"
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

namespace {

// The value of `--name VALUE` or `--name=VALUE` in args (before parsing: it selects the base
// configuration), or "".
std::string peek_option(const Args& args, const std::string& name) {
  std::string value;
  for (size_t i = 0; i + 1 < args.size(); ++i)
    if (args[i] == "--" + name) value = args[i + 1];
  for (const auto& a : args)
    if (a.rfind("--" + name + "=", 0) == 0) value = a.substr(name.size() + 3);
  return value;
}

// The stored config of what --resume names: a file, or the newest step file of a directory.
std::string resume_base_config(const std::string& resume) {
  namespace fs = std::filesystem;
  if (!fs::exists(resume)) throw ConfigError("--resume: '" + resume + "' does not exist");
  if (!fs::is_directory(resume)) return train::read_checkpoint_meta(resume).config_ini;
  std::string dir = resume;
  if (fs::is_directory(fs::path(dir) / "checkpoints"))
    dir = (fs::path(dir) / "checkpoints").string();
  const train::CheckpointDirectory directory(dir, 0);
  for (const auto& path : directory.checkpoints()) {
    try {
      return train::read_checkpoint_meta(path).config_ini;
    } catch (const c10::Error&) {
      // damaged: the trainer reports it when it falls back to an older one
    }
  }
  throw ConfigError("--resume: no readable checkpoint (step-*.h5) in '" + dir + "'");
}

// Testing: SIGKILL this process at `stage` of the save of `step` (a crash at the worst moment).
std::function<void(int64_t, train::SaveStage)> kill_injection(const CheckpointConfig& c) {
  if (c.kill_stage == "none") return {};
  return [stage = c.kill_stage, step = c.kill_step](int64_t saving, train::SaveStage s) {
    if (saving == step && stage == train::to_string(s)) std::raise(SIGKILL);
  };
}

}  // namespace

int train_command(const Args& args) {
  std::string resume, init_from;
  po::options_description extra("Resuming and fine-tuning");
  extra.add_options()(
      "resume", po::value(&resume)->value_name("DIR|FILE"),
      "continue from a checkpoint: a step-N.h5 file, or a run/checkpoint directory (its newest "
      "loadable checkpoint; a damaged newer one is skipped with a warning). Its stored config is "
      "the base configuration; options given here override it")(
      "init-from", po::value(&init_from)->value_name("FILE"),
      "start from these model weights (a checkpoint, model.h5 or `winnow import` output) with a "
      "fresh optimizer and schedule: fine-tuning. The backbone must match; learned compression "
      "components (compress.*) the file lacks start fresh, those it holds are loaded (e.g. a "
      "dense model.h5 and --compress.criterion predictor --train.freeze backbone)");
  const std::string resume_arg = peek_option(args, "resume");
  const std::string base = resume_arg.empty() ? std::string() : resume_base_config(resume_arg);

  RunConfig config;
  bool help = false;
  parse_run_config(args, extra, config, help, base);
  if (help) {
    std::cout
        << "usage: winnow train [--config FILE] [--resume DIR|FILE] [--section.key=value ...]\n\n"
           "Trains a ViT on images or a GPT on token streams, data-parallel over MPI ranks when\n"
           "started with mpirun/srun. Example: winnow train --config "
           "launch/configs/vit-fashion-mnist.ini\n\n"
           "Checkpoints go to <run_dir>/checkpoints every checkpoint.every steps, every\n"
           "checkpoint.minutes, at the end, and on SIGTERM/SIGUSR1 (then the run stops after the\n"
           "current step on every rank and exits with 128 + the signal number). Resume with\n"
           "--resume <run_dir>.\n\n"
        << extra << run_options(config) << std::endl;
    return 0;
  }
  if (!resume.empty() && !init_from.empty())
    throw ConfigError(
        "--resume and --init-from: give one (resume continues a run; init-from "
        "starts a new one from weights)");
  auto comm = start_communicator(config);
  validate(config, comm->world_size());
  auto data = open_run_data(config);
  torch::manual_seed(config.train.seed);
  auto model = train::make_model(data.model);
  auto compression = make_compression(config, data.model, *model);
  const bool root = comm->is_root();

  // The run directory exists before anyone writes to it (run_on_root waits for rank 0).
  train::run_on_root(
      *comm,
      [&] {
        if (config.train.run_dir.empty()) return;
        std::filesystem::create_directories(config.train.run_dir);
        data::write_file_atomically(config.train.run_dir + "/config.ini", to_ini(config));
      },
      [&](const std::string& reason) {
        return "cannot set up the run directory " + config.train.run_dir + ": " + reason;
      });
  if (root) {
    print_run_header(config, data, *model, *comm);
    std::cout << "  plan    " << compression.planner->describe() << std::endl;
  }
  if (!init_from.empty()) {
    const auto load = train::load_backbone_weights(*model, init_from);
    if (root) {
      std::cout << "  weights " << init_from << " (fine-tuning: fresh optimizer; backbone "
                << load.backbone_tensors << " tensors";
      if (!load.loaded_components.empty())
        std::cout << ", compression components " << load.loaded_components.size()
                  << " tensors loaded";
      if (!load.fresh_components.empty())
        std::cout << ", compression components " << load.fresh_components.size()
                  << " tensors not in the file: freshly initialised";
      if (!load.ignored_components.empty())
        std::cout << ", " << load.ignored_components.size()
                  << " compression tensors of the file not in this configuration: ignored";
      std::cout << ")\n";
    }
  }

  train::TrainerOptions trainer_options = config.train;
  trainer_options.prefetch = config.data.prefetch;
  // A live progress line only on a real terminal: mpirun hands ranks a pseudo-terminal even when
  // its own output goes to a log file, so under a launcher progress is plain lines.
  trainer_options.progress_live = isatty(STDOUT_FILENO) && !dist::started_by_mpi_launcher();
  auto& checkpointing = trainer_options.checkpoint;
  checkpointing.dir =
      config.checkpoint.dir == "auto"
          ? (config.train.run_dir.empty() ? "" : config.train.run_dir + "/checkpoints")
          : (config.checkpoint.dir == "none" ? "" : config.checkpoint.dir);
  checkpointing.every = config.checkpoint.every;
  checkpointing.minutes = config.checkpoint.minutes;
  checkpointing.keep = config.checkpoint.keep;
  checkpointing.at_end = config.checkpoint.at_end;
  checkpointing.config_ini = to_ini(config);
  checkpointing.token_schedule = compression.planner->describe();
  checkpointing.on_stage = kill_injection(config.checkpoint);
  train::Trainer trainer(model, data.train, data.eval, comm, trainer_options, config.optim);
  trainer.set_planner(compression.planner);
  trainer.set_monitor(compression.monitor);
  trainer.set_model_factory([spec = data.model](int64_t depth) {
    auto smaller = spec;
    smaller.depth = depth;
    return train::make_model(smaller);
  });
  if (auto distillation = make_distillation(config, data.model)) {
    trainer.set_distillation(distillation);
    if (root)
      std::cout << "  teacher " << config.distill.teacher
                << " (frozen; distillation weights: logits " << config.distill.logits_weight
                << ", tokens " << config.distill.tokens_weight << ")" << std::endl;
  }
  if (config.compress.flops.enabled()) {
    trainer.set_flops_regularizer(std::make_shared<train::FlopsRegularizer>(
        config.compress.flops, model->dense_block_flops_per_sample()));
    if (root)
      std::cout << "  FLOPs regulariser: target " << config.compress.flops.target
                << " of the dense block FLOPs, weight " << config.compress.flops.weight
                << std::endl;
  }
  trainer.set_stop_signal(pending_stop_signal);
  if (!resume.empty()) {
    trainer.resume(resume);
    if (trainer.start_step() >= config.train.steps) {
      if (root)
        std::cout << "nothing to do: the run already completed its " << config.train.steps
                  << " steps (give --train.steps with a larger value to train further)"
                  << std::endl;
      comm->barrier();
      return 0;
    }
  }
  if (resume.empty()) {
    const auto start = std::chrono::steady_clock::now();
    const auto timing = measure_planner_costs(config, *compression.planner, *model, *comm);
    if (root && !timing.empty())
      std::cout << "  timing  coschedule.cost=time, measured in "
                << std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()
                << " s (max over ranks): " << timing.describe() << std::endl;
  }
  // From here a stop signal saves and stops in lockstep. Before, it ends the process at once:
  // there is nothing to save yet, and a setup step stuck in a damaged file cannot hold it.
  install_stop_signal_handlers();
  auto summary = trainer.run();

  if (summary.stopped_early) {
    if (root) {
      std::cout << "stopped after step " << summary.last_step << " of " << config.train.steps;
      if (summary.stop_signal != 0)
        std::cout << " on " << stop_signal_name(summary.stop_signal)
                  << " (every rank, in lockstep)";
      if (!summary.last_checkpoint.empty())
        std::cout << "\n  checkpoint     " << summary.last_checkpoint
                  << "\n  continue with  winnow train --resume "
                  << (config.train.run_dir.empty() ? trainer_options.checkpoint.dir
                                                   : config.train.run_dir);
      else
        std::cout << "\n  no checkpoint was written (checkpoint.dir is none)";
      std::cout << std::endl;
    }
    comm->barrier();
    return summary.stop_signal != 0 ? 128 + summary.stop_signal : 0;
  }

  if (root) {
    const train::TaskUnits units = trainer.model().task_units();
    std::cout << "==== summary ====\n"
              << "  steps          " << summary.steps << " (" << summary.skipped_steps
              << " skipped)\n"
              << "  training time  " << train::format_duration(summary.train_seconds) << " ("
              << summary.train_seconds << " s)\n"
              << "  throughput     " << summary.samples_per_second << " " << units.sample_name
              << "/s (" << comm->world_size() << " ranks)\n"
              << "  training FLOPs " << si(summary.training_flops)
              << "FLOP (analytic, forward + backward)\n"
              << "  comm. share    " << 100.0 * summary.comm_fraction
              << "% of step time in gradient all-reduce\n"
              << "  final loss     " << summary.final_loss << "\n";
    if (summary.checkpoints_written > 0)
      std::cout << "  checkpoints    " << summary.checkpoints_written << " written in "
                << summary.checkpoint_seconds << " s ("
                << 100.0 * summary.checkpoint_seconds /
                       std::max(1e-9, summary.train_seconds + summary.checkpoint_seconds)
                << "% of training time), newest " << summary.last_checkpoint << "\n";
    std::cout << "  peak activations " << si(static_cast<double>(summary.peak_activation_bytes))
              << "B (largest step, forward + backward, above the bytes live at its start)\n";
    if (summary.inference.measured())
      std::cout << "  "
                << train::inference_speed_line(summary.inference, units,
                                               summary.eval.flops_speedup())
                << "\n";
    if (data.eval) {
      if (units.perplexity) {
        std::cout << "  eval loss      " << summary.eval.loss << " (perplexity "
                  << summary.eval.perplexity << ")\n";
      } else {
        std::cout << "  eval accuracy  " << 100.0 * summary.eval.accuracy << "% ("
                  << summary.eval.samples << " samples, loss " << summary.eval.loss << ")\n";
      }
    }
    std::cout << std::flush;
  }
  // The final files: rank 0 writes them, every rank learns whether that worked (a full disk ends
  // the job on every rank with one message and exit code 1; each file is replaced atomically).
  if (!config.train.run_dir.empty()) {
    const std::string weights = config.train.run_dir + "/model.h5";
    // A closed-loop planner's final structure is part of the model: stored with the weights
    // (after a heal that removed blocks, the smaller model's configuration, as `winnow prune`
    // writes it).
    RunConfig stored = config;
    const auto capacities = trainer.planner()->capacities();
    if (!trainer.removed_layers().empty()) {
      stored = config_without_layers(config, data.model.depth, trainer.kept_layers(), capacities);
    } else if (!capacities.empty()) {
      std::ostringstream list;
      for (size_t l = 0; l < capacities.size(); ++l) list << (l ? "," : "") << capacities[l];
      stored.coschedule.capacities = list.str();
    }
    train::run_on_root(
        *comm,
        [&] {
          train::save_model_weights(trainer.model(), weights, to_ini(stored));
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
              .add("checkpoints_written", summary.checkpoints_written)
              .add("checkpoint_seconds", summary.checkpoint_seconds)
              .add("final_loss", summary.final_loss)
              .add("eval_loss", summary.eval.loss)
              .add("eval_accuracy", summary.eval.accuracy);
          if (trainer.model().task_units().perplexity)
            line.add("eval_perplexity", summary.eval.perplexity);
          for (const auto& [name, value] : summary.eval.metrics) line.add("eval_" + name, value);
          train::add_run_measurements(line, summary);
          data::write_file_atomically(config.train.run_dir + "/summary.json", line.str() + "\n");
        },
        [&](const std::string& reason) {
          std::string message = "saving the trained model failed: " + reason;
          if (summary.checkpoints_written > 0)
            message += "; the weights are also in the checkpoint " + summary.last_checkpoint;
          return message;
        });
    if (root)
      std::cout << "  saved          " << weights << ", " << config.train.run_dir
                << "/metrics.jsonl, summary.json\n"
                << std::flush;
  }
  comm->barrier();
  return 0;
}

}  // namespace winnow::launch
