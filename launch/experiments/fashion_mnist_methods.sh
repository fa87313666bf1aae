#!/usr/bin/env bash
# Fashion-MNIST: test accuracy against training FLOPs for dense training and each token-reduction
# method at a matched per-step budget (~60% of dense training FLOPs; pool's discrete windows give
# 50%), on the demo's ViT (width 128, depth 4, patch 4 -> 50 tokens), 700 steps x 128 images,
# 2 MPI ranks. The keep values come from
#   winnow bench-tokens --data.train datasets/fashion-mnist/train.h5 --model.dim 128 --model.depth 4 \
#     --model.heads 4 --model.patch 4 --train.global_batch 128 --bench.flops_ratio 0.6
# Writes runs/fashion-mnist-methods/<variant>/ and results.tsv; docs/plots/ gets the plot.
#   launch/experiments/fashion_mnist_methods.sh [extra winnow train options]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
winnow=build/launch/winnow
out=runs/fashion-mnist-methods
mkdir -p "$out"
base=(--config launch/configs/demo.ini --train.eval_every 0 --train.log_every 100)
variants=(
  "dense|"
  "dense-420-steps|--train.steps 420 --optim.warmup_steps 42"
  "random+prune|--compress.criterion random --compress.strategy prune --compress.keep 0.66"
  "norm+prune|--compress.criterion norm --compress.strategy prune --compress.keep 0.66"
  "cls_attention+prune|--compress.criterion cls_attention --compress.strategy prune --compress.keep 0.551"
  "similarity+merge|--compress.criterion similarity --compress.strategy merge --compress.keep 0.551"
  "uniform+pool|--compress.criterion uniform --compress.strategy pool --compress.keep 0.938"
  "random+route|--compress.criterion random --compress.strategy route --compress.keep 0.165"
)
printf 'variant\ttraining_flops\teval_accuracy\ttrain_seconds\n' > "$out/results.tsv"
for v in "${variants[@]}"; do
  name=${v%%|*}
  read -r -a extra <<< "${v#*|}"
  echo "== $name"
  mpirun --allow-run-as-root --oversubscribe --bind-to none -np 2 -x OMP_NUM_THREADS=1 \
    "$winnow" train "${base[@]}" --train.run_dir "$out/$name" "${extra[@]}" "$@" > "$out/$name.log" 2>&1 ||
    { tail -20 "$out/$name.log"; exit 1; }
  s=$out/$name/summary.json
  get() { sed -n "s/.*\"$1\":\\([0-9.e+-]*\\).*/\\1/p" "$s"; }
  printf '%s\t%s\t%s\t%s\n' "$name" "$(get training_flops)" "$(get eval_accuracy)" "$(get train_seconds)" | tee -a "$out/results.tsv"
done
python3 "$root/launch/experiments/plot_accuracy_flops.py" "$out/results.tsv" docs/plots/fashion_mnist_methods.svg
