// Shared set-up of the run subcommands.
#include "launch/run_setup.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <thread>

#include "compression/co_scheduler.h"
#include "data/data_file.h"
#include "data/synthetic_dataset.h"
#include "launch/planner_registry.h"
#include "launch/stored_model.h"
#include "train/block_timing.h"
#include "train/root_work.h"

namespace winnow::launch {

std::shared_ptr<dist::Communicator>& active_communicator() {
  static std::shared_ptr<dist::Communicator> comm;
  return comm;
}

int threads_per_rank(const RunConfig& config, const dist::Communicator& comm) {
  if (config.dist.threads > 0) return static_cast<int>(config.dist.threads);
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return std::max(1, cores / std::max(1, comm.local_size()));
}

std::shared_ptr<dist::Communicator> start_communicator(const RunConfig& config) {
  dist::CommunicatorOptions options;
  options.collective_timeout_seconds = config.dist.timeout;
  auto comm = dist::make_communicator(config.dist.backend, options);
  active_communicator() = comm;
  const int threads = threads_per_rank(config, *comm);
  torch::set_num_threads(threads);
  return comm;
}

RunData open_run_data(const RunConfig& config) {
  RunData run;
  train::ModelSpec& spec = run.model;
  spec = config.model;  // the [model] options; the data fills in the rest below
  spec.context = config.data.context;

  if (config.data.synthetic == "images") {
    data::SyntheticImageOptions o;
    o.size = config.data.synthetic_samples;
    o.seed = config.train.seed;
    run.train = std::make_shared<data::SyntheticImageDataset>(o);
    o.size = std::max<int64_t>(1, o.size / 8);
    o.split = 1;  // held out: same classes, other samples
    run.eval = std::make_shared<data::SyntheticImageDataset>(o);
  } else if (config.data.synthetic == "text") {
    data::SyntheticTokenOptions o;
    o.num_windows = config.data.synthetic_samples;
    o.context_length = config.data.context;
    o.seed = config.train.seed;
    run.train = data::make_synthetic_token_dataset(o);
    o.num_windows = std::max<int64_t>(1, o.num_windows / 8);
    o.split = 1;  // held out: same chain, another stream
    run.eval = data::make_synthetic_token_dataset(o);
  }
  // Files: the training set unless synthetic, and data.eval when given (also beside synthetic
  // training data: `winnow eval --data.eval FILE` of a synthetic run evaluates on FILE).
  const bool synthetic = !config.data.synthetic.empty() && config.data.synthetic != "none";
  auto load = [&] {
    if (!synthetic) run.train = data::open_data_file(config.data.train, config.data.context);
    if (!config.data.eval.empty())
      run.eval = data::open_data_file(config.data.eval, config.data.context);
  };
  // Every rank reads the files; a file that fails on one rank (damaged, or another copy on that
  // node) ends every rank with one message instead of leaving the others waiting.
  if (auto& comm = active_communicator()) {
    train::run_on_every_rank(
        *comm, load, [](const std::string& reason) { return "cannot load the data: " + reason; });
  } else {
    load();
  }

  const data::SampleShape train_shape = run.train->sample_shape();
  if (train_shape.images()) {
    spec.image_channels = train_shape.image_shape.at(0);
    spec.image_height = train_shape.image_shape.at(1);
    spec.image_width = train_shape.image_shape.at(2);
    spec.num_classes = train_shape.num_classes;
  } else {
    spec.vocab_size = train_shape.vocab_size;
  }
  TORCH_CHECK(train_shape.images() == (spec.kind == "vit"), "model.kind=", spec.kind,
              " does not fit the training data ", run.train->describe(),
              ": images need model.kind=vit, token streams model.kind=gpt");
  if (run.eval) {
    const data::SampleShape eval_shape = run.eval->sample_shape();
    TORCH_CHECK(eval_shape.kind == train_shape.kind, "data.eval ", run.eval->describe(),
                " is not the same kind of data as data.train ", run.train->describe());
    TORCH_CHECK(eval_shape.image_shape == train_shape.image_shape, "data.eval ",
                run.eval->describe(), " has images of another shape than data.train ",
                run.train->describe());
    TORCH_CHECK(eval_shape.vocab_size <= spec.vocab_size, "data.eval ", run.eval->describe(),
                " has token ids up to ", eval_shape.vocab_size - 1,
                ", beyond the model's vocabulary of ", spec.vocab_size, " (data.train ",
                run.train->describe(), ")");
  }
  return run;
}

compression::ModelShape model_shape(const train::ModelSpec& spec) {
  const bool vit = spec.kind == "vit";
  compression::ModelShape shape;
  shape.depth = spec.depth;
  shape.width = spec.dim;
  shape.grid_height = vit ? spec.image_height / spec.patch : 0;
  shape.grid_width = vit ? spec.image_width / spec.patch : 0;
  shape.mlp_hidden = static_cast<int64_t>(static_cast<double>(spec.dim) * spec.mlp_ratio);
  shape.protected_tokens = vit ? 1 : 0;  // the CLS token
  shape.tokens = vit ? shape.grid_height * shape.grid_width + 1 : spec.context;
  shape.vocab = vit ? 0 : spec.vocab_size;
  return shape;
}

std::shared_ptr<compression::Planner> make_planner(const RunConfig& config,
                                                   const train::ModelSpec& spec) {
  const compression::ModelShape shape = model_shape(spec);
  const std::string planner = config.coschedule.planner.mode != "none" ? "coschedule" : "static";
  try {
    return planner_registry().create(planner, config, shape);
  } catch (const c10::Error& e) {
    throw ConfigError(e.msg());
  }
}

RunCompression make_compression(const RunConfig& config, const train::ModelSpec& spec,
                                train::TransformerModel& model) {
  RunCompression run;
  run.planner = make_planner(config, spec);
  if (config.monitor.statistics || run.planner->needs_statistics()) {
    auto options = monitor_options(config);
    options.taylor = options.taylor || run.planner->needs_taylor();
    try {
      run.monitor = std::make_shared<compression::TokenEvolutionMonitor>(spec.depth, options);
    } catch (const c10::Error& e) {
      throw ConfigError(e.msg());
    }
  }
  model.attach_compression(run.planner->parameters());
  return run;
}

compression::LayerTimingTable measure_planner_costs(const RunConfig& config,
                                                    compression::Planner& planner,
                                                    train::TransformerModel& model,
                                                    dist::Communicator& comm) {
  auto* coscheduler = dynamic_cast<compression::CoScheduler*>(&planner);
  if (coscheduler == nullptr || !coscheduler->timed()) return {};
  const auto ceil_div = [](int64_t a, int64_t b) { return (a + b - 1) / b; };
  train::BlockTimingOptions options;
  options.batch = std::max<int64_t>(
      1,
      ceil_div(ceil_div(config.train.global_batch, comm.world_size()), config.train.accumulation));
  options.token_counts = coscheduler->timing_token_counts();
  auto table = train::measure_block_times(model, options, comm);
  coscheduler->set_timing(table);
  return table;
}

std::shared_ptr<train::Distillation> make_distillation(const RunConfig& config,
                                                       const train::ModelSpec& student) {
  const auto& options = config.distill;
  if (!options.enabled()) return nullptr;
  StoredModel teacher = load_stored_model(options.teacher);
  const auto& t = teacher.spec;
  const auto refuse = [&](const std::string& what) {
    throw ConfigError("distill.teacher '" + options.teacher + "': " + what);
  };
  if (t.kind != student.kind)
    refuse("a " + t.kind + " model cannot teach a " + student.kind + " model");
  const int64_t teacher_outputs = t.kind == "vit" ? t.num_classes : t.vocab_size;
  const int64_t student_outputs = student.kind == "vit" ? student.num_classes : student.vocab_size;
  if (teacher_outputs != student_outputs)
    refuse("its logits have " + std::to_string(teacher_outputs) + " entries, the student's " +
           std::to_string(student_outputs) + " (classes or vocabulary must match)");
  if (options.tokens_weight > 0) {
    if (t.dim != student.dim)
      refuse("the token loss compares features of width " + std::to_string(student.dim) +
             ", the teacher's are " + std::to_string(t.dim) +
             " (set distill.tokens_weight=0 for logits only)");
    if (student.kind == "vit" &&
        (t.patch != student.patch || t.image_height != student.image_height ||
         t.image_width != student.image_width))
      refuse("the token loss needs the same patch grid as the student (patch " +
             std::to_string(student.patch) + " on " + std::to_string(student.image_height) + "x" +
             std::to_string(student.image_width) + ")");
  }
  return std::make_shared<train::Distillation>(teacher.model, options);
}

std::string si(double value) {
  const char* prefixes[] = {"", " k", " M", " G", " T", " P", " E"};
  int i = 0;
  while (std::abs(value) >= 1000.0 && i < 6) {
    value /= 1000.0;
    ++i;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g%s", value, prefixes[i]);
  return buf;
}

}  // namespace winnow::launch
