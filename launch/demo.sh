#!/usr/bin/env bash
# The main job, end to end on a fresh Debian machine: install what is missing, build, convert
# Fashion-MNIST from Debian's dataset-fashion-mnist, train a small ViT on 2 MPI ranks for a few
# minutes three times — dense; with a training-free method (2x2 token pooling after the first
# block, about half the training FLOPs); and with the co-scheduler (layer pruning and token
# reduction decided from token-evolution statistics, ramped to 40 % of the dense block FLOPs so
# that the whole run costs about what pooling costs) — evaluate the saved weights, and print the
# three summaries side by side (accuracy, images/s, training FLOPs, layers and tokens kept).
#   launch/demo.sh [extra winnow train options, e.g. --train.steps 200]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
ranks=${WINNOW_DEMO_RANKS:-2}

echo "== 1/5 setup"
launch/setup.sh
echo "== 2/5 build"
launch/build.sh
winnow=$root/build/launch/winnow

echo "== 3/5 prepare Fashion-MNIST"
if [ -s datasets/fashion-mnist/train.h5 ] && [ -s datasets/fashion-mnist/test.h5 ]; then
  echo "datasets/fashion-mnist already prepared"
else
  "$winnow" prepare fashion-mnist --out datasets/fashion-mnist
fi

runs=runs/demo-$(date +%Y%m%d-%H%M%S)
echo "== 4/5 train a ViT on $ranks MPI ranks: dense, with token pooling, with the co-scheduler"
mpirun --allow-run-as-root --oversubscribe --bind-to none -np "$ranks" -x OMP_NUM_THREADS=1 \
  "$winnow" train --config launch/configs/demo.ini --train.run_dir "$runs/dense" "$@"
mpirun --allow-run-as-root --oversubscribe --bind-to none -np "$ranks" -x OMP_NUM_THREADS=1 \
  "$winnow" train --config launch/configs/demo.ini --train.run_dir "$runs/pooled" \
  --compress.criterion uniform --compress.strategy pool --compress.keep 0.938 "$@"
mpirun --allow-run-as-root --oversubscribe --bind-to none -np "$ranks" -x OMP_NUM_THREADS=1 \
  "$winnow" train --config launch/configs/demo.ini --train.run_dir "$runs/coscheduled" \
  --coschedule.mode joint --coschedule.target 0.4 --coschedule.warmup_steps 35 \
  --coschedule.ramp_steps 140 --coschedule.interval 35 --coschedule.probe_every 40 \
  --coschedule.statistics_every 1 --coschedule.protected 0 "$@"

echo "== 5/5 evaluate the saved weights"
for variant in dense pooled coscheduled; do "$winnow" eval --weights "$runs/$variant/model.h5"; done

get() { sed -n "s/.*\"$2\":\([0-9.e+-]*\).*/\1/p" "$runs/$1/summary.json"; }
# The last step line's tokens per layer (summed over the step's images) and capacities.
last_step() { grep '"event":"step"' "$runs/$1/metrics.jsonl" | tail -1; }
tokens() { last_step "$1" | sed -n 's/.*"tokens_per_layer":\[\([0-9,]*\)\].*/\1/p' |
  awk -F, -v b="$(sed -n 's/^global_batch = //p' "$runs/$1/config.ini")" \
    '{ s = ""; for (i = 1; i <= NF; i++) s = s (i > 1 ? "/" : "") int($i / b + 0.5); print s }'; }
layers() { local caps; caps=$(last_step "$1" | sed -n 's/.*"capacity":\[\([0-9.,]*\)\].*/\1/p')
  if [ -z "$caps" ]; then sed -n 's/^depth = //p' "$runs/$1/config.ini"; else
    awk -F, '{ n = 0; for (i = 1; i <= NF; i++) n += ($i > 0); print n " of " NF }' <<<"$caps"; fi; }
pct() { awk -v a="$(get "$1" eval_accuracy)" 'BEGIN{printf "%.2f%%", 100*a}'; }
echo
echo "demo: done. Run directories: $runs/{dense,pooled,coscheduled} (config.ini, metrics.jsonl, summary.json, model.h5)"
printf '\n  %-34s %14s %14s %14s\n' "" "dense" "token pooling" "co-scheduler"
printf '  %-34s %14s %14s %14s\n' "test accuracy" "$(pct dense)" "$(pct pooled)" "$(pct coscheduled)"
printf '  %-34s %14.1f %14.1f %14.1f\n' "images/s (training, all ranks)" "$(get dense samples_per_second)" \
  "$(get pooled samples_per_second)" "$(get coscheduled samples_per_second)"
printf '  %-34s %14.3g %14.3g %14.3g\n' "training FLOPs (analytic)" "$(get dense training_flops)" \
  "$(get pooled training_flops)" "$(get coscheduled training_flops)"
printf '  %-34s %14.1f %14.1f %14.1f\n' "training seconds" "$(get dense train_seconds)" \
  "$(get pooled train_seconds)" "$(get coscheduled train_seconds)"
printf '  %-34s %14s %14s %14s\n' "layers running at the end" "$(layers dense)" "$(layers pooled)" "$(layers coscheduled)"
printf '  %-34s %14s %14s %14s\n' "tokens per image per layer (end)" "$(tokens dense)" "$(tokens pooled)" "$(tokens coscheduled)"
