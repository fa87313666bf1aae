#!/usr/bin/env bash
# End-to-end checks of the `winnow` executable: exit codes of bad input, help, and a 2-rank
# training run under mpirun followed by `winnow eval` of the saved weights.
# usage: cli_e2e.sh WINNOW_BINARY MPIEXEC
set -euo pipefail
winnow=$1
mpiexec=$2
source "$(dirname "$0")/e2e_common.sh"  # work, fail, expect_exit

expect_exit 2 "unknown command" -- "$winnow" frobnicate
expect_exit 2 "for option '--model.dim' is invalid" -- "$winnow" train --model.dim=abc
expect_exit 2 "unrecognised option '--bogus'" -- "$winnow" train --bogus 1
expect_exit 2 "model.heads" -- "$winnow" train --data.synthetic images --model.dim 10 --model.heads 3
expect_exit 0 "--train.global_batch" -- "$winnow" train --help
expect_exit 0 "--bench.steps" -- "$winnow" bench --help
expect_exit 1 "missing.h5" -- "$winnow" train --data.train "$work/missing.h5"
printf 'not hdf5' > "$work/bad.h5"
expect_exit 1 "bad.h5" -- "$winnow" train --data.train "$work/bad.h5"

# 2 ranks, synthetic images; metrics, summary and weights land in the run directory.
run=$work/run
"$mpiexec" --allow-run-as-root --oversubscribe --bind-to none -np 2 \
  "$winnow" train --data.synthetic images --data.synthetic_samples 1024 --model.dim 32 --model.depth 2 \
  --model.heads 2 --model.patch 7 --train.steps 30 --train.global_batch 32 --optim.warmup_steps 5 \
  --train.log_every 10 --train.run_dir "$run" > "$work/train.log" 2>&1 || { cat "$work/train.log"; fail "2-rank training"; }
grep -q "2 rank(s) \[mpi\]" "$work/train.log" || fail "training did not run on 2 MPI ranks: $(cat "$work/train.log")"
for f in metrics.jsonl summary.json model.h5 config.ini; do [ -s "$run/$f" ] || fail "missing $run/$f"; done
grep -q '"world_size":2' "$run/summary.json" || fail "summary.json lacks world_size 2"
[ "$(grep -c '"event":"step"' "$run/metrics.jsonl")" -eq 3 ] || fail "expected 3 step lines in metrics.jsonl"
acc=$(sed -n 's/.*"eval_accuracy":\([0-9.]*\).*/\1/p' "$run/summary.json")
awk -v a="$acc" 'BEGIN { exit !(a > 0.5) }' || fail "synthetic accuracy $acc <= 0.5 after 30 steps"

# eval reads the stored config and weights and reproduces the accuracy.
"$winnow" eval --weights "$run/model.h5" > "$work/eval.log" 2>&1 || { cat "$work/eval.log"; fail "eval"; }
grep -q "accuracy" "$work/eval.log" || fail "eval printed no accuracy"
# Measurements: inference throughput against dense (2 ranks) and the peak activation memory.
grep -Eq "inference: [0-9.e+]+ img/s \(median of 5 rounds of 64 samples, range .*\) vs dense [0-9.e+]+ img/s \(range .*\): [0-9.]+x \(FLOPs 1.00x\)" \
  "$work/eval.log" || fail "eval printed no inference throughput line: $(cat "$work/eval.log")"
grep -q "inference: .* img/s" "$work/train.log" || fail "training printed no inference throughput line"
for key in peak_activation_bytes inference_samples_per_second dense_inference_samples_per_second \
    inference_speedup attention_core_seconds_per_layer kept_position_fraction; do
  grep -q "\"$key\":" "$run/summary.json" || fail "summary.json lacks $key: $(cat "$run/summary.json")"
done
grep -q '"event":"step".*"peak_activation_bytes":[1-9]' "$run/metrics.jsonl" ||
  fail "metrics.jsonl step lines lack a positive peak_activation_bytes"
eval_acc=$(sed -n 's/.*accuracy *\([0-9.]*\)%.*/\1/p' "$work/eval.log")
awk -v a="$acc" -v b="$eval_acc" 'BEGIN { d = a * 100 - b; exit !(d < 1e-3 && d > -1e-3) }' ||
  fail "eval accuracy $eval_acc% differs from the training run's $acc"
# Weights that do not fit the configured model are rejected with the name list.
expect_exit 1 "mis-shaped" -- "$winnow" eval --weights "$run/model.h5" --model.dim 64

# Fine-tuning a learned scorer on the dense weights: the backbone loads, the predictor starts
# fresh, only it trains until train.unfreeze_at; inspect lists it apart; export drops or keeps it.
tune=$work/tune
"$winnow" train --data.synthetic images --data.synthetic_samples 1024 --model.dim 32 --model.depth 2 \
  --model.heads 2 --model.patch 7 --train.steps 6 --train.global_batch 32 --optim.warmup_steps 1 \
  --train.log_every 1 --init-from "$run/model.h5" --compress.criterion predictor \
  --compress.strategy policy --compress.layers 1 --compress.keep 0.5 --train.freeze backbone \
  --train.unfreeze_at 4 --optim.backbone_lr_scale 0.1 --train.run_dir "$tune" > "$work/tune.log" 2>&1 ||
  { cat "$work/tune.log"; fail "fine-tuning a predictor with --init-from"; }
grep -q "tensors not in the file: freshly initialised" "$work/tune.log" || fail "init-from did not report the fresh predictor: $(cat "$work/tune.log")"
grep -q '"event":"unfreeze","step":4' "$tune/metrics.jsonl" || fail "no unfreeze event at step 4: $(cat "$tune/metrics.jsonl")"
"$winnow" inspect "$tune/model.h5" > "$work/inspect_tune.log" 2>&1 || { cat "$work/inspect_tune.log"; fail "inspect of the fine-tuned model"; }
grep -q "compression components (compress" "$work/inspect_tune.log" || fail "inspect does not list the components apart: $(cat "$work/inspect_tune.log")"
"$winnow" export --format torchvision-vit "$tune/model.h5" --out "$work/tune_drop.pt" > "$work/export_drop.log" 2>&1 || { cat "$work/export_drop.log"; fail "export (drop)"; }
"$winnow" export --format torchvision-vit "$tune/model.h5" --out "$work/tune_keep.pt" --components keep > "$work/export_keep.log" 2>&1 || { cat "$work/export_keep.log"; fail "export (keep)"; }
drop=$(sed -n 's/.*wrote *\([0-9]*\) tensors.*/\1/p' "$work/export_drop.log")
keep=$(sed -n 's/.*wrote *\([0-9]*\) tensors.*/\1/p' "$work/export_keep.log")
components=$(grep -c "^  compress\." "$work/inspect_tune.log" || true)
[ "$components" -gt 0 ] && [ "$keep" -eq $((drop + components)) ] ||
  fail "export --components keep wrote $keep tensors, drop $drop, the model has $components component tensors"
grep -q "dropped $components compression-component tensors" "$work/export_drop.log" || fail "export did not say it dropped the components: $(cat "$work/export_drop.log")"
expect_exit 2 "--components" -- "$winnow" export --format torchvision-vit "$tune/model.h5" --out "$work/x.pt" --components maybe
expect_exit 2 "unfreeze_at" -- "$winnow" train --data.synthetic images --train.unfreeze_at 5

# Token reduction from the command line: random pruning at every block but the first halves the
# tokens per layer; metrics record it; a bad method lists the known ones.
"$winnow" train --data.synthetic images --data.synthetic_samples 256 --model.dim 32 --model.depth 3 \
  --model.heads 2 --model.patch 7 --train.steps 4 --train.global_batch 8 --optim.warmup_steps 1 --train.log_every 4 \
  --compress.criterion random --compress.strategy prune --compress.keep 0.5 --train.run_dir "$work/pruned" \
  > "$work/pruned.log" 2>&1 || { cat "$work/pruned.log"; fail "training with random pruning"; }
grep -q "random+prune at pre_block, layers 1:0.5 2:0.5" "$work/pruned.log" || fail "no reduction plan printed: $(cat "$work/pruned.log")"
grep -q '"tokens_per_layer":\[136,72,40\]' "$work/pruned/metrics.jsonl" ||
  fail "expected tokens per layer [136,72,40] (8 x 17, 8 x 9, 8 x 5): $(cat "$work/pruned/metrics.jsonl")"
expect_exit 2 "known criteria" -- "$winnow" train --data.synthetic images --compress.criterion magic
expect_exit 2 "compress.keep" -- "$winnow" train --data.synthetic images --compress.criterion random --compress.keep 2
expect_exit 0 "cls_attention" -- "$winnow" train --help

# The co-scheduler from the command line: after 2 dense warmup steps it moves capacities every 2
# steps to half the dense block FLOPs; every decision is a metrics line, the step lines carry the
# capacities, config.ini keeps the section, and it refuses to share the model with [compress].
"$winnow" train --data.synthetic images --data.synthetic_samples 256 --model.dim 32 --model.depth 4 \
  --model.heads 2 --model.patch 7 --train.steps 8 --train.global_batch 8 --optim.warmup_steps 1 --train.log_every 1 \
  --coschedule.mode joint --coschedule.target 0.5 --coschedule.warmup_steps 2 --coschedule.interval 2 \
  --coschedule.probe_every 0 --coschedule.grid 4 --coschedule.protected 0 \
  --train.run_dir "$work/cosched" > "$work/cosched.log" 2>&1 || { cat "$work/cosched.log"; fail "co-scheduled training"; }
grep -q '"event":"capacity"' "$work/cosched/metrics.jsonl" || fail "no capacity decision in metrics.jsonl: $(cat "$work/cosched/metrics.jsonl")"
grep -q '"capacity":\[' "$work/cosched/metrics.jsonl" || fail "step lines lack the capacities"
grep -q "coschedule joint" "$work/cosched.log" || fail "the run header does not describe the co-scheduler: $(cat "$work/cosched.log")"
grep -q "^mode = joint" "$work/cosched/config.ini" || fail "config.ini lacks [coschedule] mode"
last_cost=$(grep '"event":"capacity"' "$work/cosched/metrics.jsonl" | tail -1 | sed -n 's/.*"cost":\([0-9.e-]*\).*/\1/p')
awk -v c="$last_cost" 'BEGIN { exit !(c <= 0.5 + 1e-9) }' || fail "the last decision's cost $last_cost is above the 0.5 budget"
# model.h5 stores the structure reached; eval rebuilds it and gives the run's final accuracy.
h5dump -a /meta/config "$work/cosched/model.h5" | grep -q "capacities = [0-9]" || fail "model.h5 does not store the final capacities"
# `winnow eval` of RUN/model.h5 gives the accuracy the run ended at (summary.json).
eval_matches_run() {
  local run=$1 what=$2
  "$winnow" eval --weights "$run/model.h5" > "$run-eval.log" 2>&1 ||
    { cat "$run-eval.log"; fail "eval of the $what model"; }
  local ended evaluated
  ended=$(sed -n 's/.*"eval_accuracy":\([0-9.]*\).*/\1/p' "$run/summary.json")
  evaluated=$(sed -n 's/.*accuracy *\([0-9.]*\)%.*/\1/p' "$run-eval.log")
  awk -v a="$ended" -v b="$evaluated" 'BEGIN { d = a * 100 - b; exit !(d < 1e-3 && d > -1e-3) }' ||
    fail "eval of the $what model gives $evaluated%, the run ended at $ended: the structure was not rebuilt"
}
eval_matches_run "$work/cosched" "co-scheduled"
# The heal phase removes the pruned blocks: layer_only to half the block FLOPs, then 4 heal steps.
# The removal is logged, the checkpoint lists the removed blocks and resumes, model.h5 is the
# smaller model and eval of it gives the run's final accuracy.
heal_args=(--data.synthetic images --data.synthetic_samples 256 --model.dim 32 --model.depth 4
  --model.heads 2 --model.patch 7 --train.global_batch 8 --optim.warmup_steps 1 --train.log_every 1
  --coschedule.mode layer_only --coschedule.target 0.5 --coschedule.warmup_steps 2
  --coschedule.interval 2 --coschedule.probe_every 0 --coschedule.protected 0
  --coschedule.heal_steps 4 --train.run_dir "$work/healed")
"$winnow" train "${heal_args[@]}" --train.steps 10 --train.stop_at 8 > "$work/healed.log" 2>&1 ||
  { cat "$work/healed.log"; fail "co-scheduled training with a heal phase"; }
grep -q '"event":"remove_layers","step":6' "$work/healed/metrics.jsonl" ||
  fail "no removal at the heal start (step 6): $(cat "$work/healed/metrics.jsonl")"
grep -q "heal: removed blocks" "$work/healed.log" || fail "the removal is not in the progress output"
h5dump -a /meta/removed_layers "$work/healed/checkpoints/step-00000008.h5" > /dev/null ||
  fail "the heal-phase checkpoint does not list the removed blocks"
"$winnow" train --resume "$work/healed" --train.stop_at 0 > "$work/healed_resume.log" 2>&1 ||
  { cat "$work/healed_resume.log"; fail "resuming the healed run"; }
h5dump -a /meta/config "$work/healed/model.h5" | grep -q "depth = 2" ||
  fail "model.h5 of the healed run is not the 2-block model"
eval_matches_run "$work/healed" "healed"
# prune: a block removed physically, the smaller model evaluates; ShortGPT measures on calibration data.
"$winnow" prune "$work/cosched/model.h5" --out "$work/cosched/small.h5" --layers 3 > "$work/prune.log" 2>&1 ||
  { cat "$work/prune.log"; fail "prune --layers"; }
grep -q "model.depth = 3" "$work/prune.log" || fail "prune did not write a 3-block model: $(cat "$work/prune.log")"
"$winnow" eval --weights "$work/cosched/small.h5" | grep -q "accuracy" || fail "eval of the pruned model"
"$winnow" prune "$work/cosched/model.h5" --out "$work/cosched/shortgpt.h5" --shortgpt 2 | grep -q "ShortGPT: Block Influence" ||
  fail "prune --shortgpt printed no influence"
expect_exit 2 "layers" -- "$winnow" prune "$work/cosched/model.h5" --out "$work/x.h5" --layers 9
expect_exit 2 "coschedule.mode" -- "$winnow" train --data.synthetic images --coschedule.mode both
expect_exit 2 "two planners" -- "$winnow" train --data.synthetic images --coschedule.mode joint --compress.criterion random
expect_exit 0 "coschedule.target" -- "$winnow" train --help

# Text: prepare byte tokens from fortune-style files, train a tiny GPT, evaluate perplexity.
for i in 1 2 3; do
  for j in $(seq 1 40); do printf 'the quick brown fox %s jumps over the lazy dog %s\n%%\n' "$i" "$j"; done > "$work/text$i"
done
"$winnow" prepare text --in "$work/text1" "$work/text2" "$work/text3" --out "$work/text" > "$work/prep.log" 2>&1 ||
  { cat "$work/prep.log"; fail "prepare text"; }
grep -q "120 documents" "$work/prep.log" || fail "prepare text: expected 120 documents: $(cat "$work/prep.log")"
"$winnow" train --data.train "$work/text/train.h5" --data.eval "$work/text/val.h5" --data.context 16 \
  --compress.criterion random --compress.strategy route --compress.keep 0.5 --model.kind gpt --model.dim 32 --model.depth 3 --model.heads 2 --train.steps 40 --train.global_batch 16 \
  --optim.lr 0.003 --optim.warmup_steps 5 --train.run_dir "$work/gpt" > "$work/gpt.log" 2>&1 ||
  { cat "$work/gpt.log"; fail "gpt training"; }
ppl=$(sed -n 's/.*"eval_perplexity":\([0-9.]*\).*/\1/p' "$work/gpt/summary.json")
awk -v p="$ppl" 'BEGIN { exit !(p > 1 && p < 64) }' || fail "gpt perplexity $ppl not below 64 (of a 256-byte vocabulary)"
"$winnow" eval --weights "$work/gpt/model.h5" > "$work/gpt_eval.log" 2>&1 || { cat "$work/gpt_eval.log"; fail "gpt eval"; }
grep -q "perplexity" "$work/gpt_eval.log" || fail "gpt eval printed no perplexity"
grep -q "inference: .* tok/s (median of" "$work/gpt_eval.log" || fail "gpt eval printed no tok/s line: $(cat "$work/gpt_eval.log")"
# A text file is not image data: the model kind must fit.
expect_exit 1 "images need model.kind=vit" -- "$winnow" train --data.train "$work/text/train.h5" --model.kind vit
echo "cli_e2e: all checks passed"
