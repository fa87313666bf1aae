#!/usr/bin/env bash
# Byte-level GPT on Debian's fortunes: validation loss of dense training against random-LTD-style
# routing (random and norm criteria) at matched training FLOPs. Route keeps half the tokens in
# blocks 1 and 2 of 4, for ~0.76 of dense FLOPs per step; "dense-matched" trains dense for as many
# steps as fit the same FLOPs. 2 MPI ranks.
#   launch/experiments/gpt_fortunes_route.sh [steps, default 400]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
winnow=build/launch/winnow
steps=${1:-400}
out=runs/gpt-fortunes-route
mkdir -p "$out"
if [ ! -s datasets/fortunes/train.h5 ]; then
  # shellcheck disable=SC2046
  "$winnow" prepare text --out datasets/fortunes \
    --in $(find /usr/share/games/fortunes -type f ! -name '*.dat' ! -name '*.u8' | sort)
fi
base=(--config launch/configs/gpt-fortunes.ini --train.eval_every 0 --train.log_every 100
      --train.eval_max_samples 2048 --optim.warmup_steps $((steps / 10)))
matched=$((steps * 76 / 100))
variants=(
  "dense|--train.steps $steps"
  "dense-matched|--train.steps $matched"
  "random+route|--train.steps $steps --compress.criterion random --compress.strategy route --compress.keep 0.5"
  "norm+route|--train.steps $steps --compress.criterion norm --compress.strategy route --compress.keep 0.5"
)
printf 'variant\ttraining_flops\teval_loss\teval_perplexity\ttrain_seconds\n' > "$out/results.tsv"
for v in "${variants[@]}"; do
  name=${v%%|*}
  read -r -a extra <<< "${v#*|}"
  echo "== $name"
  mpirun --allow-run-as-root --oversubscribe --bind-to none -np 2 -x OMP_NUM_THREADS=1 \
    "$winnow" train "${base[@]}" --train.run_dir "$out/$name" "${extra[@]}" > "$out/$name.log" 2>&1 ||
    { tail -20 "$out/$name.log"; exit 1; }
  s=$out/$name/summary.json
  get() { sed -n "s/.*\"$1\":\\([0-9.e+-]*\\).*/\\1/p" "$s"; }
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$(get training_flops)" "$(get eval_loss)" "$(get eval_perplexity)" \
    "$(get train_seconds)" | tee -a "$out/results.tsv"
done
