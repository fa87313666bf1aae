#!/usr/bin/env bash
# Proxy validity of the co-scheduler's layer influences (issue 11; co_compression.md §8.3): on a
# 12-block ViT trained on Fashion-MNIST with token-evolution statistics and Taylor saliency, the
# Spearman correlation between each cheap influence signal (Block Influence, relative update,
# Taylor saliency: the EMAs at the end of training) and the true loss increase when that one block
# is removed (test loss with gate.kind=skip on it, SLEB's oracle). Target from the note: ρ_s >= 0.7;
# reported whichever way it comes out.
#   launch/experiments/proxy_validity.sh [extra winnow train options]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
winnow=${WINNOW:-build/launch/winnow}
out=${OUT:-runs/proxy-validity}
steps=${STEPS:-400}
mkdir -p "$out"
[ -s datasets/fashion-mnist/train.h5 ] || "$winnow" prepare fashion-mnist --out datasets/fashion-mnist
if [ ! -s "$out/run/summary.json" ]; then
  mpirun --allow-run-as-root --oversubscribe --bind-to none -np 2 -x OMP_NUM_THREADS=1 \
    "$winnow" train --config launch/configs/coschedule-vit.ini --model.depth 12 \
    --train.steps "$steps" --optim.warmup_steps $((steps / 10)) --train.log_every 50 \
    --monitor.statistics true --monitor.taylor true --checkpoint.dir none \
    --train.run_dir "$out/run" "$@" > "$out/train.log" 2>&1 || { tail -20 "$out/train.log"; exit 1; }
fi
: > "$out/removal.tsv"
base=$("$winnow" eval --weights "$out/run/model.h5" | sed -n 's/^  loss *//p')
for layer in $(seq 0 11); do
  loss=$("$winnow" eval --weights "$out/run/model.h5" --gate.kind skip --gate.layers "$layer" |
         sed -n 's/^  loss *//p')
  printf '%s\t%s\n' "$layer" "$loss" >> "$out/removal.tsv"
done
/usr/bin/python3 - "$out/run/metrics.jsonl" "$out/removal.tsv" "$base" <<'PY'
import json, sys
metrics, removal, base = sys.argv[1], sys.argv[2], float(sys.argv[3])
last = [json.loads(l) for l in open(metrics) if '"evolution_bi"' in l][-1]
increase = [float(l.split("\t")[1]) - base for l in open(removal)]
def ranks(values):
    order = sorted(range(len(values)), key=lambda i: values[i])
    r = [0.0] * len(values)
    i = 0
    while i < len(order):  # average ranks of ties
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            r[order[k]] = (i + j) / 2.0
        i = j + 1
    return r
def spearman(a, b):
    ra, rb = ranks(a), ranks(b)
    ma, mb = sum(ra) / len(ra), sum(rb) / len(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    va = sum((x - ma) ** 2 for x in ra) ** 0.5
    vb = sum((y - mb) ** 2 for y in rb) ** 0.5
    return cov / (va * vb)
print(f"dense test loss {base:.4f}; loss increase when one block is removed, per block:")
print("  " + " ".join(f"{x:+.3f}" for x in increase))
for key, name in (("evolution_bi", "Block Influence"), ("evolution_relative_update", "relative update"),
                  ("evolution_taylor", "Taylor saliency")):
    values = last[key]
    print(f"{name:<16} Spearman {spearman(values, increase):+.3f}   values " +
          " ".join(f"{v:.3g}" for v in values))
PY
