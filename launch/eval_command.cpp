// `winnow eval`: evaluates the weights a training run saved, on its evaluation set or another.
#include <iostream>

#include "launch/commands.h"
#include "launch/config.h"
#include "launch/run_setup.h"
#include "launch/stored_model.h"
#include "train/evaluate.h"
#include "train/inference_speed.h"
#include "train/model_weights.h"

namespace winnow::launch {
namespace po = boost::program_options;

int eval_command(const Args& args) {
  std::string weights;
  po::options_description extra("Evaluation");
  extra.add_options()(
      "weights", po::value(&weights)->value_name("FILE"),
      "model.h5 written by `winnow train` (its stored config is the base configuration)");
  // The stored config supplies the model shape and data; the command line may override them.
  const std::string base = weights_config_of_args(args);

  RunConfig config;
  bool help = false;
  parse_run_config(args, extra, config, help, base);
  if (help) {
    std::cout
        << "usage: winnow eval --weights RUN_DIR/model.h5 [--data.eval FILE] [options]\n\n"
           "Evaluates saved weights (top-1 accuracy for images, loss and perplexity for text).\n"
           "The model shape comes from the config stored with the weights.\n\n"
        << extra << run_options(config) << std::endl;
    return 0;
  }
  if (weights.empty()) throw ConfigError("--weights: required (the model.h5 of a training run)");
  auto comm = start_communicator(config);
  validate(config, comm->world_size());
  auto data = open_run_data(config);
  if (!data.eval) throw ConfigError("data.eval: no evaluation set; give --data.eval FILE");
  auto model = train::make_model(data.model);
  auto compression = make_compression(config, data.model, *model);
  train::load_model_weights(*model, weights);

  train::EvalOptions options;
  options.batch = config.train.eval_batch;
  options.max_samples = config.train.eval_max_samples;
  options.seed = config.train.seed;
  options.planner = compression.planner.get();
  options.flops_ratio = config.compress.flops.enabled();
  auto result = train::evaluate_model(*model, *data.eval, *comm, options);
  train::InferenceSpeedOptions inference;
  inference.batch = config.train.inference_batch;
  inference.rounds = config.train.inference_rounds;
  inference.seed = config.train.seed;
  inference.planner = compression.planner.get();
  const auto speed = train::measure_inference_speed(*model, *data.eval, *comm, inference);
  if (comm->is_root()) {
    std::cout << "eval " << data.eval->describe() << "\n  plan        "
              << compression.planner->plan(0, /*training=*/false).describe() << "\n  samples     "
              << result.samples << "\n  loss        " << result.loss << "\n";
    if (model->task_units().perplexity) {
      std::cout << "  perplexity  " << result.perplexity << "\n  next-token accuracy "
                << 100.0 * result.accuracy << "%\n";
    } else {
      std::cout << "  accuracy    " << 100.0 * result.accuracy << "%\n";
    }
    std::cout << "  FLOPs       " << si(result.forward_flops_per_sample) << " per sample ("
              << result.forward_flops_per_sample / result.dense_forward_flops_per_sample
              << " of dense " << si(result.dense_forward_flops_per_sample) << ")\n";
    for (const auto& [name, value] : result.metrics)
      std::cout << "  " << name << " " << value << "\n";
    std::cout << "  time        " << result.seconds << " s\n";
    if (speed.measured())
      std::cout << "  "
                << train::inference_speed_line(speed, model->task_units(), result.flops_speedup())
                << "\n";
    std::cout << std::flush;
  }
  return 0;
}

}  // namespace winnow::launch
