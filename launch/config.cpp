// Run configuration: options description, parsing, validation, INI output.
#include "launch/config.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <sstream>

#include "compression/criterion_registry.h"
#include "compression/strategy_registry.h"
#include "dist/communicator.h"

namespace winnow::launch {
namespace po = boost::program_options;

namespace {

// The keys of one stage of token reduction, under `prefix` (compress or stage.NAME): declared
// once for the [compress] section and every [stage.NAME] section.
void add_stage_options(po::options_description& section, StageSection& stage,
                       const std::string& prefix) {
  std::string criteria = "none", strategies;
  for (const auto& n : compression::known_criteria()) criteria += ", " + n;
  for (const auto& n : compression::known_strategies())
    strategies += (strategies.empty() ? "" : ", ") + n;
  auto& r = stage.reduction;
  auto name = [&prefix](const char* key) { return prefix + "." + key; };
  section.add_options()(name("criterion").c_str(),
                        po::value(&r.criterion)->default_value(r.criterion),
                        ("which tokens matter: " + criteria).c_str())(
      name("strategy").c_str(), po::value(&r.strategy)->default_value(r.strategy),
      ("what happens to the others: " + strategies).c_str())(
      name("site").c_str(), po::value(&r.site)->default_value(r.site),
      "auto | pre_block | post_attention | around_block (auto: route around the block, "
      "attention-based criteria after attention, others before the block)")(
      name("layers").c_str(), po::value(&stage.layers)->default_value(stage.layers),
      "reducing layers, e.g. 3,6,9 (empty: all but the first; route: all but the first and last)")(
      name("keep").c_str(), po::value(&stage.keep)->default_value(stage.keep),
      "fraction of reducible tokens each reducing layer keeps, in (0, 1]: one value or one per "
      "layer")(name("keep_schedule").c_str(),
               po::value(&r.keep_schedule)->default_value(r.keep_schedule),
               "list (keep: one value or one per layer) | linear (two values: first and last "
               "reducing layer, interpolated)")(name("fuse").c_str(),
                                                po::value(&r.fuse)->default_value(r.fuse),
                                                "prune: fuse the dropped tokens into one (EViT)")(
      name("descending_order").c_str(),
      po::value(&r.descending_order)->default_value(r.descending_order),
      "prune: order kept tokens by descending score (EViT) instead of position")(
      name("keep_order").c_str(), po::value(&r.keep_order)->default_value(r.keep_order),
      "merge: keep the tokens' order (decoders, dense tasks) instead of ToMe's [A, B] order")(
      name("window").c_str(), po::value(&r.window)->default_value(r.window),
      "pool: side of the square window (0 = the smallest that fits keep)")(
      name("straight_through").c_str(),
      po::value(&r.straight_through)->default_value(r.straight_through),
      "mask: pass a sigmoid gradient to the scores (needed by learned criteria)")(
      name("temperature").c_str(), po::value(&r.temperature)->default_value(r.temperature, "1"),
      "mask: temperature of that sigmoid, in score units (> 0)")(
      name("z_loss").c_str(), po::value(&r.z_loss)->default_value(r.z_loss, "0.001"),
      "linear: weight of the z-loss on its scores (>= 0)")(
      name("ratio_loss").c_str(), po::value(&r.ratio_loss)->default_value(r.ratio_loss, "2"),
      "predictor: weight of DynamicViT's keep-ratio loss (>= 0)")(
      name("warmup_steps").c_str(), po::value(&r.warmup_steps)->default_value(r.warmup_steps),
      "training steps without reduction")(
      name("ramp_steps").c_str(), po::value(&r.ramp_steps)->default_value(r.ramp_steps),
      "then keep goes from 1 to its target over this many steps")(
      name("ramp").c_str(), po::value(&r.ramp)->default_value(r.ramp), "linear | cosine")(
      name("eval").c_str(), po::value(&r.eval)->default_value(r.eval),
      "evaluate with the method (same), without it (dense), with another strategy (a strategy "
      "name, e.g. prune), or auto (route: dense, policy: prune, others: same)");
}

void stage_to_ini(std::ostream& out, const StageSection& stage, const std::string& section) {
  const auto& r = stage.reduction;
  if (!section.empty()) out << "\n[" << section << "]";
  out << "\ncriterion = " << r.criterion << "\nstrategy = " << r.strategy << "\nsite = " << r.site
      << "\nlayers = " << stage.layers << "\nkeep = " << stage.keep
      << "\nkeep_schedule = " << r.keep_schedule << "\nfuse = " << r.fuse
      << "\ndescending_order = " << r.descending_order << "\nkeep_order = " << r.keep_order
      << "\nwindow = " << r.window << "\nstraight_through = " << r.straight_through
      << "\ntemperature = " << r.temperature << "\nz_loss = " << r.z_loss
      << "\nratio_loss = " << r.ratio_loss << "\nwarmup_steps = " << r.warmup_steps
      << "\nramp_steps = " << r.ramp_steps << "\nramp = " << r.ramp << "\neval = " << r.eval
      << "\n";
}

// Names in a comma-separated list, spaces trimmed, empty items dropped.
std::vector<std::string> split_names(const std::string& text) {
  std::vector<std::string> names;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    const auto first = item.find_first_not_of(" \t");
    if (first == std::string::npos) continue;
    names.push_back(item.substr(first, item.find_last_not_of(" \t") - first + 1));
  }
  return names;
}

}  // namespace

po::options_description run_options(RunConfig& c) {
  po::options_description data("Data [data]");
  data.add_options()("data.train", po::value(&c.data.train)->value_name("FILE"),
                     "training set: HDF5 file written by `winnow prepare` (images or tokens)")(
      "data.eval", po::value(&c.data.eval)->value_name("FILE"),
      "evaluation set (same format); empty = none")(
      "data.synthetic", po::value(&c.data.synthetic)->default_value(c.data.synthetic),
      "none | images | text: train on generated data instead of files (tests, benchmarks)")(
      "data.synthetic_samples",
      po::value(&c.data.synthetic_samples)->default_value(c.data.synthetic_samples),
      "samples in a synthetic training set (>= 1)")(
      "data.context", po::value(&c.data.context)->default_value(c.data.context),
      "text: tokens per training sample (>= 1; the GPT context length)")(
      "data.prefetch", po::value(&c.data.prefetch)->default_value(c.data.prefetch),
      "batches the loader thread prepares ahead (>= 1)");

  po::options_description model("Model [model]");
  model.add_options()("model.kind", po::value(&c.model.kind)->default_value(c.model.kind),
                      "vit (images) | gpt (text)")(
      "model.dim", po::value(&c.model.dim)->default_value(c.model.dim),
      "width C (divisible by heads)")("model.depth",
                                      po::value(&c.model.depth)->default_value(c.model.depth),
                                      "number of blocks (>= 1)")(
      "model.heads", po::value(&c.model.heads)->default_value(c.model.heads),
      "attention heads (>= 1)")(
      "model.mlp_ratio", po::value(&c.model.mlp_ratio)->default_value(c.model.mlp_ratio, "4"),
      "MLP hidden width / C (> 0)")(
      "model.patch", po::value(&c.model.patch)->default_value(c.model.patch),
      "vit: patch size p (divides the image size); tokens = (H/p)(W/p) + 1")(
      "model.norm_eps", po::value(&c.model.norm_eps)->default_value(c.model.norm_eps, "1e-05"),
      "LayerNorm epsilon (> 0; torchvision's ViT uses 1e-06)");

  po::options_description optim("Optimizer [optim] (AdamW, decoupled weight decay)");
  optim.add_options()("optim.lr", po::value(&c.optim.lr)->default_value(c.optim.lr, "0.001"),
                      "peak learning rate (> 0)")(
      "optim.weight_decay",
      po::value(&c.optim.weight_decay)->default_value(c.optim.weight_decay, "0.05"),
      "weight decay on matrices; norms, biases and embeddings get none (>= 0)")(
      "optim.beta1", po::value(&c.optim.beta1)->default_value(c.optim.beta1, "0.9"),
      "Adam beta1 in [0, 1)")("optim.beta2",
                              po::value(&c.optim.beta2)->default_value(c.optim.beta2, "0.999"),
                              "Adam beta2 in [0, 1)")(
      "optim.eps", po::value(&c.optim.eps)->default_value(c.optim.eps, "1e-08"),
      "Adam epsilon (> 0)")("optim.clip_norm",
                            po::value(&c.optim.clip_norm)->default_value(c.optim.clip_norm, "1"),
                            "clip the global gradient norm to this (0 = off)")(
      "optim.warmup_steps", po::value(&c.train.warmup_steps)->default_value(c.train.warmup_steps),
      "linear warmup steps, then cosine decay (in [0, train.steps])")(
      "optim.min_lr_ratio",
      po::value(&c.train.min_lr_ratio)->default_value(c.train.min_lr_ratio, "0.01"),
      "final lr / peak lr, in [0, 1]")(
      "optim.compress_lr_scale",
      po::value(&c.optim.compress_lr_scale)->default_value(c.optim.compress_lr_scale, "1"),
      "learning-rate multiplier of the compression components' parameters (compress.*)");

  po::options_description train("Training [train]");
  train.add_options()("train.steps", po::value(&c.train.steps)->default_value(c.train.steps),
                      "optimizer steps (>= 1)")(
      "train.global_batch", po::value(&c.train.global_batch)->default_value(c.train.global_batch),
      "samples per step over all ranks (>= number of ranks)")(
      "train.accumulation", po::value(&c.train.accumulation)->default_value(c.train.accumulation),
      "micro-batches per rank per step (gradient accumulation, >= 1)")(
      "train.eval_every", po::value(&c.train.eval_every)->default_value(c.train.eval_every),
      "steps between evaluations (0 = only at the end)")(
      "train.eval_batch", po::value(&c.train.eval_batch)->default_value(c.train.eval_batch),
      "samples per evaluation batch over all ranks (>= 1)")(
      "train.eval_max_samples",
      po::value(&c.train.eval_max_samples)->default_value(c.train.eval_max_samples),
      "evaluate on at most this many samples (0 = all)")(
      "train.log_every", po::value(&c.train.log_every)->default_value(c.train.log_every),
      "steps between metrics lines and (off a terminal) progress lines (>= 1)")(
      "train.seed", po::value(&c.train.seed)->default_value(c.train.seed),
      "seed of every random choice (init, data order, keyed token choices)")(
      "train.run_dir", po::value(&c.train.run_dir)->value_name("DIR"),
      "run directory: metrics.jsonl, config.ini, model weights, checkpoints/ (created; empty = "
      "none)")("train.stop_at", po::value(&c.train.stop_at)->default_value(c.train.stop_at),
               "stop after this many completed steps, saving a checkpoint, without changing the "
               "schedule of train.steps (0 = run to train.steps); not stored in the config")(
      "train.freeze", po::value(&c.optim.freeze)->default_value(c.optim.freeze),
      "none | backbone: train only the compression components' parameters (compress.*) on a "
      "frozen model (fine-tuning learned scorers; start from weights with --init-from)");

  auto& k = c.checkpoint;
  po::options_description checkpoint("Checkpoints [checkpoint] (docs/checkpoint-format.md)");
  checkpoint.add_options()(
      "checkpoint.dir", po::value(&k.dir)->default_value(k.dir),
      "where step-N.h5 files and the `latest` link go: auto (<train.run_dir>/checkpoints; none "
      "without a run dir) | none | a directory")(
      "checkpoint.every", po::value(&k.every)->default_value(k.every),
      "steps between checkpoints (0 = no step interval)")(
      "checkpoint.minutes", po::value(&k.minutes)->default_value(k.minutes, "30"),
      "minutes between checkpoints, by rank 0's clock (0 = off)")(
      "checkpoint.keep", po::value(&k.keep)->default_value(k.keep),
      "newest checkpoints kept (0 = all)")("checkpoint.at_end",
                                           po::value(&k.at_end)->default_value(k.at_end),
                                           "write a checkpoint after the last step")(
      "checkpoint.kill_stage", po::value(&k.kill_stage)->default_value(k.kill_stage),
      "testing: SIGKILL this process at a stage of the save of checkpoint.kill_step: none | "
      "writing | before_rename | before_pointer; not stored in the config")(
      "checkpoint.kill_step", po::value(&k.kill_step)->default_value(k.kill_step),
      "testing: the step whose save checkpoint.kill_stage interrupts");

  po::options_description dist("Distributed [dist]");
  dist.add_options()("dist.backend", po::value(&c.dist.backend)->default_value(c.dist.backend),
                     "local | mpi | nccl | auto (mpi when started by mpirun/srun)")(
      "dist.threads", po::value(&c.dist.threads)->default_value(c.dist.threads),
      "intra-op threads per rank (0 = cores / ranks on this node)")(
      "dist.timeout", po::value(&c.dist.timeout)->default_value(c.dist.timeout),
      "seconds a collective may wait for the other ranks before the job ends with a report "
      "naming the missing ranks (0 = wait forever)")(
      "dist.bucket_mb", po::value(&c.train.bucket_mb)->default_value(c.train.bucket_mb),
      "gradient all-reduce bucket size in MiB (>= 1)")(
      "dist.check_every",
      po::value(&c.train.replica_check_every)->default_value(c.train.replica_check_every),
      "steps between checks that all ranks hold identical parameters (0 = never)");

  po::options_description compress("Token reduction [compress] (docs/methods.md)");
  compress.add_options()(
      "compress.stages", po::value(&c.compress.stages)->default_value(c.compress.stages),
      "several methods: stage names, comma-separated (e.g. pool,tome), each configured in its "
      "own [stage.NAME] section with the keys below (--stage.NAME.criterion=...); applied in "
      "this order within a layer and site. Empty: the one method of this section");
  add_stage_options(compress, c.compress, "compress");
  std::vector<po::options_description> stage_sections;
  for (auto& [name, stage] : c.compress.stage) {
    stage_sections.emplace_back("Stage [stage." + name + "]");
    add_stage_options(stage_sections.back(), stage, "stage." + name);
  }

  auto& g = c.gate;
  po::options_description gate("Layer gates [gate] (docs/methods.md, Layer gates)");
  gate.add_options()("gate.kind", po::value(&g.kind)->default_value(g.kind),
                     "none | skip (gate.layers never run) | layerdrop (each gated layer dropped "
                     "with probability gate.drop) | pld (Progressive Layer Dropping)")(
      "gate.layers", po::value(&c.gate_layers)->default_value(c.gate_layers),
      "skip: the layers to skip; layerdrop/pld: the gated layers (empty = all), e.g. 2,4")(
      "gate.drop", po::value(&g.drop)->default_value(g.drop, "0.1"),
      "layerdrop: probability that a gated layer is dropped at a step, in [0, 1)")(
      "gate.theta_bar", po::value(&g.theta_bar)->default_value(g.theta_bar, "0.5"),
      "pld: θ̄ in (0, 1]; layer l of L runs with p = 1 − (l/L)(1 − θ(t)), "
      "θ(t) = (1 − θ̄)e^(−γt) + θ̄")("gate.gamma",
                                   po::value(&g.gamma)->default_value(g.gamma, "0.001"),
                                   "pld: γ >= 0, the per-step decay of θ(t)")(
      "gate.scale", po::value(&g.scale)->default_value(g.scale),
      "layerdrop/pld: scale a kept layer's residual updates by 1/p")(
      "gate.eval", po::value(&g.eval)->default_value(g.eval),
      "auto (skip lists skip, stochastic gates run every layer) | all (every layer) | same "
      "(stochastic gates at their final probability)");

  auto& m = c.monitor;
  po::options_description monitor("Token-evolution statistics [monitor] (docs/methods.md)");
  monitor.add_options()(
      "monitor.statistics", po::value(&m.statistics)->default_value(m.statistics),
      "collect per-block statistics at every training step (Block Influence, relative update, "
      "δ histogram, uniformity), all-reduced, as EMAs; logged every train.log_every steps")(
      "monitor.taylor", po::value(&m.taylor)->default_value(m.taylor),
      "with them, the Taylor skip saliency |<dL/dy, y - x>| from backward")(
      "monitor.ema", po::value(&m.ema)->default_value(m.ema, "0.99"),
      "EMA decay of the statistics across steps, in [0, 1)");

  auto& cs = c.coschedule.planner;
  po::options_description coschedule(
      "Co-scheduler [coschedule]: layer pruning and token reduction under one FLOPs budget "
      "(docs/methods.md, Co-scheduler)");
  coschedule.add_options()(
      "coschedule.mode", po::value(&cs.mode)->default_value(cs.mode),
      "none (the static [compress]/[gate] plans) | joint (capacities on both axes) | token_only "
      "(no layer pruned) | layer_only (layers kept or pruned whole) | staged_lt / staged_tl "
      "(layers then tokens, or the reverse) | open_loop (a fixed depth profile rescaled to the "
      "budget, no statistics)")(
      "coschedule.target", po::value(&cs.budget.target)->default_value(cs.budget.target, "0.6"),
      "ρ*: the budget, a fraction of the dense model's block FLOPs per training step")(
      "coschedule.warmup_steps",
      po::value(&cs.budget.warmup_steps)->default_value(cs.budget.warmup_steps),
      "dense steps with statistics only before the first decision (>= 1)")(
      "coschedule.ramp_steps",
      po::value(&cs.budget.ramp_steps)->default_value(cs.budget.ramp_steps),
      "steps over which the budget falls from 1 to coschedule.target")(
      "coschedule.ramp", po::value(&cs.budget.ramp)->default_value(cs.budget.ramp),
      "cosine | linear | exponential (PLD's, rate coschedule.gamma) | step")(
      "coschedule.gamma", po::value(&cs.budget.gamma)->default_value(cs.budget.gamma, "0.001"),
      "exponential ramp: ρ(t) = (1 − ρ*)e^(−γ(t − warmup)) + ρ*")(
      "coschedule.heal_steps",
      po::value(&cs.budget.heal_steps)->default_value(cs.budget.heal_steps),
      "the last steps of the run keep the structure frozen (no decisions)")(
      "coschedule.interval", po::value(&cs.interval)->default_value(cs.interval),
      "steps between decisions (K)")(
      "coschedule.probe_every", po::value(&cs.probe_every)->default_value(cs.probe_every),
      "every P-th step runs every layer at full capacity so that pruned layers and dropped "
      "tokens stay observed (0 = never)")(
      "coschedule.influence", po::value(&cs.influence)->default_value(cs.influence),
      "the layer weight w_l of the damage w_l·(1 − M_l(k)): bi (Block Influence) | "
      "relative_update | taylor (Taylor skip saliency from backward) | random (the control: "
      "weights drawn afresh at every decision, no token statistics)")(
      "coschedule.execution", po::value(&cs.execution)->default_value(cs.execution),
      "auto (skip for token streams, drop for images) | skip (route: the block runs on the "
      "capacity's tokens, the others ride the residual) | drop (prune, cumulative)")(
      "coschedule.criterion", po::value(&cs.criterion)->default_value(cs.criterion),
      "which tokens fill a layer's capacity: auto (cls_attention in drop mode with a CLS "
      "token, else norm) or a criterion name")(
      "coschedule.z_loss", po::value(&cs.z_loss)->default_value(cs.z_loss, "0.001"),
      "linear router: weight of its z-loss")(
      "coschedule.grid", po::value(&cs.allocator.grid)->default_value(cs.allocator.grid),
      "capacity steps G: capacities are multiples of 1/G")(
      "coschedule.protected",
      po::value(&c.coschedule.protected_layers)->default_value(c.coschedule.protected_layers),
      "layers never pruned and never below coschedule.min_capacity: auto (the first two and "
      "the last), none, or a list such as 0,5")(
      "coschedule.min_capacity",
      po::value(&c.coschedule.min_capacity)->default_value(c.coschedule.min_capacity, "0.5"),
      "the lowest capacity of a protected layer, on the grid")(
      "coschedule.hysteresis",
      po::value(&cs.allocator.hysteresis)->default_value(cs.allocator.hysteresis, "0.1"),
      "a swap (one layer up, another down) needs its gain per FLOP to beat the loss per FLOP "
      "by this margin")("coschedule.dwell",
                        po::value(&cs.allocator.dwell)->default_value(cs.allocator.dwell),
                        "decisions a layer waits before moving in the opposite direction")(
      "coschedule.fade", po::value(&cs.allocator.fade)->default_value(cs.allocator.fade),
      "decisions a layer sits at the lowest non-zero capacity before it may be pruned")(
      "coschedule.staged_split", po::value(&cs.staged_split)->default_value(cs.staged_split, "0"),
      "staged modes: the budget at which the first axis stops (0 = 1 − ½(1 − target))")(
      "coschedule.profile", po::value(&cs.profile)->default_value(cs.profile),
      "open_loop: pld (capacity falling linearly with depth) | cosine (p-MoD's shifted cosine)")(
      "coschedule.eval", po::value(&cs.eval)->default_value(cs.eval),
      "same (evaluate at the current capacities) | dense")(
      "coschedule.capacities",
      po::value(&c.coschedule.capacities)->default_value(c.coschedule.capacities),
      "capacities to start from, one per layer (e.g. 1,1,0.5,0); a finished run stores its "
      "final ones with model.h5, so `winnow eval` evaluates the structure it reached");

  po::options_description all;
  all.add(data).add(model).add(optim).add(train).add(dist).add(compress);
  for (const auto& section : stage_sections) all.add(section);
  all.add(gate).add(monitor).add(coschedule).add(checkpoint);
  return all;
}

void parse_run_config(const std::vector<std::string>& args, po::options_description& extra,
                      RunConfig& config, bool& help, const std::string& base_ini) {
  std::string config_file;
  // First pass: the stage names (command line, then the config file, then the base), so that
  // the [stage.NAME] options exist before the real parse.
  try {
    po::options_description peek;
    peek.add_options()("config", po::value<std::string>())("compress.stages",
                                                           po::value<std::string>());
    po::variables_map found;
    po::store(po::command_line_parser(args).options(peek).allow_unregistered().run(), found);
    if (found.count("config")) {
      std::ifstream in(found["config"].as<std::string>());
      if (in) po::store(po::parse_config_file(in, peek, /*allow_unregistered=*/true), found);
    }
    if (!base_ini.empty()) {
      std::istringstream in(base_ini);
      po::store(po::parse_config_file(in, peek, /*allow_unregistered=*/true), found);
    }
    if (found.count("compress.stages"))
      for (const auto& name : split_names(found["compress.stages"].as<std::string>()))
        config.compress.stage[name];
  } catch (const po::error& e) {
    throw ConfigError(std::string(e.what()));
  }
  po::options_description general("General");
  general.add_options()("help,h", "show this help")(
      "config", po::value(&config_file)->value_name("FILE"),
      "INI file; [section] key=value sets section.key; the command line overrides it");
  auto options = run_options(config);
  po::options_description everything;
  everything.add(general).add(extra).add(options);

  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(everything).run(), vm);
    if (vm.count("config")) {
      config_file = vm["config"].as<std::string>();
      std::ifstream in(config_file);
      if (!in) throw ConfigError("--config: cannot read the config file '" + config_file + "'");
      po::options_description in_file;
      in_file.add(extra).add(options);
      po::store(po::parse_config_file(in, in_file), vm);
    }
    if (!base_ini.empty()) {
      std::istringstream in(base_ini);
      po::store(po::parse_config_file(in, options, /*allow_unregistered=*/true), vm);
    }
    help = vm.count("help") > 0;
    if (!help) po::notify(vm);
  } catch (const po::error& e) {
    std::string where = config_file.empty() ? "" : " (command line or " + config_file + ")";
    throw ConfigError(std::string(e.what()) + where);
  }
}

namespace {

void require(bool ok, const std::string& message) {
  if (!ok) throw ConfigError(message);
}

template <typename T>
std::string str(T value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

template <typename T>
std::vector<T> parse_list(const std::string& text, const std::string& option) {
  std::vector<T> values;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    std::istringstream one(item);
    T value;
    if (!(one >> value) || !(one >> std::ws).eof())
      throw ConfigError(option + ": expected a comma-separated list of numbers, got '" + text +
                        "'");
    values.push_back(value);
  }
  return values;
}

}  // namespace

namespace {

compression::ReductionConfig stage_config(const StageSection& stage, const std::string& prefix) {
  compression::ReductionConfig r = stage.reduction;
  r.layers = parse_list<int64_t>(stage.layers, prefix + ".layers");
  r.keep = parse_list<double>(stage.keep, prefix + ".keep");
  if (r.keep.empty()) throw ConfigError(prefix + ".keep: expected at least one value");
  return r;
}

}  // namespace

compression::StaticPlannerConfig planner_config(const RunConfig& c) {
  compression::StaticPlannerConfig planner;
  const auto names = split_names(c.compress.stages);
  if (!names.empty() && c.compress.reduction.criterion != "none")
    throw ConfigError(
        "compress.stages and compress.criterion: give one method in [compress] or named stages "
        "in compress.stages, not both (make the [compress] method a stage of its own)");
  if (names.empty() && c.compress.reduction.criterion != "none")
    planner.stages.push_back({"compress", stage_config(c.compress, "compress")});
  for (const auto& name : names) {
    const auto it = c.compress.stage.find(name);
    if (it == c.compress.stage.end())
      throw ConfigError("compress.stages: stage '" + name + "' has no [stage." + name +
                        "] options");
    planner.stages.push_back({name, stage_config(it->second, "stage." + name)});
  }
  planner.gate = c.gate;
  planner.gate.layers = parse_list<int64_t>(c.gate_layers, "gate.layers");
  planner.statistics = c.monitor.statistics;
  return planner;
}

compression::TokenEvolutionOptions monitor_options(const RunConfig& c) {
  if (!(c.monitor.ema >= 0.0 && c.monitor.ema < 1.0))
    throw ConfigError("monitor.ema: expected a decay in [0, 1), got " + str(c.monitor.ema));
  compression::TokenEvolutionOptions options;
  options.ema_decay = c.monitor.ema;
  options.taylor = c.monitor.taylor;
  return options;
}

compression::CoSchedulerConfig coscheduler_config(const RunConfig& c, int64_t depth) {
  auto config = c.coschedule.planner;
  config.budget.total_steps = c.train.steps;
  config.seed = c.train.seed;
  const std::string& text = c.coschedule.protected_layers;
  config.allocator.protected_layers.clear();
  if (text == "auto") {
    for (int64_t layer : {int64_t{0}, int64_t{1}, depth - 1})
      if (layer >= 0 && layer < depth &&
          std::find(config.allocator.protected_layers.begin(),
                    config.allocator.protected_layers.end(),
                    layer) == config.allocator.protected_layers.end())
        config.allocator.protected_layers.push_back(layer);
  } else if (text != "none" && !text.empty()) {
    config.allocator.protected_layers = parse_list<int64_t>(text, "coschedule.protected");
  }
  const double k = c.coschedule.min_capacity;
  const double level = k * static_cast<double>(config.allocator.grid);
  if (!(k > 0.0 && k <= 1.0) || std::abs(level - std::round(level)) > 1e-9)
    throw ConfigError(
        "coschedule.min_capacity: expected a capacity in (0, 1] on the grid of "
        "coschedule.grid = " +
        str(config.allocator.grid) + " steps (a multiple of 1/" + str(config.allocator.grid) +
        "), got " + str(k));
  config.allocator.min_protected_level = static_cast<int64_t>(std::llround(level));
  config.capacities = parse_list<double>(c.coschedule.capacities, "coschedule.capacities");
  return config;
}

void validate(const RunConfig& c, int world_size) {
  require(c.data.synthetic == "none" || c.data.synthetic == "images" || c.data.synthetic == "text",
          "data.synthetic: expected one of none, images, text; got '" + c.data.synthetic + "'");
  require(c.data.synthetic != "none" || !c.data.train.empty(),
          "data.train: no training data; give --data.train FILE (from `winnow prepare`) or "
          "--data.synthetic");
  require(c.data.synthetic_samples >= 1,
          "data.synthetic_samples: expected >= 1, got " + str(c.data.synthetic_samples));
  require(c.data.context >= 1, "data.context: expected >= 1, got " + str(c.data.context));
  require(c.data.prefetch >= 1, "data.prefetch: expected >= 1, got " + str(c.data.prefetch));
  require(c.model.kind == "vit" || c.model.kind == "gpt",
          "model.kind: expected one of vit, gpt; got '" + c.model.kind + "'");
  require(c.model.dim >= 1, "model.dim: expected >= 1, got " + str(c.model.dim));
  require(c.model.depth >= 1, "model.depth: expected >= 1, got " + str(c.model.depth));
  require(c.model.heads >= 1, "model.heads: expected >= 1, got " + str(c.model.heads));
  require(c.model.dim % c.model.heads == 0, "model.dim: expected a multiple of model.heads (" +
                                                str(c.model.heads) + "), got " + str(c.model.dim));
  require(c.model.mlp_ratio > 0, "model.mlp_ratio: expected > 0, got " + str(c.model.mlp_ratio));
  require(c.model.norm_eps > 0, "model.norm_eps: expected > 0, got " + str(c.model.norm_eps));
  require(c.model.patch >= 1, "model.patch: expected >= 1, got " + str(c.model.patch));
  require(c.dist.threads >= 0,
          "dist.threads: expected >= 0 (0 = automatic), got " + str(c.dist.threads));
  require(c.dist.timeout >= 0,
          "dist.timeout: expected >= 0 seconds (0 = no timeout), got " + str(c.dist.timeout));
  bool known_backend = false;
  for (const auto& name : dist::known_backends())
    known_backend = known_backend || name == c.dist.backend;
  std::string names;
  for (const auto& name : dist::known_backends()) names += (names.empty() ? "" : ", ") + name;
  require(known_backend,
          "dist.backend: expected one of " + names + "; got '" + c.dist.backend + "'");
  require(c.train.stop_at >= 0,
          "train.stop_at: expected >= 0 (0 = train.steps), got " + str(c.train.stop_at));
  require(c.checkpoint.every >= 0,
          "checkpoint.every: expected >= 0 (0 = no step interval), got " + str(c.checkpoint.every));
  require(c.checkpoint.minutes >= 0,
          "checkpoint.minutes: expected >= 0 (0 = off), got " + str(c.checkpoint.minutes));
  require(c.checkpoint.keep >= 0,
          "checkpoint.keep: expected >= 0 (0 = all), got " + str(c.checkpoint.keep));
  require(c.checkpoint.kill_stage == "none" || c.checkpoint.kill_stage == "writing" ||
              c.checkpoint.kill_stage == "before_rename" ||
              c.checkpoint.kill_stage == "before_pointer",
          "checkpoint.kill_stage: expected one of none, writing, before_rename, before_pointer; "
          "got '" +
              c.checkpoint.kill_stage + "'");
  try {
    c.optim.validate();
    c.train.validate(world_size);
    train::LrSchedule schedule{c.optim.lr, c.train.warmup_steps, c.train.steps,
                               c.train.min_lr_ratio};
    schedule.validate();
  } catch (const c10::Error& e) {
    throw ConfigError(e.msg());
  }
}

std::string to_ini(const RunConfig& c) {
  std::ostringstream out;
  out << std::setprecision(10);
  out << "# effective winnow configuration (load with --config)\n";
  out << "[data]\n";
  if (!c.data.train.empty()) out << "train = " << c.data.train << "\n";
  if (!c.data.eval.empty()) out << "eval = " << c.data.eval << "\n";
  out << "synthetic = " << c.data.synthetic << "\nsynthetic_samples = " << c.data.synthetic_samples
      << "\ncontext = " << c.data.context << "\nprefetch = " << c.data.prefetch << "\n\n";
  out << "[model]\nkind = " << c.model.kind << "\ndim = " << c.model.dim
      << "\ndepth = " << c.model.depth << "\nheads = " << c.model.heads
      << "\nmlp_ratio = " << std::setprecision(17) << c.model.mlp_ratio << std::setprecision(10)
      << "\npatch = " << c.model.patch << "\nnorm_eps = " << c.model.norm_eps << "\n\n";
  out << "[optim]\nlr = " << c.optim.lr << "\nweight_decay = " << c.optim.weight_decay
      << "\nbeta1 = " << c.optim.beta1 << "\nbeta2 = " << c.optim.beta2 << "\neps = " << c.optim.eps
      << "\nclip_norm = " << c.optim.clip_norm << "\nwarmup_steps = " << c.train.warmup_steps
      << "\nmin_lr_ratio = " << c.train.min_lr_ratio
      << "\ncompress_lr_scale = " << c.optim.compress_lr_scale << "\n\n";
  out << "[train]\nsteps = " << c.train.steps << "\nglobal_batch = " << c.train.global_batch
      << "\naccumulation = " << c.train.accumulation << "\neval_every = " << c.train.eval_every
      << "\neval_batch = " << c.train.eval_batch
      << "\neval_max_samples = " << c.train.eval_max_samples
      << "\nlog_every = " << c.train.log_every << "\nseed = " << c.train.seed
      << "\nfreeze = " << c.optim.freeze << "\n";
  if (!c.train.run_dir.empty()) out << "run_dir = " << c.train.run_dir << "\n";
  out << "\n[compress]\nstages = " << c.compress.stages;
  stage_to_ini(out, c.compress, "");
  for (const auto& name : split_names(c.compress.stages)) {
    const auto it = c.compress.stage.find(name);
    if (it != c.compress.stage.end()) stage_to_ini(out, it->second, "stage." + name);
  }
  out << "\n[gate]\nkind = " << c.gate.kind << "\nlayers = " << c.gate_layers
      << "\ndrop = " << c.gate.drop << "\ntheta_bar = " << c.gate.theta_bar
      << "\ngamma = " << c.gate.gamma << "\nscale = " << c.gate.scale << "\neval = " << c.gate.eval
      << "\n";
  out << "\n[monitor]\nstatistics = " << c.monitor.statistics << "\ntaylor = " << c.monitor.taylor
      << "\nema = " << c.monitor.ema << "\n";
  const auto& cs = c.coschedule.planner;
  out << "\n[coschedule]\nmode = " << cs.mode << "\ntarget = " << cs.budget.target
      << "\nwarmup_steps = " << cs.budget.warmup_steps << "\nramp_steps = " << cs.budget.ramp_steps
      << "\nramp = " << cs.budget.ramp << "\ngamma = " << cs.budget.gamma
      << "\nheal_steps = " << cs.budget.heal_steps << "\ninterval = " << cs.interval
      << "\nprobe_every = " << cs.probe_every << "\ninfluence = " << cs.influence
      << "\nexecution = " << cs.execution << "\ncriterion = " << cs.criterion
      << "\nz_loss = " << cs.z_loss << "\ngrid = " << cs.allocator.grid
      << "\nprotected = " << c.coschedule.protected_layers
      << "\nmin_capacity = " << c.coschedule.min_capacity
      << "\nhysteresis = " << cs.allocator.hysteresis << "\ndwell = " << cs.allocator.dwell
      << "\nfade = " << cs.allocator.fade << "\nstaged_split = " << cs.staged_split
      << "\nprofile = " << cs.profile << "\neval = " << cs.eval
      << "\ncapacities = " << c.coschedule.capacities << "\n";
  out << "\n[dist]\nbackend = " << c.dist.backend << "\nthreads = " << c.dist.threads
      << "\ntimeout = " << c.dist.timeout << "\nbucket_mb = " << c.train.bucket_mb
      << "\ncheck_every = " << c.train.replica_check_every << "\n";
  out << "\n[checkpoint]\ndir = " << c.checkpoint.dir << "\nevery = " << c.checkpoint.every
      << "\nminutes = " << c.checkpoint.minutes << "\nkeep = " << c.checkpoint.keep
      << "\nat_end = " << c.checkpoint.at_end << "\n";
  return out.str();
}

}  // namespace winnow::launch
