#!/usr/bin/env bash
# Fashion-MNIST, the demo's ViT (width 128, depth 4, patch 4, 700 steps x 128 images, 2 MPI
# ranks): Progressive Layer Dropping (gate.kind=pld, θ̄ = 0.5) against dense training, and against
# dense training cut to PLD's measured training FLOPs (fewer steps), 3 seeds each.
# γ = 0.005 instead of DeepSpeed's 0.001: θ(t) then reaches θ̄ within 700 steps (DeepSpeed's
# default is sized for ~10^5-step BERT runs; at 0.001 θ(700) would still be 0.75). With STEPS=150
# set GAMMA=0.02 to keep a similar shape (θ within 5% of θ̄ by the end).
# Success criterion, stated before running: PLD within 1 point of dense accuracy, and above the
# dense run cut to the same FLOPs by more than the seeds' std.
# Writes runs/pld-fashion-mnist/<variant>-s<seed>/ and results.tsv, then prints mean ± std.
#   launch/experiments/pld_fashion_mnist.sh [extra winnow train options]
#   STEPS=150 GAMMA=0.02 launch/experiments/pld_fashion_mnist.sh   # shorter (warmup 10%)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
winnow=build/launch/winnow
out=runs/pld-fashion-mnist
mkdir -p "$out"
steps=${STEPS:-700}
base=(--config launch/configs/demo.ini --train.eval_every 0 --train.log_every 50
      --optim.warmup_steps $((steps / 10)))
pld=(--gate.kind pld --gate.theta_bar 0.5 --gate.gamma "${GAMMA:-0.005}")
train() {  # name seed options...
  local name=$1 seed=$2
  shift 2
  if [ -s "$out/$name-s$seed/summary.json" ]; then return; fi
  echo "== $name seed $seed"
  mpirun --allow-run-as-root --oversubscribe --bind-to none -np 2 -x OMP_NUM_THREADS=1 \
    "$winnow" train "${base[@]}" --train.seed "$seed" --train.run_dir "$out/$name-s$seed" "$@" \
    > "$out/$name-s$seed.log" 2>&1 || { tail -20 "$out/$name-s$seed.log"; exit 1; }
}
get() { sed -n "s/.*\"$2\":\\([0-9.e+-]*\\).*/\\1/p" "$out/$1/summary.json"; }
for seed in 0 1 2; do
  train dense "$seed" --train.steps "$steps" "$@"
  train pld "$seed" --train.steps "$steps" "${pld[@]}" "$@"
done
# Dense cut to PLD's FLOPs: the same schedule shape over proportionally fewer steps.
ratio=$(awk -v a="$(get pld-s0 training_flops)" -v b="$(get dense-s0 training_flops)" 'BEGIN{print a/b}')
cut=$(awk -v r="$ratio" -v s="$steps" 'BEGIN{printf "%d", s*r + 0.5}')
for seed in 0 1 2; do
  train "dense-$cut-steps" "$seed" --train.steps "$cut" "$@"
done
printf 'variant\tseed\ttraining_flops\teval_accuracy\ttrain_seconds\n' > "$out/results.tsv"
for dir in "$out"/*-s[0-9]; do
  name=$(basename "$dir")
  printf '%s\t%s\t%s\t%s\t%s\n' "${name%-s*}" "${name##*-s}" "$(get "$name" training_flops)" \
    "$(get "$name" eval_accuracy)" "$(get "$name" train_seconds)" >> "$out/results.tsv"
done
python3 - "$out/results.tsv" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
print(f"{'variant':<22}{'n':>3}{'accuracy % (mean ± std)':>28}{'training FLOPs':>16}{'train s':>16}")
for name in sorted({r["variant"] for r in rows}):
    group = [r for r in rows if r["variant"] == name]
    acc = [100 * float(r["eval_accuracy"]) for r in group]
    flops = statistics.mean(float(r["training_flops"]) for r in group)
    secs = [float(r["train_seconds"]) for r in group]
    sd = statistics.stdev(acc) if len(acc) > 1 else 0.0
    ssd = statistics.stdev(secs) if len(secs) > 1 else 0.0
    print(f"{name:<22}{len(group):>3}{statistics.mean(acc):>19.2f} ± {sd:<5.2f}{flops:>16.3e}"
          f"{statistics.mean(secs):>10.1f} ± {ssd:<4.1f}")
PY
