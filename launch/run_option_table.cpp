// The options of a run, each declared once: name, field, default (the field's initial value in
// config.h), help text and check.
#include "launch/run_option_table.h"

#include "compression/criterion_registry.h"
#include "compression/strategy_registry.h"
#include "dist/communicator.h"

namespace winnow::launch {

namespace {

std::string comma_list(const std::vector<std::string>& names, std::string list = "") {
  for (const auto& name : names) list += (list.empty() ? "" : ", ") + name;
  return list;
}

std::vector<OptionSection<RunConfig>> make_run_option_sections() {
  using Options = OptionList<RunConfig>;
  std::vector<OptionSection<RunConfig>> sections;
  sections.push_back(
      {"data", "Data [data]",
       Options()
           .add_path("train", WINNOW_FIELD(data.train), "FILE",
                     "training set: HDF5 file written by `winnow prepare` (images or tokens)")
           .add_path("eval", WINNOW_FIELD(data.eval), "FILE",
                     "evaluation set (same format); empty = none")
           .add("synthetic", WINNOW_FIELD(data.synthetic),
                "none | images | text: train on generated data instead of files (tests, "
                "benchmarks)",
                one_of({"none", "images", "text"}))
           .add("synthetic_samples", WINNOW_FIELD(data.synthetic_samples),
                "samples in a synthetic training set (>= 1)", at_least(1))
           .add("context", WINNOW_FIELD(data.context),
                "text: tokens per training sample (>= 1; the GPT context length)", at_least(1))
           .add("prefetch", WINNOW_FIELD(data.prefetch),
                "batches the loader thread prepares ahead (>= 1)", at_least(1))});

  sections.push_back(
      {"model", "Model [model]",
       Options()
           .add("kind", WINNOW_FIELD(model.kind), "vit (images) | gpt (text)",
                one_of({"vit", "gpt"}))
           .add("dim", WINNOW_FIELD(model.dim), "width C (divisible by heads)", at_least(1))
           .add("depth", WINNOW_FIELD(model.depth), "number of blocks (>= 1)", at_least(1))
           .add("heads", WINNOW_FIELD(model.heads), "attention heads (>= 1)", at_least(1))
           .add("mlp_ratio", WINNOW_FIELD(model.mlp_ratio), "MLP hidden width / C (> 0)", above(0))
           .add("patch", WINNOW_FIELD(model.patch),
                "vit: patch size p (divides the image size); tokens = (H/p)(W/p) + 1", at_least(1))
           .add("norm_eps", WINNOW_FIELD(model.norm_eps),
                "LayerNorm epsilon (> 0; torchvision's ViT uses 1e-06)", above(0))});

  // Ranges of optim.* and the training schedule are checked by train::OptimizerOptions,
  // train::TrainerOptions and train::LrSchedule (validate()).
  sections.push_back(
      {"optim", "Optimizer [optim] (AdamW, decoupled weight decay)",
       Options()
           .add("lr", WINNOW_FIELD(optim.lr), "peak learning rate (> 0)")
           .add("weight_decay", WINNOW_FIELD(optim.weight_decay),
                "weight decay on matrices; norms, biases and embeddings get none (>= 0)")
           .add("beta1", WINNOW_FIELD(optim.beta1), "Adam beta1 in [0, 1)")
           .add("beta2", WINNOW_FIELD(optim.beta2), "Adam beta2 in [0, 1)")
           .add("eps", WINNOW_FIELD(optim.eps), "Adam epsilon (> 0)")
           .add("clip_norm", WINNOW_FIELD(optim.clip_norm),
                "clip the global gradient norm to this (0 = off)")
           .add("warmup_steps", WINNOW_FIELD(train.warmup_steps),
                "linear warmup steps, then cosine decay (in [0, train.steps])")
           .add("min_lr_ratio", WINNOW_FIELD(train.min_lr_ratio), "final lr / peak lr, in [0, 1]")
           .add("compress_lr_scale", WINNOW_FIELD(optim.compress_lr_scale),
                "learning-rate multiplier of the compression components' parameters "
                "(compress.*)")
           .add("threshold_lr", WINNOW_FIELD(optim.threshold_lr),
                "peak learning rate of learned thresholds (criterion threshold, LTMP), their own "
                "group without weight decay on the same schedule (0 = optim.lr × "
                "optim.compress_lr_scale)")
           .add("backbone_lr_scale", WINNOW_FIELD(optim.backbone_lr_scale),
                "learning-rate multiplier of the backbone's parameters whenever they train (e.g. "
                "after train.unfreeze_at; DynamicViT uses 0.01)")});

  sections.push_back(
      {"train", "Training [train]",
       Options()
           .add("steps", WINNOW_FIELD(train.steps), "optimizer steps (>= 1)")
           .add("global_batch", WINNOW_FIELD(train.global_batch),
                "samples per step over all ranks (>= number of ranks)")
           .add("accumulation", WINNOW_FIELD(train.accumulation),
                "micro-batches per rank per step (gradient accumulation, >= 1)")
           .add("eval_every", WINNOW_FIELD(train.eval_every),
                "steps between evaluations (0 = only at the end)")
           .add("eval_batch", WINNOW_FIELD(train.eval_batch),
                "samples per evaluation batch over all ranks (>= 1)")
           .add("eval_max_samples", WINNOW_FIELD(train.eval_max_samples),
                "evaluate on at most this many samples (0 = all)")
           .add("inference_batch", WINNOW_FIELD(train.inference_batch),
                "samples per timed forward pass over all ranks when measuring inference "
                "throughput after training and in `winnow eval` (>= 1)",
                at_least(1))
           .add("inference_rounds", WINNOW_FIELD(train.inference_rounds),
                "timed rounds of inference throughput, evaluation plan against dense, "
                "alternating, after one warm-up round (0 = no measurement)",
                at_least(0, " (0 = off)"))
           .add("log_every", WINNOW_FIELD(train.log_every),
                "steps between metrics lines and (off a terminal) progress lines (>= 1)")
           .add("seed", WINNOW_FIELD(train.seed),
                "seed of every random choice (init, data order, keyed token choices)")
           .add_path("run_dir", WINNOW_FIELD(train.run_dir), "DIR",
                     "run directory: metrics.jsonl, config.ini, model weights, checkpoints/ "
                     "(created; empty = none)")
           .add("stop_at", WINNOW_FIELD(train.stop_at),
                "stop after this many completed steps, saving a checkpoint, without changing the "
                "schedule of train.steps (0 = run to train.steps); not stored in the config",
                at_least(0, " (0 = train.steps)"))
           .not_stored()
           .add("freeze", WINNOW_FIELD(optim.freeze),
                "none | backbone: train only the compression components' parameters "
                "(compress.*) on a frozen model (fine-tuning learned scorers; start from weights "
                "with --init-from)")
           .add("unfreeze_at", WINNOW_FIELD(optim.unfreeze_at),
                "with freeze=backbone: the step from which the backbone trains too, at "
                "optim.backbone_lr_scale (0 = never)",
                at_least(0, " (0 = never)"))});

  sections.push_back(
      {"dist", "Distributed [dist]",
       Options()
           .add("backend", WINNOW_FIELD(dist.backend),
                "local | mpi | nccl | auto (mpi when started by mpirun/srun)",
                one_of(dist::known_backends()))
           .add("threads", WINNOW_FIELD(dist.threads),
                "intra-op threads per rank (0 = cores / ranks on this node)",
                at_least(0, " (0 = automatic)"))
           .add("timeout", WINNOW_FIELD(dist.timeout),
                "seconds a collective may wait for the other ranks before the job ends with a "
                "report naming the missing ranks (0 = wait forever)",
                at_least(0, " seconds (0 = no timeout)"))
           .add("bucket_mb", WINNOW_FIELD(train.bucket_mb),
                "gradient all-reduce bucket size in MiB (>= 1)")
           .add("check_every", WINNOW_FIELD(train.replica_check_every),
                "steps between checks that all ranks hold identical parameters (0 = never)")});

  sections.push_back(
      {"compress", "Token reduction [compress] (docs/methods.md)",
       Options()
           .add("stages", WINNOW_FIELD(compress.stages),
                "several methods: stage names, comma-separated (e.g. pool,tome), each "
                "configured in its own [stage.NAME] section with the keys below "
                "(--stage.NAME.criterion=...); applied in this order within a layer and "
                "site. Empty: the one method of this section")
           .add("target_flops", WINNOW_FIELD(compress.flops.target),
                "FLOPs regulariser (learned thresholds, LTMP): the target fraction of the "
                "dense model's block FLOPs, each sample counted on its live tokens; adds the "
                "loss flops_loss·Σ(ratio − target)² and reports flops_ratio (0 = off)")
           .add("flops_loss", WINNOW_FIELD(compress.flops.weight),
                "weight λ of the FLOPs regulariser (LTMP: 10)")});

  sections.push_back(
      {"distill",
       "Distillation from a frozen teacher [distill] (docs/methods.md, DynamicViT distillation)",
       Options()
           .add_path("teacher", WINNOW_FIELD(distill.teacher), "FILE",
                     "weights of a frozen teacher of the same kind and task (model.h5 or a "
                     "checkpoint, e.g. the dense model a learned scorer is fine-tuned on); empty = "
                     "no distillation")
           .add("logits_weight", WINNOW_FIELD(distill.logits_weight),
                "weight of KL(teacher || student) on the logits (DynamicViT: 0.5)", at_least(0))
           .add("tokens_weight", WINNOW_FIELD(distill.tokens_weight),
                "weight of the MSE between the student's kept tokens and the teacher's at the "
                "same positions, final LayerNorm features (DynamicViT: 0.5; needs equal widths)",
                at_least(0))});

  // Ranges of gate.* are checked by compression::LayerGateSchedule against the model.
  sections.push_back(
      {"gate", "Layer gates [gate] (docs/methods.md, Layer gates)",
       Options()
           .add("kind", WINNOW_FIELD(gate.kind),
                "none | skip (gate.layers never run) | layerdrop (each gated layer dropped with "
                "probability gate.drop) | pld (Progressive Layer Dropping)")
           .add("layers", WINNOW_FIELD(gate_layers),
                "skip: the layers to skip; layerdrop/pld: the gated layers (empty = all), e.g. "
                "2,4")
           .add("drop", WINNOW_FIELD(gate.drop),
                "layerdrop: probability that a gated layer is dropped at a step, in [0, 1)")
           .add("theta_bar", WINNOW_FIELD(gate.theta_bar),
                "pld: θ̄ in (0, 1]; layer l of L runs with p = 1 − (l/L)(1 − θ(t)), "
                "θ(t) = (1 − θ̄)e^(−γt) + θ̄")
           .add("gamma", WINNOW_FIELD(gate.gamma), "pld: γ >= 0, the per-step decay of θ(t)")
           .add("scale", WINNOW_FIELD(gate.scale),
                "layerdrop/pld: scale a kept layer's residual updates by 1/p")
           .add("eval", WINNOW_FIELD(gate.eval),
                "auto (skip lists skip, stochastic gates run every layer) | all (every layer) | "
                "same (stochastic gates at their final probability)")});

  sections.push_back(
      {"monitor", "Token-evolution statistics [monitor] (docs/methods.md)",
       Options()
           .add("statistics", WINNOW_FIELD(monitor.statistics),
                "collect per-block statistics at every training step (Block Influence, relative "
                "update, δ histogram, uniformity), all-reduced, as EMAs; logged every "
                "train.log_every steps")
           .add("taylor", WINNOW_FIELD(monitor.taylor),
                "with them, the Taylor skip saliency |<dL/dy, y - x>| from backward")
           .add("ema", WINNOW_FIELD(monitor.ema),
                "EMA decay of the statistics across steps, in [0, 1)",
                [](const double& ema) -> std::string {
                  if (ema >= 0.0 && ema < 1.0) return "";
                  return "expected a decay in [0, 1), got " + option_text(ema);
                })});

  // Ranges of coschedule.* are checked by compression::CoScheduler against the model, and
  // coschedule.min_capacity against the grid by coscheduler_config().
  sections.push_back(
      {"coschedule",
       "Co-scheduler [coschedule]: layer pruning and token reduction under one compute budget "
       "(docs/methods.md, Co-scheduler)",
       Options()
           .add("mode", WINNOW_FIELD(coschedule.planner.mode),
                "none (the static [compress]/[gate] plans) | joint (capacities on both axes) | "
                "token_only (no layer pruned) | layer_only (layers kept or pruned whole) | "
                "staged_lt / staged_tl (layers then tokens, or the reverse) | open_loop (a fixed "
                "depth profile rescaled to the budget, no statistics)")
           .add("target", WINNOW_FIELD(coschedule.planner.budget.target),
                "ρ*: the budget, a fraction of the dense model's block cost per training step "
                "(FLOPs or time, coschedule.cost)")
           .add("warmup_steps", WINNOW_FIELD(coschedule.planner.budget.warmup_steps),
                "dense steps with statistics only before the first decision (>= 1)")
           .add("ramp_steps", WINNOW_FIELD(coschedule.planner.budget.ramp_steps),
                "steps over which the budget falls from 1 to coschedule.target")
           .add("ramp", WINNOW_FIELD(coschedule.planner.budget.ramp),
                "cosine | linear | exponential (PLD's, rate coschedule.gamma) | step")
           .add("gamma", WINNOW_FIELD(coschedule.planner.budget.gamma),
                "exponential ramp: ρ(t) = (1 − ρ*)e^(−γ(t − warmup)) + ρ*")
           .add("heal_steps", WINNOW_FIELD(coschedule.planner.budget.heal_steps),
                "the last steps of the run keep the structure frozen (no decisions, no probes)")
           .add("heal_remove", WINNOW_FIELD(coschedule.planner.heal_remove),
                "at the first heal step, remove the pruned (capacity 0) blocks from the model and "
                "the optimizer; checkpoints and model.h5 then hold the smaller model (false: keep "
                "them, skipped)")
           .add("interval", WINNOW_FIELD(coschedule.planner.interval),
                "steps between decisions (K)")
           .add("probe_every", WINNOW_FIELD(coschedule.planner.probe_every),
                "every P-th step runs every layer at full capacity so that pruned layers and "
                "dropped tokens stay observed (0 = never)")
           .add("statistics_every", WINNOW_FIELD(coschedule.planner.statistics_every),
                "token-evolution statistics on every S-th step (and on every probe and the step "
                "before each decision); 1 = every step. Fewer cost less: the monitor's share of "
                "the step falls as 1/S (docs/results.md, co-scheduler overhead)")
           .add("influence", WINNOW_FIELD(coschedule.planner.influence),
                "the layer weight w_l of the damage w_l·(1 − M_l(k)): bi (Block Influence) | "
                "relative_update | taylor (Taylor skip saliency from backward) | random (the "
                "control: weights drawn afresh at every decision, no token statistics)")
           .add("execution", WINNOW_FIELD(coschedule.planner.execution),
                "auto (skip for token streams, drop for images) | skip (route: the block runs "
                "on the capacity's tokens, the others ride the residual) | drop (prune, "
                "cumulative)")
           .add("criterion", WINNOW_FIELD(coschedule.planner.criterion),
                "which tokens fill a layer's capacity: auto (cls_attention in drop mode with a "
                "CLS token, else norm) or a criterion name")
           .add("z_loss", WINNOW_FIELD(coschedule.planner.z_loss),
                "linear router: weight of its z-loss")
           .add("grid", WINNOW_FIELD(coschedule.planner.allocator.grid),
                "capacity steps G: capacities are multiples of 1/G")
           .add("protected", WINNOW_FIELD(coschedule.protected_layers),
                "layers never pruned and never below coschedule.min_capacity: auto (the first "
                "two and the last), none, or a list such as 0,5")
           .add("min_capacity", WINNOW_FIELD(coschedule.min_capacity),
                "the lowest capacity of a protected layer, on the grid")
           .add("hysteresis", WINNOW_FIELD(coschedule.planner.allocator.hysteresis),
                "a swap (one layer up, another down) needs its gain per FLOP to beat the loss "
                "per FLOP by this margin")
           .add("dwell", WINNOW_FIELD(coschedule.planner.allocator.dwell),
                "decisions a layer waits before moving in the opposite direction")
           .add("fade", WINNOW_FIELD(coschedule.planner.allocator.fade),
                "decisions a layer sits at the lowest non-zero capacity before it may be pruned")
           .add("staged_split", WINNOW_FIELD(coschedule.planner.staged_split),
                "staged modes: the budget at which the first axis stops (0 = 1 − ½(1 − target))")
           .add("profile", WINNOW_FIELD(coschedule.planner.profile),
                "open_loop: pld (capacity falling linearly with depth) | cosine (p-MoD's "
                "shifted cosine)")
           .add("eval", WINNOW_FIELD(coschedule.planner.eval),
                "same (evaluate at the current capacities) | dense (every layer, every token) "
                "| structure (pruned layers stay pruned, thinned layers see every token: the "
                "causal choice for a GPT, whose top-k selection reads later tokens)",
                one_of({"same", "dense", "structure"}))
           .add("cost", WINNOW_FIELD(coschedule.planner.cost),
                "what the budget is a fraction of: flops (the blocks' analytic FLOPs) | time "
                "(each block's training forward+backward on the per-rank micro-batch, timed at "
                "the capacities' token counts before the first step, the max over ranks, "
                "interpolated between counts; saved in checkpoints, never re-measured on resume)",
                one_of({"flops", "time"}))
           .add("capacities", WINNOW_FIELD(coschedule.capacities),
                "capacities to start from, one per layer (e.g. 1,1,0.5,0); a finished run "
                "stores its final ones with model.h5, so `winnow eval` evaluates the structure "
                "it reached")});

  sections.push_back(
      {"checkpoint", "Checkpoints [checkpoint] (docs/checkpoint-format.md)",
       Options()
           .add(
               "dir", WINNOW_FIELD(checkpoint.dir),
               "where step-N.h5 files and the `latest` link go: auto (<train.run_dir>/checkpoints; "
               "none without a run dir) | none | a directory")
           .add("every", WINNOW_FIELD(checkpoint.every),
                "steps between checkpoints (0 = no step interval)",
                at_least(0, " (0 = no step interval)"))
           .add("minutes", WINNOW_FIELD(checkpoint.minutes),
                "minutes between checkpoints, by rank 0's clock (0 = off)",
                at_least(0, " (0 = off)"))
           .add("keep", WINNOW_FIELD(checkpoint.keep), "newest checkpoints kept (0 = all)",
                at_least(0, " (0 = all)"))
           .add("at_end", WINNOW_FIELD(checkpoint.at_end), "write a checkpoint after the last step")
           .add("kill_stage", WINNOW_FIELD(checkpoint.kill_stage),
                "testing: SIGKILL this process at a stage of the save of checkpoint.kill_step: "
                "none | writing | before_rename | before_pointer; not stored in the config",
                one_of({"none", "writing", "before_rename", "before_pointer"}))
           .not_stored()
           .add("kill_step", WINNOW_FIELD(checkpoint.kill_step),
                "testing: the step whose save checkpoint.kill_stage interrupts")
           .not_stored()});
  return sections;
}

// Ranges of the stage options are checked by compression::ReductionSchedule, which also knows the
// model (layers, grid) and skips the options of a stage whose criterion is none.
OptionList<StageSection> make_stage_options() {
  return OptionList<StageSection>()
      .add("criterion", WINNOW_FIELD(reduction.criterion),
           "which tokens matter: " + comma_list(compression::known_criteria(), "none"))
      .add("strategy", WINNOW_FIELD(reduction.strategy),
           "what happens to the others: " + comma_list(compression::known_strategies()))
      .add("site", WINNOW_FIELD(reduction.site),
           "auto | pre_block | post_attention | around_block (auto: route around the block, "
           "attention-based criteria after attention, others before the block)")
      .add("layers", WINNOW_FIELD(layers),
           "reducing layers, e.g. 3,6,9 (empty: all but the first; route: all but the first and "
           "last)")
      .add("keep", WINNOW_FIELD(keep),
           "fraction of reducible tokens each reducing layer keeps, in (0, 1]: one value or one "
           "per layer")
      .add("keep_schedule", WINNOW_FIELD(reduction.keep_schedule),
           "list (keep: one value or one per layer) | linear (two values: first and last "
           "reducing layer, interpolated)")
      .add("fuse", WINNOW_FIELD(reduction.fuse), "prune: fuse the dropped tokens into one (EViT)")
      .add("descending_order", WINNOW_FIELD(reduction.descending_order),
           "prune: order kept tokens by descending score (EViT) instead of position")
      // The next four are compression::StrategyOptions of the same names.
      .add("keep_order", WINNOW_FIELD(reduction.keep_order),
           "merge: output the tokens in their current order, each merged token where its "
           "destination was (decoders, dense tasks), instead of ToMe's [unmerged A, B] order")
      .add("window", WINNOW_FIELD(reduction.window),
           "pool: side of the square pooling window (0 = the smallest window whose output fits "
           "keep)")
      .add("straight_through", WINNOW_FIELD(reduction.straight_through),
           "mask: straight-through soft mask, hard 0/1 forward and a sigmoid's gradient to the "
           "scores backward (needed to train learned criteria through mask)")
      .add("temperature", WINNOW_FIELD(reduction.temperature),
           "mask (straight_through) and policy: temperature τ of that sigmoid σ(s/τ), in score "
           "units (> 0)")
      .add("z_loss", WINNOW_FIELD(reduction.z_loss),
           "linear: weight of the z-loss on its scores (>= 0)")
      .add("ratio_loss", WINNOW_FIELD(reduction.ratio_loss),
           "predictor: weight of DynamicViT's keep-ratio loss (>= 0)")
      .add("saliency_key", WINNOW_FIELD(reduction.saliency_key),
           "saliency: what the τ table is keyed by: position | token | auto (token ids for text "
           "models, positions for images)")
      .add("saliency_decay", WINNOW_FIELD(reduction.saliency_decay),
           "saliency: EMA decay β of the τ table, in [0, 1) (Token Dropping: 0.995)")
      .add("saliency_init", WINNOW_FIELD(reduction.saliency_init),
           "saliency: score of keys never observed (inf: kept first)")
      .add("saliency_layer", WINNOW_FIELD(reduction.saliency_layer),
           "saliency: the block whose τ the table averages (-1: each reducing layer its own)")
      .add("threshold_base", WINNOW_FIELD(reduction.threshold_base),
           "threshold: the parameter-free criterion whose scores the learned thresholds cut "
           "(LTMP: attention_received)")
      .add("threshold_init", WINNOW_FIELD(reduction.threshold_init),
           "threshold: θ of every layer at creation (LTMP: 0, which keeps every token with a "
           "non-negative score)")
      .add("predictor_loss", WINNOW_FIELD(reduction.predictor_loss),
           "router: weight of its causal predictor's BCE against the top-k membership (>= 0)")
      .add("router_topk_loss", WINNOW_FIELD(reduction.router_topk_loss),
           "router: weight of Mixture-of-Depths' auxiliary BCE of σ(r) against the router's own "
           "top-k membership, so that σ(r) > 0.5 comes to mean routed (0 = off, >= 0)")
      .add("router_saliency_loss", WINNOW_FIELD(reduction.router_saliency_loss),
           "router: weight of a BCE between σ(r) and the top-k membership by the EMA of the "
           "Taylor skip saliency (the saliency_* options describe that table; 0 = off, >= 0)")
      .add("router_weight", WINNOW_FIELD(reduction.router_weight),
           "weighted_route: the factor on a routed token's block update, sigmoid (σ(r), "
           "Mixture-of-Depths) | tanh (α·tanh(r) + β, p-MoD's TanhNorm)")
      .add("tanh_alpha", WINNOW_FIELD(reduction.tanh_alpha),
           "weighted_route with router_weight = tanh: α (p-MoD: 0.2)")
      .add("tanh_beta", WINNOW_FIELD(reduction.tanh_beta),
           "weighted_route with router_weight = tanh: β (p-MoD: 1)")
      .add("warmup_steps", WINNOW_FIELD(reduction.warmup_steps), "training steps without reduction")
      .add("ramp_steps", WINNOW_FIELD(reduction.ramp_steps),
           "then keep goes from 1 to its target over this many steps")
      .add("ramp", WINNOW_FIELD(reduction.ramp), "linear | cosine")
      .add("eval", WINNOW_FIELD(reduction.eval),
           "evaluate with the method (same), without it (dense), with another strategy (a "
           "strategy name, e.g. prune), by the router's causal predictor (causal: token t runs "
           "the block iff σ(pred(x_t)) > 0.5), or auto (route: dense, policy: prune, others: "
           "same)");
}

}  // namespace

const std::vector<OptionSection<RunConfig>>& run_option_sections() {
  static const auto sections = make_run_option_sections();
  return sections;
}

const OptionList<StageSection>& stage_options() {
  static const auto options = make_stage_options();
  return options;
}

}  // namespace winnow::launch
