#!/bin/sh
# Distributed benchmark: runs `winnow bench-dist` on 2 ranks x 1 thread and on 1 rank x 2 threads,
# alternating for ROUNDS rounds (so both layouts see the same machine load), and prints the
# step-time ratio of each round and the median ratio, plus the 2-rank run's all-reduce table and
# communication shares.
#
#   launch/bench_dist.sh [winnow options...]
#   ROUNDS=3 WINNOW=build/launch/winnow launch/bench_dist.sh --config launch/configs/bench-vit.ini
#
# Options go to both runs (default: the Fashion-MNIST ViT shape on synthetic images, 1 MiB
# buckets). Under the 2-rank run the auto backend is mpi; the 1-rank run uses local.
set -eu

WINNOW=${WINNOW:-build/launch/winnow}
ROUNDS=${ROUNDS:-3}
MPIRUN=${MPIRUN:-mpirun}
if [ "$#" -eq 0 ]; then
  set -- --config launch/configs/bench-vit.ini --model.dim 128 --model.depth 6 --model.heads 4 \
    --model.patch 4 --train.global_batch 128 --dist.bucket_mb 1
fi
[ -x "$WINNOW" ] || { echo "bench_dist.sh: no executable at $WINNOW (set WINNOW=...)" >&2; exit 2; }

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

field() {  # field NAME FILE: the value of NAME=... on the "result" line
  sed -n "s/^result .*$1=\([^ ]*\).*/\1/p" "$2"
}

round=1
while [ "$round" -le "$ROUNDS" ]; do
  sizes=""
  [ "$round" -gt 1 ] && sizes="--bench.sizes_mb=1"  # the all-reduce table once is enough
  OMP_NUM_THREADS=1 "$MPIRUN" --allow-run-as-root --oversubscribe --bind-to none \
    -x OMP_NUM_THREADS -np 2 "$WINNOW" bench-dist "$@" --dist.threads 1 $sizes \
    >"$out/two.$round" 2>&1 || { cat "$out/two.$round" >&2; exit 1; }
  OMP_NUM_THREADS=2 "$WINNOW" bench-dist "$@" --dist.threads 2 \
    >"$out/one.$round" 2>&1 || { cat "$out/one.$round" >&2; exit 1; }
  [ "$round" -eq 1 ] && cat "$out/two.1"
  two=$(field step_ms "$out/two.$round")
  one=$(field step_ms "$out/one.$round")
  exposed=$(field exposed_share "$out/two.$round")
  echo "round $round: 2 ranks x 1 thread $two ms, 1 rank x 2 threads $one ms," \
    "ratio $(echo "$one $two" | awk '{printf "%.2f", $1 / $2}')x," \
    "waiting on communication $(echo "$exposed" | awk '{printf "%.1f", 100 * $1}') %"
  echo "$one $two $exposed" >>"$out/ratios"
  round=$((round + 1))
done
awk '{ r[NR] = $1 / $2; e[NR] = $3 }
     END {
       n = NR
       for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) {
         if (r[j] < r[i]) { t = r[i]; r[i] = r[j]; r[j] = t }
         if (e[j] < e[i]) { t = e[i]; e[i] = e[j]; e[j] = t }
       }
       m = (n % 2) ? r[(n + 1) / 2] : (r[n / 2] + r[n / 2 + 1]) / 2
       me = (n % 2) ? e[(n + 1) / 2] : (e[n / 2] + e[n / 2 + 1]) / 2
       printf "(b) step time, 1 rank x 2 threads / 2 ranks x 1 thread: median %.2fx over %d rounds (min %.2f, max %.2f)\n", m, n, r[1], r[n]
       printf "(c) waiting on gradient communication, 2 ranks: median %.1f %% of the step (min %.1f, max %.1f)\n", 100 * me, 100 * e[1], 100 * e[n]
     }' "$out/ratios"
