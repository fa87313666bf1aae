#!/usr/bin/env bash
# Learned thresholds (LTMP) the way the paper uses them: fine-tune only the thresholds on a trained
# dense model (frozen backbone), toward 60 % of the dense block FLOPs, 3 seeds.
#   1. the dense demo ViT (width 128, depth 4, patch 4: 50 tokens), DENSE_STEPS steps, seed 0
#   2. per seed: --init-from it, train.freeze = backbone, criterion threshold (attention received
#      after the attention of blocks 1-3), strategy policy, FLOPs regulariser target 0.6, STEPS steps
#   3. each fine-tune's evaluation: accuracy and eval_flops_ratio (hard thresholds, tokens removed,
#      each test image's block FLOPs on the tokens it kept, over the dense model's)
# Goal (issue 10), stated before running: the reached ratio within ±0.02 of 0.6; accuracy reported
# next to the dense model's either way (docs/results.md, "Learned thresholds").
#   launch/experiments/ltmp_finetune_fashion_mnist.sh
#   SEEDS="0" STEPS=30 THRESHOLD_LR=0.0003 launch/experiments/ltmp_finetune_fashion_mnist.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
winnow=${WINNOW:-build/launch/winnow}
out=${OUT:-runs/ltmp-finetune-fashion-mnist}
ranks=${RANKS:-2}
seeds=${SEEDS:-0 1 2}
dense_steps=${DENSE_STEPS:-120}
steps=${STEPS:-100}
threshold_lr=${THRESHOLD_LR:-0.001}
flops_loss=${FLOPS_LOSS:-10}
run() { mpirun --allow-run-as-root --oversubscribe -np "$ranks" --bind-to none -x OMP_NUM_THREADS=1 \
  "$winnow" train --config launch/configs/demo.ini --train.eval_every 0 --train.log_every 10 \
  --dist.threads 1 "$@"; }
mkdir -p "$out"
dense="${DENSE:-$out/dense}"
if [ ! -f "$dense/model.h5" ]; then
  run --train.steps "$dense_steps" --optim.warmup_steps $((dense_steps / 10)) --train.seed 0 \
    --train.run_dir "$dense" > "$out/dense.log" 2>&1
fi
for seed in $seeds; do
  dir="$out/ltmp-s$seed"
  [ -f "$dir/summary.json" ] && continue
  run --init-from "$dense/model.h5" --train.freeze backbone --train.steps "$steps" \
    --optim.warmup_steps $((steps / 10)) --train.seed "$seed" \
    --compress.criterion threshold --compress.strategy policy --compress.layers 1,2,3 \
    --compress.temperature 0.01 --compress.threshold_init 0.01 \
    --compress.target_flops 0.6 --compress.flops_loss "$flops_loss" --optim.threshold_lr "$threshold_lr" \
    --train.run_dir "$dir" > "$out/ltmp-s$seed.log" 2>&1
done
grep -h "eval accuracy" "$out"/*/train.log "$out"/*.log 2>/dev/null || true
