#!/usr/bin/env bash
# A training data file damaged after a run started: a chunk of /tokens overwritten in the middle
# of its compressed bytes. Resuming the run on 2 ranks must end both ranks with exit 1 and one
# message that names the file, the dataset and the sample range; no backtrace, no signal; every
# checkpoint already written is intact. A file missing chunks (its shape enlarged) is refused
# before HDF5 reads it. Needs python3-h5py (for the chunk addresses); exit 77 without it.
# usage: damaged_data_e2e.sh WINNOW_BINARY MPIEXEC
set -euo pipefail
winnow=$1
mpiexec=$2
source "$(dirname "$0")/e2e_common.sh"  # work, fail, expect_exit
python=
for candidate in /usr/bin/python3 "$(command -v python3 || true)"; do  # Debian's has python3-h5py
  if [ -x "$candidate" ] && "$candidate" -c "import h5py" 2>/dev/null; then python=$candidate; break; fi
done
if [ -z "$python" ]; then
  echo "damaged_data_e2e: skipped: python3 with h5py is needed to find the chunks"; exit 77
fi
mpirun=("$mpiexec" --allow-run-as-root --oversubscribe --bind-to none --mca btl self,vader
        --mca btl_vader_single_copy_mechanism none -x OMP_NUM_THREADS=1)

# A token file of 4 chunks (262144 int32 tokens per 1 MiB chunk): ~900k bytes of text.
"$python" - "$work/text.txt" <<'PY'
import random, sys
rng = random.Random(0)
words = ["winnow", "token", "layer", "prune", "merge", "budget", "train", "rank", "chunk", "loss"]
with open(sys.argv[1], "w") as f:
    for doc in range(3000):
        f.write(" ".join(rng.choice(words) for _ in range(50)) + "\n%\n")
PY
"$winnow" prepare text --in "$work/text.txt" --out "$work/data" > "$work/prepare.log" 2>&1 ||
  fail "prepare: $(cat "$work/prepare.log")"

model=(--model.kind gpt --model.dim 16 --model.depth 1
       --model.heads 2 --data.context 16 --train.global_batch 8 --optim.warmup_steps 1
       --dist.threads 1 --train.eval_every 0)
timeout --kill-after=10 120 "${mpirun[@]}" -np 2 "$winnow" train --data.train "$work/data/train.h5" "${model[@]}" --train.steps 4 \
  --checkpoint.every 2 --train.run_dir "$work/run" > "$work/train.log" 2>&1 ||
  fail "the first run: $(cat "$work/train.log")"

# Damage chunk 2 of /tokens in place (the run's checkpoints stay as they are).
range=$("$python" - "$work/data/train.h5" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    d = f["/tokens"]
    assert d.id.get_num_chunks() >= 3, d.id.get_num_chunks()
    info = d.id.get_chunk_info(2)
    rows = d.chunks[0]
    begin = info.chunk_offset[0]
    print(info.byte_offset + info.size // 2 - 16, begin, min(begin + rows, d.shape[0]), d.shape[0])
PY
)
read -r at begin end total <<<"$range"
printf '\xff%.0s' $(seq 32) | dd of="$work/data/train.h5" bs=1 seek="$at" conv=notrunc status=none

start=$(date +%s)
set +e
out=$(timeout --kill-after=10 120 "${mpirun[@]}" -np 2 "$winnow" train --resume "$work/run" \
      --train.steps 8 2>&1)
rc=$?
set -e
echo "$out" | grep "error:"
[ "$rc" -eq 1 ] || fail "resume on the damaged file exited $rc, expected 1: $out"
[ $(( $(date +%s) - start )) -le 60 ] || fail "the job took more than 60 s to end"
grep -q -F "data file '$work/data/train.h5' dataset '/tokens': cannot read tokens [$begin, $end) of $total" \
  <<<"$out" || fail "the message does not name the file, the dataset and tokens [$begin, $end): $out"
[ "$(grep -c "error:" <<<"$out")" -eq 1 ] || fail "expected one error line (rank 0's): $out"
if grep -E -q "frame #[0-9]+|Exception raised from|Signal|signal" <<<"$out"; then
  fail "a backtrace or a signal in the output: $out"
fi
for f in "$work/run/checkpoints"/step-*.h5; do
  "$winnow" inspect "$f" --verify > /dev/null 2>&1 || fail "checkpoint $f was damaged"
done
[ -f "$work/run/model.h5" ] || fail "the first run's model.h5 is gone"

# A shape enlarged so that the file lacks chunks: refused by the chunk count, before any read.
"$python" - "$work/data/train.h5" "$work/grown.h5" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1], "r") as src, h5py.File(sys.argv[2], "w") as dst:
    for k, v in src.attrs.items():
        dst.attrs[k] = v
    tokens = src["/tokens"]
    grown = dst.create_dataset("/tokens", shape=(tokens.shape[0] * 4,), dtype=tokens.dtype,
                               chunks=tokens.chunks, compression="gzip")
    grown[:1000] = 1
    dst["/doc_offsets"] = [0, tokens.shape[0] * 4]
PY
expect_exit 1 "the file stores 1 of the" -- "$winnow" train "${model[@]}" --data.train "$work/grown.h5" \
  --train.steps 1 --checkpoint.dir none
echo "damaged_data_e2e: ok (tokens [$begin, $end) of $total named; checkpoints intact; missing chunks refused)"
