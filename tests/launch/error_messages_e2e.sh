#!/usr/bin/env bash
# Error messages for people, over a table of error paths of the `winnow` executable: each case
# must exit with its code and say what it expects, and no output may hold a C++ backtrace
# ("frame #N", "Exception raised from", also when one error wraps another) or a raw control byte
# taken from a file (they are shown escaped, \xNN).
# usage: error_messages_e2e.sh WINNOW_BINARY
set -euo pipefail
winnow=$1
source "$(dirname "$0")/e2e_common.sh"  # work, fail, expect_exit
python=$(command -v python3 || true)
# Debian's python3 has python3-h5py (setup.sh), which writes the damaged format attribute below.
if /usr/bin/python3 -c "import h5py" 2>/dev/null; then python=/usr/bin/python3; fi

checked=0
# case NAME CODE PATTERN -- command...
case_() {
  local name=$1 code=$2 pattern=$3; shift 4
  set +e
  out=$("$@" 2>&1)
  rc=$?
  set -e
  [ "$rc" -eq "$code" ] || fail "$name: exit code $rc, expected $code; output: $out"
  grep -q -F -- "$pattern" <<<"$out" || fail "$name: output lacks '$pattern': $out"
  if grep -E -q "frame #[0-9]+|Exception raised from" <<<"$out"; then
    fail "$name: a C++ backtrace in the output: $out"
  fi
  # Control bytes other than newline and tab (ESC, BEL, ...) must never reach the terminal.
  if LC_ALL=C grep -q -P '[\x00-\x08\x0b-\x1f\x7f]' <<<"$out"; then
    fail "$name: a raw control byte in the output: $(printf '%q' "$out")"
  fi
  checked=$((checked + 1))
}

# Fixtures: a small checkpoint run, a GPT for export, data files.
small=(--data.synthetic images --data.synthetic_samples 64 --model.dim 16 --model.depth 1
       --model.heads 2 --model.patch 7 --train.global_batch 8 --optim.warmup_steps 1 --dist.threads 1)
"$winnow" train "${small[@]}" --train.steps 2 --checkpoint.every 1 --train.run_dir "$work/run" \
  > "$work/run.log" 2>&1 || fail "fixture run: $(cat "$work/run.log")"
"$winnow" train --data.synthetic text --model.kind gpt --model.dim 16 --model.depth 1 --model.heads 2 \
  --train.steps 1 --train.global_batch 4 --optim.warmup_steps 1 --checkpoint.dir none \
  --train.run_dir "$work/gpt" > "$work/gpt.log" 2>&1 || fail "fixture gpt: $(cat "$work/gpt.log")"
"$winnow" export --format nanogpt "$work/gpt/model.h5" --out "$work/gpt.pt" > /dev/null 2>&1 ||
  fail "fixture export"
for j in $(seq 1 30); do printf 'a line of text %s\n%%\n' "$j"; done > "$work/text.txt"
"$winnow" prepare text --in "$work/text.txt" --out "$work/text" > /dev/null 2>&1 || fail "fixture prepare"

# Damaged copies: bytes overwritten in the middle of every checkpoint (one run folder), a file of
# control bytes, a data file whose format attribute holds ESC.
mkdir -p "$work/damaged/checkpoints"
for f in "$work/run/checkpoints"/step-*.h5; do
  cp "$f" "$work/damaged/checkpoints/"
  size=$(stat -c %s "$f")
  printf '\x1b[31mDAMAGED\x1b[0m%.0s' $(seq 1 200) |
    dd of="$work/damaged/checkpoints/$(basename "$f")" bs=1 seek=$((size / 2)) conv=notrunc status=none
done
printf 'PK\x1b[2J\x07garbage' > "$work/garbage.bin"
cp "$work/text/train.h5" "$work/bad_format.h5"

case_ missing_data 1 "missing.h5" -- "$winnow" train --data.train "$work/missing.h5"
case_ not_hdf5 1 "is not an HDF5 file" -- "$winnow" train --data.train "$work/garbage.bin"
case_ config 2 "model.heads" -- "$winnow" train --data.synthetic images --model.dim 10 --model.heads 3
case_ damaged_verify 1 "checkpoint" -- \
  "$winnow" inspect "$work/damaged/checkpoints/step-00000002.h5" --verify
case_ resume_all_damaged 1 "could be loaded" -- "$winnow" train --resume "$work/damaged" --train.steps 4
case_ weights_not_checkpoint 1 "neither a winnow checkpoint" -- \
  "$winnow" eval --weights "$work/text/train.h5"
case_ misfit_weights 1 "does not fit the configured model" -- \
  "$winnow" eval --weights "$work/run/model.h5" --model.dim 32
case_ import_not_zip 1 "zip format of torch.save" -- \
  "$winnow" import --format nanogpt "$work/text/train.h5" --heads 2 --out "$work/x.h5"
head -c 2000 "$work/gpt.pt" > "$work/truncated.pt"
case_ import_truncated 1 "not a readable torch.save archive" -- \
  "$winnow" import --format nanogpt "$work/truncated.pt" --heads 2 --out "$work/x.h5"

if [ -z "$python" ]; then
  echo "SKIP (no python3): the cases with hand-made torch.save archives and HDF5 attributes"
else
  # Hand-made archives: a pickle is written into the zip layout of torch.save.
  "$python" - "$work" <<'EOF'
import sys, zipfile
work = sys.argv[1]
def archive(name, pickle, records=()):
    with zipfile.ZipFile(f"{work}/{name}.pt", "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pickle)
        z.writestr("archive/byteorder", "little")
        z.writestr("archive/version", "3\n")
        for key, data in records:
            z.writestr(f"archive/data/{key}", data)
# APPEND on an empty stack.
archive("underflow", b"\x80\x02a.")
# A storage class whose name holds terminal escapes.
archive("escape_class", b"\x80\x02}(X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n"
        b"((X\x07\x00\x00\x00storagectorch\nEvil\x1b[31mStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x04tQ"
        b"K\x00K\x04\x85K\x01\x85\x89ccollections\nOrderedDict\n)RtRu.", [("0", b"\x00" * 16)])
# A tensor of 100 elements over a storage of 4.
archive("past_storage", b"\x80\x02}(X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n"
        b"((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x04tQ"
        b"K\x00Kd\x85K\x01\x85\x89ccollections\nOrderedDict\n)RtRu.", [("0", b"\x00" * 16)])
# No data.pkl at all.
with zipfile.ZipFile(f"{work}/no_pickle.pt", "w", zipfile.ZIP_STORED) as z:
    z.writestr("archive/version", "3\n")
# A winnow data file whose format attribute says "winnow\x1b[2J\x07ns" (rewritten with h5py: the
# attribute lives in a checksummed object header, so patching its bytes would only break the
# checksum). Without h5py the case is skipped.
try:
    import h5py
    import numpy
    with h5py.File(f"{work}/bad_format.h5", "r+") as f:
        f.attrs["format"] = numpy.bytes_(b"winnow\x1b[2J\x07ns")
except ImportError:
    import os
    os.remove(f"{work}/bad_format.h5")
EOF
  case_ import_underflow 1 "expected a value on the stack, found it empty" -- \
    "$winnow" import --format nanogpt "$work/underflow.pt" --heads 2 --out "$work/x.h5"
  case_ import_escaped_class 1 "unsupported storage type 'torch.Evil\\x1b[31mStorage'" -- \
    "$winnow" import --format nanogpt "$work/escape_class.pt" --heads 2 --out "$work/x.h5"
  case_ import_past_storage 1 "reaches past its storage of 4 elements" -- \
    "$winnow" import --format nanogpt "$work/past_storage.pt" --heads 2 --out "$work/x.h5"
  case_ import_no_pickle 1 "no data.pkl" -- \
    "$winnow" import --format nanogpt "$work/no_pickle.pt" --heads 2 --out "$work/x.h5"
  if [ -e "$work/bad_format.h5" ]; then
    case_ data_format_escaped 1 "unknown format 'winnow\\x1b[2J\\x07ns'" -- \
      "$winnow" train --data.train "$work/bad_format.h5" --model.kind gpt
  else
    echo "SKIP data_format_escaped: no h5py to write the attribute"
  fi
fi
[ ! -e "$work/x.h5" ] || fail "a failed import left $work/x.h5"
echo "error_messages_e2e: $checked error paths checked, all passed"
