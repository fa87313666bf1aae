#!/usr/bin/env bash
# The main job, end to end on a fresh Debian machine: install what is missing, build, convert
# Fashion-MNIST from Debian's dataset-fashion-mnist, train a small ViT on 2 MPI ranks for a few
# minutes, once dense and once with token reduction (2x2 token pooling after the first block),
# evaluate the saved weights, and print both summaries side by side (accuracy, images/s,
# training FLOPs).
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
echo "== 4/5 train a ViT on $ranks MPI ranks: dense, then with token pooling"
mpirun --allow-run-as-root --oversubscribe --bind-to none -np "$ranks" -x OMP_NUM_THREADS=1 \
  "$winnow" train --config launch/configs/demo.ini --train.run_dir "$runs/dense" "$@"
mpirun --allow-run-as-root --oversubscribe --bind-to none -np "$ranks" -x OMP_NUM_THREADS=1 \
  "$winnow" train --config launch/configs/demo.ini --train.run_dir "$runs/pooled" \
  --compress.criterion uniform --compress.strategy pool --compress.keep 0.938 "$@"

echo "== 5/5 evaluate the saved weights"
for variant in dense pooled; do "$winnow" eval --weights "$runs/$variant/model.h5"; done

get() { sed -n "s/.*\"$2\":\([0-9.e+-]*\).*/\1/p" "$runs/$1/summary.json"; }
echo
echo "demo: done. Run directories: $runs/{dense,pooled} (config.ini, metrics.jsonl, summary.json, model.h5)"
printf '\n  %-34s %14s %14s\n' "" "dense" "token pooling"
printf '  %-34s %13.2f%% %13.2f%%\n' "test accuracy" "$(awk -v a="$(get dense eval_accuracy)" 'BEGIN{print 100*a}')" \
  "$(awk -v a="$(get pooled eval_accuracy)" 'BEGIN{print 100*a}')"
printf '  %-34s %14.1f %14.1f\n' "images/s (training, all ranks)" "$(get dense samples_per_second)" \
  "$(get pooled samples_per_second)"
printf '  %-34s %14.3g %14.3g\n' "training FLOPs (analytic)" "$(get dense training_flops)" "$(get pooled training_flops)"
printf '  %-34s %14.1f %14.1f\n' "training seconds" "$(get dense train_seconds)" "$(get pooled train_seconds)"
