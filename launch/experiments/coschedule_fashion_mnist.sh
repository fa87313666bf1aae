#!/usr/bin/env bash
# Data-model co-compression on Fashion-MNIST (launch/configs/coschedule-vit.ini: ViT 64 x 8 blocks,
# 7x7 patches, 240 steps x 64 images, 2 MPI ranks): the co-scheduler's modes on one code path, at budgets
# ρ* ∈ {0.75, 0.6, 0.5} of the dense block FLOPs, 3 seeds each:
#   joint        capacities on both axes, from the token-evolution statistics
#   token_only   thinning only;  layer_only  whole layers only
#   open_loop    PLD's linear depth profile rescaled to ρ(t), no statistics
#   random_token token_only with random layer weights and random token selection (the control)
#   random_layer layer_only with random layer weights (the control)
#   shallow      a dense model with fewer blocks, of about joint's training FLOPs
# and dense (ρ = 1). Every co-scheduled run has the same budget schedule (10 % dense steps, cosine
# ramp over 30 %, hold; decisions every 12 steps, probes every 24), so their training FLOPs match
# by construction.
# Success criterion, stated before running (issue 11): joint beats both single-axis fronts
# (token_only, layer_only) at >= 2 of the 3 budgets by more than 2 std, and matches or beats the
# shallow dense model. Reported whichever way it comes out.
# Writes runs/coschedule-fashion-mnist/<variant>-r<budget>-s<seed>/, results.tsv, a summary table
# (mean ± std) and, with python3-matplotlib, docs/plots/coschedule_fashion_mnist.svg.
#   launch/experiments/coschedule_fashion_mnist.sh [extra winnow train options]
#   SEEDS="0" BUDGETS="0.5" STEPS=200 launch/experiments/coschedule_fashion_mnist.sh   # a quick look
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
winnow=${WINNOW:-build/launch/winnow}
out=${OUT:-runs/coschedule-fashion-mnist}
mkdir -p "$out"
steps=${STEPS:-240}
seeds=${SEEDS:-0 1 2}
budgets=${BUDGETS:-0.75 0.6 0.5}
base=(--config launch/configs/coschedule-vit.ini --train.steps "$steps"
      --optim.warmup_steps $((steps / 10)) --coschedule.warmup_steps $((steps / 10))
      --coschedule.ramp_steps $((steps * 3 / 10)) --checkpoint.dir none)
[ -s datasets/fashion-mnist/train.h5 ] || "$winnow" prepare fashion-mnist --out datasets/fashion-mnist
train() {  # name seed options...
  local name=$1 seed=$2
  shift 2
  if [ -s "$out/$name-s$seed/summary.json" ]; then return; fi
  echo "== $name seed $seed ($(date +%H:%M:%S))"
  mpirun --allow-run-as-root --oversubscribe --bind-to none -np 2 -x OMP_NUM_THREADS=1 \
    "$winnow" train "${base[@]}" --train.seed "$seed" --train.run_dir "$out/$name-s$seed" "$@" \
    > "$out/$name-s$seed.log" 2>&1 || { tail -20 "$out/$name-s$seed.log"; exit 1; }
}
get() { sed -n "s/.*\"$2\":\\([0-9.e+-]*\\).*/\\1/p" "$out/$1/summary.json"; }
for seed in $seeds; do
  train dense "$seed" "$@"
  for rho in $budgets; do
    cs=(--coschedule.target "$rho")
    train "joint-r$rho" "$seed" "${cs[@]}" --coschedule.mode joint "$@"
    train "token_only-r$rho" "$seed" "${cs[@]}" --coschedule.mode token_only "$@"
    train "layer_only-r$rho" "$seed" "${cs[@]}" --coschedule.mode layer_only "$@"
    train "open_loop-r$rho" "$seed" "${cs[@]}" --coschedule.mode open_loop "$@"
    train "random_token-r$rho" "$seed" "${cs[@]}" --coschedule.mode token_only \
      --coschedule.influence random --coschedule.criterion random "$@"
    train "random_layer-r$rho" "$seed" "${cs[@]}" --coschedule.mode layer_only \
      --coschedule.influence random "$@"
    # The shallow dense model closest to joint's training FLOPs (blocks dominate them).
    ratio=$(awk -v a="$(get "joint-r$rho-s$seed" training_flops)" \
                -v b="$(get "dense-s$seed" training_flops)" 'BEGIN{print a/b}')
    depth=$(awk -v r="$ratio" 'BEGIN{d = int(8 * r + 0.5); if (d < 1) d = 1; print d}')
    train "shallow-r$rho" "$seed" --model.depth "$depth" "$@"
  done
done
printf 'variant\tbudget\tseed\ttraining_flops\teval_accuracy\ttrain_seconds\n' > "$out/results.tsv"
for dir in "$out"/*-s[0-9]; do
  [ -s "$dir/summary.json" ] || continue
  name=$(basename "$dir")
  run=${name%-s*}
  variant=${run%-r*}
  budget=1
  [ "$variant" != "$run" ] && budget=${run##*-r}
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$variant" "$budget" "${name##*-s}" \
    "$(get "$name" training_flops)" "$(get "$name" eval_accuracy)" \
    "$(get "$name" train_seconds)" >> "$out/results.tsv"
done
/usr/bin/python3 launch/experiments/coschedule_report.py "$out/results.tsv" \
  --svg docs/plots/coschedule_fashion_mnist.svg \
  --title "Fashion-MNIST ViT 64x8 (7x7 patches), $steps steps x 64: accuracy vs training FLOPs"
