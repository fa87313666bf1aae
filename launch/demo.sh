#!/usr/bin/env bash
# The main job, end to end on a fresh Debian machine: install what is missing, build, convert
# Fashion-MNIST from Debian's dataset-fashion-mnist, train a small ViT on 2 MPI ranks for a few
# minutes, evaluate the saved weights, and print a summary (accuracy, images/s, training FLOPs).
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

echo "== 4/5 train a ViT on $ranks MPI ranks"
run=runs/demo-$(date +%Y%m%d-%H%M%S)
mpirun --allow-run-as-root --oversubscribe --bind-to none -np "$ranks" -x OMP_NUM_THREADS=1 \
  "$winnow" train --config launch/configs/demo.ini --train.run_dir "$run" "$@"

echo "== 5/5 evaluate the saved weights"
"$winnow" eval --weights "$run/model.h5"

echo
echo "demo: done. Run directory: $run (config.ini, metrics.jsonl, summary.json, model.h5)"
sed -e 's/[{}"]//g' -e 's/,/\n  /g' "$run/summary.json" | sed '1s/^/  /'
