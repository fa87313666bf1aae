#!/usr/bin/env bash
# End-to-end checks of launch/winnow-mpirun: usage errors, the flags it adds for this machine
# (printed with --dry-run), that OMP_NUM_THREADS reaches every rank, and a 2-rank synthetic
# training run through it.
# usage: mpirun_e2e.sh WINNOW_BINARY WRAPPER
set -euo pipefail
winnow=$1
wrapper=$2
source "$(dirname "$0")/e2e_common.sh"  # work, fail, expect_exit
cores=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)
# The printed command line of a dry run (stderr, one line).
dry() { "$wrapper" --winnow "$winnow" --dry-run "$@" 2>&1; }

expect_exit 0 "--oversubscribe" -- "$wrapper" --help
expect_exit 0 "bind-to none" -- "$wrapper" --help
expect_exit 2 "expected -n RANKS" -- "$wrapper" --winnow "$winnow" -- train
expect_exit 2 "positive integer, got '0'" -- "$wrapper" --winnow "$winnow" -n 0 -- train
expect_exit 2 "expected '-- COMMAND" -- "$wrapper" --winnow "$winnow" -n 2
expect_exit 2 "expected --bind none or core, got 'socket'" -- "$wrapper" --winnow "$winnow" -n 2 --bind socket -- train
expect_exit 2 "give --threads T" -- "$wrapper" --winnow "$winnow" -n 2 --hostfile "$work/hosts" -- train
expect_exit 2 "RANKS x threads <= $cores" -- "$wrapper" --winnow "$winnow" -n 1 --threads $((cores + 1)) --bind core -- train

# Flags for this machine.
line=$(dry -n 1 -- train)
grep -q -- "OMP_NUM_THREADS=$cores .*mpirun -np 1 --bind-to none -x OMP_NUM_THREADS" <<<"$line" ||
  fail "1 rank: expected OMP_NUM_THREADS=$cores (all cores), --bind-to none and -x OMP_NUM_THREADS: $line"
grep -q -- "--oversubscribe" <<<"$line" && fail "1 rank on $cores cores must not oversubscribe: $line"
grep -q -- "--dist.threads" <<<"$line" && fail "without --threads the winnow options must stay as given: $line"
line=$(dry -n $((cores + 1)) -- train)
grep -q -- "--oversubscribe" <<<"$line" || fail "$((cores + 1)) ranks on $cores cores need --oversubscribe: $line"
grep -q -- "OMP_NUM_THREADS=1 " <<<"$line" || fail "more ranks than cores: expected 1 thread per rank: $line"
if [ "$(id -u)" -eq 0 ]; then
  grep -q -- "--allow-run-as-root" <<<"$line" || fail "running as root: expected --allow-run-as-root: $line"
else
  grep -q -- "--allow-run-as-root" <<<"$line" && fail "not root: --allow-run-as-root must not be added: $line"
fi
line=$(dry -n 2 --threads 3 --mca btl self,vader -- train --config x.ini)
grep -q -- "OMP_NUM_THREADS=3 .* --mca btl self,vader [^ ]* train --config x.ini --dist.threads=3$" <<<"$line" ||
  fail "--threads 3: expected OMP_NUM_THREADS=3, mpirun options passed through in order, --dist.threads=3: $line"
line=$(dry -n 2 --threads 3 -- train --dist.threads=2)
grep -q -- "--dist.threads=3" <<<"$line" && fail "an explicit --dist.threads must win over --threads: $line"
line=$(dry -n 2 --threads 3 -- prepare text)
grep -q -- "--dist.threads" <<<"$line" && fail "prepare takes no --dist.threads: $line"
line=$(dry -n 1 --threads 1 --bind core -- train)
grep -q -- "--map-by slot:PE=1 --bind-to core" <<<"$line" || fail "--bind core: expected --map-by slot:PE=1 --bind-to core: $line"
grep -q -- "--bind-to none" <<<"$line" && fail "--bind core must not also unbind: $line"

# The thread count reaches every rank's environment (-x), and the launcher is real mpirun.
out=$("$wrapper" --winnow bash -n 2 --threads 1 -- -c 'echo "omp=$OMP_NUM_THREADS"' 2>&1) ||
  fail "2 ranks of bash under the wrapper: $out"
[ "$(grep -c '^omp=1$' <<<"$out")" -eq 2 ] || fail "expected omp=1 from both ranks: $out"

# A real 2-rank training run through the wrapper.
run=$work/run
"$wrapper" --winnow "$winnow" -n 2 --threads 1 -- train --data.synthetic images --data.synthetic_samples 512 \
  --model.dim 32 --model.depth 2 --model.heads 2 --model.patch 7 --train.steps 20 --train.global_batch 32 \
  --optim.warmup_steps 5 --train.log_every 10 --train.run_dir "$run" > "$work/train.log" 2>&1 ||
  { cat "$work/train.log"; fail "2-rank training through the wrapper"; }
grep -q "^winnow-mpirun: OMP_NUM_THREADS=1 .*mpirun -np 2 --bind-to none" "$work/train.log" ||
  fail "the wrapper did not print its mpirun command: $(head -3 "$work/train.log")"
grep -q "2 rank(s) \[mpi\] x 1 thread(s)" "$work/train.log" || fail "expected 2 MPI ranks x 1 thread: $(cat "$work/train.log")"
[ -s "$run/summary.json" ] || fail "missing $run/summary.json"
grep -q '"world_size":2' "$run/summary.json" || fail "summary.json lacks world_size 2: $(cat "$run/summary.json")"
grep -q '"threads_per_rank":1' "$run/summary.json" || fail "summary.json lacks threads_per_rank 1: $(cat "$run/summary.json")"
echo "mpirun_e2e: all checks passed"
