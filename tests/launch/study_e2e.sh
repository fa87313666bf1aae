#!/usr/bin/env bash
# End-to-end checks of `winnow study`: a tiny study (synthetic images, dim 16, model.patch 7 and 5
# x 2 seeds; patch 5 does not divide the 28x28 images, so those cells fail at run time) is
# stopped with SIGTERM during its second cell, then run again: the finished cell is not rerun, the
# interrupted one resumes from its checkpoint, the failed ones are reported with their logs while
# the others complete, and `study report` writes one row (2 seeds) to CSV and Markdown. Also: bad
# study files are refused before anything runs, --dry-run prints states and commands, and a cell
# runs on 2 ranks through launch/winnow-mpirun.
# usage: study_e2e.sh WINNOW_BINARY WRAPPER
set -euo pipefail
winnow=$1
wrapper=$2
source "$(dirname "$0")/e2e_common.sh"  # work, fail, expect_exit

cat > "$work/base.ini" <<EOF
[data]
synthetic = images
synthetic_samples = 256
[model]
dim = 16
depth = 2
heads = 2
[train]
global_batch = 8
log_every = 100
eval_max_samples = 64
[optim]
warmup_steps = 2
[checkpoint]
every = 50
[dist]
threads = 1
EOF
study=$work/tiny.ini
cat > "$study" <<EOF
[study]
config = $work/base.ini
dir = $work/study
[options]
train.steps = 600    # long enough to stop the second cell after its first checkpoint
[grid]
model.patch = 7 5    # 5 does not divide 28: fails at run time, not in validation
train.seed = 0 1
EOF
dir=$work/study
first=$dir/patch=7,seed=0
second=$dir/patch=7,seed=1

# Bad study files are refused before any run, naming the cell and the option.
sed 's/^train.seed = 0 1/train.seed = 0 1\ncompress.bogus = 1/' "$study" > "$work/unknown.ini"
expect_exit 2 "cell 'patch=7,seed=0,bogus=1'.*compress.bogus" -- "$winnow" study run "$work/unknown.ini"
sed 's/^train.seed = 0 1/train.seed = 0 1\nmonitor.ema = 0.5 2/' "$study" > "$work/value.ini"
expect_exit 2 "cell 'patch=7,seed=0,ema=2': monitor.ema: expected a decay" -- "$winnow" study run "$work/value.ini"
printf '[study]\nconfig = %s\n[grid]\n' "$work/base.ini" > "$work/empty.ini"
expect_exit 2 "empty grid" -- "$winnow" study run "$work/empty.ini"
[ ! -e "$dir" ] || fail "a refused study created its directory $dir"
expect_exit 0 "Study file (INI)" -- "$winnow" study --help
expect_exit 0 "\[new\] patch=5,seed=1" -- "$winnow" study run "$study" --dry-run
expect_exit 0 "winnow-mpirun --winnow .* -n 2 -- train --config" -- \
  "$winnow" study run "$study" --dry-run --ranks 2 --launcher "$wrapper"
[ ! -e "$dir" ] || fail "--dry-run created $dir"

# First run, stopped with SIGTERM once the second cell has written a checkpoint.
"$winnow" study run "$study" > "$work/run1.log" 2>&1 &
pid=$!
for _ in $(seq 1200); do
  compgen -G "$second/checkpoints/step-*.h5" > /dev/null && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.05
done
kill -TERM "$pid" 2>/dev/null || true
set +e
wait "$pid"
rc=$?
set -e
[ "$rc" -eq 143 ] || fail "the study stopped by SIGTERM exited $rc, expected 143: $(cat "$work/run1.log")"
grep -q "stopped by .* during patch=7,seed=1" "$work/run1.log" || fail "no stop message: $(cat "$work/run1.log")"
[ -s "$first/summary.json" ] || fail "the first cell did not finish: $(cat "$work/run1.log")"
[ ! -e "$second/summary.json" ] || fail "the second cell finished before SIGTERM reached it (make it longer)"
compgen -G "$second/checkpoints/step-*.h5" > /dev/null || fail "the stopped cell left no checkpoint"
[ ! -e "$dir/patch=5,seed=0" ] || fail "cells after the stopped one ran"
first_summary=$(cat "$first/summary.json")

# Second run: the finished cell is skipped, the stopped one resumes, the patch-5 cells fail.
set +e
"$winnow" study run "$study" > "$work/run2.log" 2>&1
rc=$?
set -e
[ "$rc" -eq 1 ] || fail "a study with failed cells exited $rc, expected 1: $(cat "$work/run2.log")"
grep -q "patch=7,seed=0: done before, skipped" "$work/run2.log" || fail "no skip: $(cat "$work/run2.log")"
grep -q "patch=7,seed=1: resuming" "$work/run2.log" || fail "no resume: $(cat "$work/run2.log")"
[ "$(grep -c '^==== winnow study:' "$first/train.log")" -eq 1 ] || fail "the finished cell was rerun"
[ "$first_summary" = "$(cat "$first/summary.json")" ] || fail "the finished cell's summary changed"
[ "$(grep -c '^==== winnow study:' "$second/train.log")" -eq 2 ] ||
  fail "expected the stopped cell's log to hold both attempts: $(cat "$second/train.log")"
grep -q -- "--resume" "$second/train.log" || fail "the stopped cell was not started with --resume"
grep -q '"event":"resume"' "$second/metrics.jsonl" || fail "the stopped cell did not resume from its checkpoint"
[ -s "$second/summary.json" ] || fail "the resumed cell did not finish: $(cat "$work/run2.log")"
grep -q "FAILED: patch=5,seed=0 (exit code 1)" "$work/run2.log" || fail "no failure report: $(cat "$work/run2.log")"
grep -q "must divide the image size" "$work/run2.log" || fail "the failure report lacks the log's end"
grep -q "must divide the image size" "$dir/patch=5,seed=1/train.log" || fail "the failed cell's log was not kept"
grep -q "study: 2/4 done, 2 failed, 0 to go" "$work/run2.log" || fail "no progress line: $(cat "$work/run2.log")"
grep -q "2 of 4 cell(s) failed: patch=5,seed=0 patch=5,seed=1" "$work/run2.log" ||
  fail "no final list of failed cells: $(cat "$work/run2.log")"
expect_exit 0 "\[done\] patch=7,seed=1" -- "$winnow" study run "$study" --dry-run
# To Slurm (dry run: nothing is submitted): one job array of the two cells without summary.json,
# the others keep their indices; --wait without --slurm is refused.
expect_exit 0 "2 of 4 cell(s) to Slurm as one job array" -- "$winnow" study run "$study" --slurm --dry-run
grep -qF -- "--array=2-3 " <<<"$out" || fail "expected --array=2-3: $out"
grep -qF "WINNOW_STUDY_CELLS=" <<<"$out" || fail "no WINNOW_STUDY_CELLS: $out"
[ ! -e "$dir/slurm-cells.txt" ] || fail "--slurm --dry-run wrote $dir/slurm-cells.txt"
expect_exit 2 "go with --slurm" -- "$winnow" study run "$study" --wait

# [study] init_from: a fine-tuning study starts its new cells from a finished cell's weights; a
# missing file is refused before anything runs.
cat > "$work/finetune.ini" <<EOF
[study]
config = $work/base.ini
dir = $work/finetune
init_from = $first/model.h5
[options]
model.patch = 7
train.steps = 4
train.freeze = backbone
compress.criterion = predictor
compress.strategy = policy
compress.layers = 1
[grid]
train.seed = 3
EOF
"$winnow" study run "$work/finetune.ini" > "$work/finetune.log" 2>&1 ||
  fail "the init_from study failed: $(cat "$work/finetune.log"; cat "$work/finetune/seed=3/train.log")"
grep -qF -- "--init-from $first/model.h5" "$work/finetune/seed=3/train.log" ||
  fail "the cell did not start with --init-from: $(cat "$work/finetune/seed=3/train.log")"
grep -q "weights $first/model.h5 (fine-tuning" "$work/finetune/seed=3/train.log" ||
  fail "the cell did not load the weights: $(cat "$work/finetune/seed=3/train.log")"
[ -s "$work/finetune/seed=3/summary.json" ] || fail "the fine-tuning cell did not finish"
sed "s|^init_from = .*|init_from = $work/missing.h5|" "$work/finetune.ini" > "$work/missing.ini"
expect_exit 2 "init_from: expected a weights file.*missing.h5" -- "$winnow" study run "$work/missing.ini"

# The report: one group (patch=7) of 2 seeds; the patch-5 cells are listed as missing.
"$winnow" study report "$dir" > "$work/report.log" 2>&1 || fail "study report: $(cat "$work/report.log")"
grep -q "2 of 4 cell(s) have no summary.json" "$work/report.log" || fail "no missing list: $(cat "$work/report.log")"
[ "$(wc -l < "$dir/report.csv")" -eq 2 ] || fail "expected a header and 1 row: $(cat "$dir/report.csv")"
head -1 "$dir/report.csv" | grep -q "^group,model.patch,seeds,metric,metric_mean,metric_std,training_flops_mean" ||
  fail "report.csv header: $(cat "$dir/report.csv")"
grep -q "^patch=7,7,2,eval_accuracy," "$dir/report.csv" || fail "report.csv row: $(cat "$dir/report.csv")"
grep -q "^| patch=7 | 2 | [0-9.]* ± [0-9.]* |" "$dir/report.md" || fail "report.md: $(cat "$dir/report.md")"
# Measured per run: inference throughput and peak activation memory (numbers, not nan), and the
# per-layer kept tokens and positions (dense: everything kept; 16 patches + CLS, 2 layers).
grep -q "^patch=7,7,2,eval_accuracy,\([^,]*,\)\{6\}[0-9][^,]*,[^,]*,[0-9]" "$dir/report.csv" ||
  fail "report.csv lacks the inference throughput: $(cat "$dir/report.csv")"
[ "$(cat "$dir/report_layers.csv")" = "$(printf 'group,layer,kept_token_fraction\npatch=7,0,1\npatch=7,1,1')" ] ||
  fail "report_layers.csv: $(cat "$dir/report_layers.csv")"
[ "$(grep -c '^patch=7,' "$dir/report_positions.csv")" -eq 34 ] ||
  fail "report_positions.csv: expected 2 layers x 17 positions: $(cat "$dir/report_positions.csv")"
if python3 -c 'import matplotlib' 2>/dev/null || /usr/bin/python3 -c 'import matplotlib' 2>/dev/null; then
  for f in report_flops.png report_flops.svg report_time.png report_time.svg \
      report_inference.png report_inference.svg report_kept_tokens.png report_kept_tokens.svg \
      report_kept_positions.png report_kept_positions.svg; do
    [ -s "$dir/$f" ] || fail "matplotlib is installed but $f is missing: $(cat "$work/report.log")"
  done
else
  grep -q "plots skipped: python3 with matplotlib is not available" "$work/report.log" ||
    fail "no note that the plots were skipped: $(cat "$work/report.log")"
fi
expect_exit 1 "expected a study directory" -- "$winnow" study report "$work"

# On 2 ranks: the cell runs through the wrapper under mpirun.
printf '[study]\nconfig = %s\ndir = %s\n[options]\ntrain.steps = 20\n[grid]\ntrain.seed = 3\n' \
  "$work/base.ini" "$work/mpi" > "$work/mpi.ini"
"$winnow" study run "$work/mpi.ini" --ranks 2 --launcher "$wrapper" > "$work/mpi.log" 2>&1 ||
  fail "a 2-rank study: $(cat "$work/mpi.log"; cat "$work/mpi/seed=3/train.log")"
grep -q "winnow-mpirun: OMP_NUM_THREADS=.* mpirun -np 2" "$work/mpi/seed=3/train.log" ||
  fail "the cell did not go through the wrapper: $(cat "$work/mpi/seed=3/train.log")"
grep -q '"world_size":2' "$work/mpi/seed=3/summary.json" || fail "the cell did not run on 2 ranks"
echo "study_e2e: all checks passed"
