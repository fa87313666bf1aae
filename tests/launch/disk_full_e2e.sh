#!/usr/bin/env bash
# A full disk while winnow writes, end to end with the `winnow` executable. Every case must end
# with exit code 1 (on every rank), one short message naming what failed and the system's reason,
# no C++ backtrace, no signal, and no temporary file left behind; what was saved before must stay
# loadable.
#   tmpfs mode (needs mount: root or CAP_SYS_ADMIN; exits 77 = skipped otherwise): a 3 MB tmpfs
#     - the issue's reproduction: the step-2 checkpoint fits, step 4 does not (1 rank, 2 ranks);
#     - model.h5 at the end of a run (1 rank, 2 ranks), metrics.jsonl during a run;
#     - `winnow prepare text`, `winnow export`, `winnow import` writing to the full disk.
#   ulimit mode (runs anywhere): a file-size limit (ulimit -f, EFBIG) instead of a small disk,
#     for the first checkpoint and model.h5 on one rank.
# usage: disk_full_e2e.sh WINNOW_BINARY MPIEXEC tmpfs|ulimit
set -euo pipefail
winnow=$1
mpiexec=$2
mode=$3
source "$(dirname "$0")/e2e_common.sh"  # work, fail, expect_exit
mpirun=("$mpiexec" --allow-run-as-root --oversubscribe --bind-to none --mca btl self,vader
        --mca btl_vader_single_copy_mechanism none)
full=$work/full
mkdir -p "$full"

# The issue's model: a checkpoint is 2.3 MB, model.h5 0.8 MB.
model=(--data.synthetic images --model.dim 64 --model.depth 3 --model.heads 2 --model.patch 4
       --train.global_batch 32 --optim.warmup_steps 1 --dist.threads 1)

# expect_clean_failure NAME PATTERN... -- command...: exit 1, every PATTERN in the output, no
# backtrace, no crash.
expect_clean_failure() {
  local name=$1; shift
  local patterns=()
  while [ "$1" != "--" ]; do patterns+=("$1"); shift; done
  shift
  set +e
  out=$("$@" 2>&1)
  rc=$?
  set -e
  echo "$out" > "$work/$name.log"
  [ "$rc" -eq 1 ] || fail "$name: exit code $rc, expected 1; output: $out"
  for p in "${patterns[@]}"; do
    grep -q -- "$p" <<<"$out" || fail "$name: output lacks '$p': $out"
  done
  if grep -E -q "frame #[0-9]|Exception raised from|Segmentation fault|core dumped|Aborted|terminate called|signal 11" <<<"$out"; then
    fail "$name: a backtrace or a crash in the output: $out"
  fi
  [ "$(grep -c "error:" <<<"$out")" -eq 1 ] || fail "$name: expected exactly one error message: $out"
  echo "ok $name: $(grep "error:" <<<"$out")"
}

no_temporaries() {  # no_temporaries DIR...
  local left
  left=$(find "$@" -name '*.tmp.*' 2>/dev/null || true)
  [ -z "$left" ] || fail "temporary files left behind: $left"
}

# Fills the tmpfs so that exactly $1 bytes (a multiple of 4096) stay free.
fill_leaving() {
  rm -f "$full/filler"
  local avail
  avail=$(df -B1 --output=avail "$full" | tail -1)
  local blocks=$(( (avail - $1) / 4096 ))
  [ "$blocks" -le 0 ] || dd if=/dev/zero of="$full/filler" bs=4096 count="$blocks" status=none 2>/dev/null || true
}

if [ "$mode" = ulimit ]; then
  # SIGXFSZ ignored (inherited by winnow): a write past the limit then fails with EFBIG.
  limited() { ( trap '' XFSZ; ulimit -f "$1"; shift; exec "$@" ); }
  # 1 MB per file: the first checkpoint (2.3 MB) cannot be written.
  expect_clean_failure ulimit_checkpoint "saving the checkpoint of step 2" "File too large" \
    "no earlier checkpoint" -- \
    limited 1024 "$winnow" train "${model[@]}" --train.steps 4 --checkpoint.every 2 \
      --train.run_dir "$work/u1" --checkpoint.dir "$full/ck"
  no_temporaries "$full" "$work/u1"
  [ ! -e "$full/ck/latest" ] || fail "ulimit_checkpoint: a latest link exists"
  # 400 kB per file: config.ini and metrics fit, model.h5 (0.8 MB) does not.
  expect_clean_failure ulimit_model "cannot write the weights file '$work/u2/model.h5'" "File too large" -- \
    limited 400 "$winnow" train "${model[@]}" --train.steps 2 --checkpoint.dir none \
      --train.run_dir "$work/u2"
  no_temporaries "$work/u2"
  [ ! -e "$work/u2/model.h5" ] || fail "ulimit_model: model.h5 exists"
  [ -s "$work/u2/metrics.jsonl" ] || fail "ulimit_model: metrics.jsonl was lost"
  echo "disk_full_e2e (ulimit): all checks passed"
  exit 0
fi

if ! mount_error=$(mount -t tmpfs -o size=3m tmpfs "$full" 2>&1); then
  echo "SKIP: cannot mount a 3 MB tmpfs here (needs root or CAP_SYS_ADMIN): $mount_error"
  exit 77
fi
trap 'umount "$full" 2>/dev/null || true; rm -rf "$work"' EXIT

# 1. The issue's reproduction, one rank: step 2 fits, step 4 does not.
expect_clean_failure checkpoint_1rank "saving the checkpoint of step 4 in $full/ck" \
  "No space left on device" "the previous checkpoint is intact" -- \
  timeout 120 "$winnow" train "${model[@]}" --train.steps 6 --checkpoint.every 2 \
    --train.run_dir "$work/run1" --checkpoint.dir "$full/ck"
no_temporaries "$full" "$work/run1"
[ "$(readlink "$full/ck/latest")" = step-00000002.h5 ] || fail "checkpoint_1rank: latest is not step 2"
"$winnow" inspect "$full/ck" --verify > "$work/inspect.log" 2>&1 ||
  fail "checkpoint_1rank: the previous checkpoint does not verify: $(cat "$work/inspect.log")"
grep -q '"event":"checkpoint","step":2' "$work/run1/metrics.jsonl" || fail "checkpoint_1rank: metrics lost"

# 2. The same on 2 ranks: both end with exit 1, rank 0 prints the message once.
rm -rf "$full/ck"
expect_clean_failure checkpoint_2ranks "saving the checkpoint of step 4 in $full/ck" \
  "No space left on device" "the previous checkpoint is intact" -- \
  timeout --kill-after=10 120 "${mpirun[@]}" -np 2 "$winnow" train "${model[@]}" --train.steps 6 \
    --checkpoint.every 2 --train.run_dir "$work/run2" --checkpoint.dir "$full/ck"
no_temporaries "$full" "$work/run2"
[ "$(readlink "$full/ck/latest")" = step-00000002.h5 ] || fail "checkpoint_2ranks: latest is not step 2"
"$winnow" inspect "$full/ck" --verify > "$work/inspect2.log" 2>&1 ||
  fail "checkpoint_2ranks: the previous checkpoint does not verify: $(cat "$work/inspect2.log")"
rm -rf "$full/ck"

# 3. model.h5 at the end of a run (the run directory on the full disk), 1 and 2 ranks.
fill_leaving $((200 * 1024))
expect_clean_failure model_1rank "cannot write the weights file '$full/m1/model.h5'" "No space left on device" -- \
  timeout 120 "$winnow" train "${model[@]}" --train.steps 2 --checkpoint.dir none --train.run_dir "$full/m1"
no_temporaries "$full"
[ ! -e "$full/m1/model.h5" ] || fail "model_1rank: a model.h5 exists"
rm -rf "$full/m1"
fill_leaving $((200 * 1024))
expect_clean_failure model_2ranks "cannot write the weights file '$full/m2/model.h5'" "No space left on device" -- \
  timeout --kill-after=10 120 "${mpirun[@]}" -np 2 "$winnow" train "${model[@]}" --train.steps 2 \
    --checkpoint.dir none --train.run_dir "$full/m2"
no_temporaries "$full"
[ ! -e "$full/m2/model.h5" ] || fail "model_2ranks: a model.h5 exists"
rm -rf "$full/m2"

# 4. metrics.jsonl during a run: only config.ini's pages are left.
"$winnow" train "${model[@]}" --train.steps 1 --checkpoint.dir none --train.run_dir "$work/sizes" \
  > /dev/null 2>&1 || fail "a 1-step run to measure config.ini"
config_pages=$(( ($(stat -c %s "$work/sizes/config.ini") + 4095) / 4096 ))
fill_leaving $((config_pages * 4096))
expect_clean_failure metrics_1rank "metrics.jsonl" "No space left on device" -- \
  timeout 120 "$winnow" train "${model[@]}" --train.steps 4 --train.log_every 1 --checkpoint.dir none \
    --train.run_dir "$full/m3"
no_temporaries "$full"
rm -rf "$full/m3"

# 5. prepare, export and import writing to a full disk.
for i in 1 2; do
  for j in $(seq 1 200); do printf 'the quick brown fox %s jumps over the lazy dog %s\n%%\n' "$i" "$j"; done > "$work/text$i"
done
fill_leaving 0
expect_clean_failure prepare "No space left on device" -- \
  "$winnow" prepare text --in "$work/text1" "$work/text2" --out "$full/text"
no_temporaries "$full"
[ -z "$(ls "$full/text" 2>/dev/null)" ] || fail "prepare: files were left: $(ls "$full/text")"
"$winnow" train --data.synthetic text --model.kind gpt --model.dim 32 --model.depth 2 --model.heads 2 \
  --train.steps 2 --train.global_batch 8 --optim.warmup_steps 1 --checkpoint.dir none \
  --train.run_dir "$work/gpt" > "$work/gpt.log" 2>&1 || fail "gpt training: $(cat "$work/gpt.log")"
"$winnow" export --format nanogpt "$work/gpt/model.h5" --out "$work/gpt.pt" > "$work/export.log" 2>&1 ||
  fail "export to a normal disk: $(cat "$work/export.log")"
expect_clean_failure export "$full/gpt.pt" "No space left on device" -- \
  "$winnow" export --format nanogpt "$work/gpt/model.h5" --out "$full/gpt.pt"
no_temporaries "$full"
[ ! -e "$full/gpt.pt" ] || fail "export: a gpt.pt exists"
expect_clean_failure import "cannot write the weights file '$full/imported.h5'" "No space left on device" -- \
  "$winnow" import --format nanogpt "$work/gpt.pt" --heads 2 --out "$full/imported.h5"
no_temporaries "$full"
[ ! -e "$full/imported.h5" ] || fail "import: an imported.h5 exists"

echo "disk_full_e2e (tmpfs): all checks passed"
