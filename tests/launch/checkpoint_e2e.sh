#!/usr/bin/env bash
# Checkpoints end to end with the `winnow` executable:
#  - a crash (SIGKILL) injected at each stage of a save — during the data write, before the
#    rename, before the `latest` update — then `--resume` finishes the run with exactly the
#    weights and loss log of an uninterrupted run (h5diff, metrics.jsonl);
#  - SIGUSR1 sent to ONE of 2 MPI ranks stops both after the same step with a checkpoint;
#    SIGUSR1 sent to mpirun (which forwards it) does the same;
#  - a 2-rank checkpoint resumed on 1 rank (different world size) says so and finishes;
#  - a resume with a different model is refused with the list of names;
#  - `winnow inspect` (text and --json) and h5ls read the files.
# usage: checkpoint_e2e.sh WINNOW_BINARY MPIEXEC
set -euo pipefail
winnow=$1
mpiexec=$2
source "$(dirname "$0")/e2e_common.sh"  # work, fail, expect_exit
mpirun_flags=(--allow-run-as-root --oversubscribe --bind-to none)

common=(--data.synthetic images --data.synthetic_samples 512 --model.dim 32 --model.depth 2
        --model.heads 2 --model.patch 7 --train.global_batch 32
        --optim.warmup_steps 2 --train.log_every 1 --checkpoint.keep 3 --dist.threads 1)

# The loss log without timings: "step N loss X" per step line.
losses() { grep '"event":"step"' "$1/metrics.jsonl" | sed -E 's/.*"step":([0-9]+),"loss":([^,]+),.*/step \1 loss \2/'; }

# 1. The reference: 8 uninterrupted steps on one process.
"$winnow" train "${common[@]}" --train.steps 8 --checkpoint.every 2 --dist.backend local --train.run_dir "$work/straight" \
  > "$work/straight.log" 2>&1 || { cat "$work/straight.log"; fail "uninterrupted run"; }
[ "$(losses "$work/straight" | wc -l)" -eq 8 ] || fail "expected 8 step lines: $(cat "$work/straight/metrics.jsonl")"
ls "$work/straight/checkpoints" > "$work/listing"
[ "$(cat "$work/listing" | tr '\n' ' ')" = "latest step-00000004.h5 step-00000006.h5 step-00000008.h5 " ] \
  || fail "retention (keep 3) left: $(cat "$work/listing")"

# Resuming a finished run does nothing and leaves its files alone.
before=$(stat -c %i.%.9Y.%s "$work/straight/model.h5" "$work/straight/summary.json")
"$winnow" train --resume "$work/straight" > "$work/finished.log" 2>&1 || fail "resume of a finished run: $(cat "$work/finished.log")"
grep -q "nothing to do: the run already completed its 8 steps" "$work/finished.log" || fail "resume of a finished run: $(cat "$work/finished.log")"
[ "$before" = "$(stat -c %i.%.9Y.%s "$work/straight/model.h5" "$work/straight/summary.json")" ] || fail "resume of a finished run rewrote its files"

# 2. SIGKILL at each stage of the save of step 4, then resume.
for stage in writing before_rename before_pointer; do
  run=$work/kill_$stage
  set +e
  "$winnow" train "${common[@]}" --train.steps 8 --checkpoint.every 2 --dist.backend local --train.run_dir "$run" \
    --checkpoint.kill_stage "$stage" --checkpoint.kill_step 4 > "$run.log" 2>&1
  rc=$?
  set -e
  [ "$rc" -eq 137 ] || { cat "$run.log"; fail "$stage: expected death by SIGKILL (137), got $rc"; }
  case $stage in
    writing|before_rename)
      ls "$run/checkpoints"/step-00000004.h5.tmp.* > /dev/null 2>&1 || fail "$stage: no temporary file left behind"
      [ ! -e "$run/checkpoints/step-00000004.h5" ] || fail "$stage: step 4 must not exist"
      [ "$(readlink "$run/checkpoints/latest")" = step-00000002.h5 ] || fail "$stage: latest moved"
      expected_step=2 ;;
    before_pointer)
      [ -e "$run/checkpoints/step-00000004.h5" ] || fail "$stage: step 4 should be complete"
      [ "$(readlink "$run/checkpoints/latest")" = step-00000002.h5 ] || fail "$stage: latest moved"
      expected_step=4 ;;
  esac
  "$winnow" train --resume "$run" > "$run.resume.log" 2>&1 || { cat "$run.resume.log"; fail "$stage: resume"; }
  grep -q "resumed from .*step-0000000$expected_step.h5 at step $expected_step" "$run.resume.log" \
    || fail "$stage: expected to resume at step $expected_step: $(cat "$run.resume.log")"
  h5diff "$work/straight/model.h5" "$run/model.h5" /model /model > "$run.diff" \
    || fail "$stage: resumed weights differ from the uninterrupted run: $(head -20 "$run.diff")"
  diff <(losses "$work/straight") <(losses "$run") > /dev/null \
    || fail "$stage: loss log differs: $(diff <(losses "$work/straight") <(losses "$run"))"
  ls "$run/checkpoints" | grep -q '\.tmp\.' && fail "$stage: temporary file not cleaned up"
  echo "ok: SIGKILL $stage -> resumed at step $expected_step, bit-identical weights and losses"
done

# 2b. Two ranks: rank 0 (the writer) dies during the data write of step 4; mpirun ends the job
# (the other rank must not hang in the collective), step 2 stays intact and a 2-rank resume ends.
run=$work/kill_two_ranks
set +e
timeout 120 "$mpiexec" "${mpirun_flags[@]}" -np 2 "$winnow" train "${common[@]}" --train.steps 8 \
  --checkpoint.every 2 --train.run_dir "$run" --checkpoint.kill_stage writing --checkpoint.kill_step 4 \
  > "$run.log" 2>&1
rc=$?
set -e
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || { cat "$run.log"; fail "2 ranks, writer killed: expected a prompt non-zero exit, got $rc"; }
[ "$(readlink "$run/checkpoints/latest")" = step-00000002.h5 ] || fail "2 ranks: latest moved"
"$mpiexec" "${mpirun_flags[@]}" -np 2 "$winnow" train --resume "$run" > "$run.resume.log" 2>&1 \
  || { cat "$run.resume.log"; fail "2 ranks: resume after the writer died"; }
grep -q "resumed from .*step-00000002.h5 at step 2" "$run.resume.log" || fail "2 ranks: not resumed at step 2"
[ -s "$run/summary.json" ] || fail "2 ranks: the resumed run did not finish"
echo "ok: 2 ranks, writer SIGKILLed mid-save -> job ended (exit $rc), resumed from step 2"

# 3. Inspection: text, JSON and standard HDF5 tools.
"$winnow" inspect "$work/straight" --verify > "$work/inspect.txt" || fail "inspect"
grep -q "step          8 of 8 (end)" "$work/inspect.txt" || fail "inspect text: $(cat "$work/inspect.txt")"
grep -q "checksums     all verified" "$work/inspect.txt" || fail "inspect --verify"
"$winnow" inspect --json "$work/straight/checkpoints/latest" > "$work/inspect.json"
python3 - "$work/inspect.json" <<'EOF' || fail "inspect --json"
import json, sys
info = json.load(open(sys.argv[1]))
assert info["step"] == 8 and info["optimizer"] is True, info
assert info["world_size"] == 1 and info["model_kind"] == "vit", info
assert sum(t["count"] for t in info["tensors"] if not t["buffer"]) == info["parameters"] > 0
assert "[model]" in info["config"]
EOF
h5ls -r "$work/straight/checkpoints/latest" > "$work/h5ls.txt" || fail "h5ls cannot read the checkpoint"
grep -q "^/optimizer/state/head.weight/exp_avg " "$work/h5ls.txt" || fail "h5ls does not list the optimizer state: $(cat "$work/h5ls.txt")"

# 4. Lockstep stop: SIGUSR1 to one of two ranks stops both after the same step.
run=$work/signal
"$mpiexec" "${mpirun_flags[@]}" -np 2 "$winnow" train "${common[@]}" --train.steps 4000 \
  --checkpoint.every 0 --train.run_dir "$run" > "$run.log" 2>&1 &
launcher=$!
for _ in $(seq 100); do grep -q '"step":3,' "$run/metrics.jsonl" 2>/dev/null && break; sleep 0.2; done
rank=$(pgrep -f "winnow train .*--train.run_dir $run" | grep -v "^$launcher$" | tail -1)
[ -n "$rank" ] || fail "no rank process found"
kill -USR1 "$rank"
set +e
wait "$launcher"
rc=$?
set -e
[ "$rc" -ne 0 ] || fail "a signal stop must exit non-zero (128 + signal), got 0"
grep -q "stopped after step [0-9]* of 4000 on SIGUSR1 (every rank, in lockstep)" "$run.log" \
  || fail "no lockstep stop message: $(tail -20 "$run.log")"
stopped=$(sed -nE 's/.*stopped after step ([0-9]+) of 4000.*/\1/p' "$run.log")
[ "$stopped" -lt 4000 ] || fail "the run was not stopped early"
"$winnow" inspect "$run" > "$work/inspect_signal.txt"
grep -q "step          $stopped of 4000 (signal SIGUSR1)" "$work/inspect_signal.txt" \
  || fail "no checkpoint of step $stopped: $(cat "$work/inspect_signal.txt")"
echo "ok: SIGUSR1 to one rank stopped both after step $stopped"

# 4b. The documented way under mpirun: SIGUSR1 to mpirun itself, which forwards it to the ranks.
run2=$work/signal_mpirun
"$mpiexec" "${mpirun_flags[@]}" -np 2 "$winnow" train "${common[@]}" --train.steps 4000 \
  --checkpoint.every 0 --train.run_dir "$run2" > "$run2.log" 2>&1 &
launcher=$!
for _ in $(seq 100); do grep -q '"step":3,' "$run2/metrics.jsonl" 2>/dev/null && break; sleep 0.2; done
kill -USR1 "$launcher"
set +e
wait "$launcher"
rc=$?
set -e
[ "$rc" -eq 138 ] || fail "SIGUSR1 to mpirun: expected exit 138, got $rc: $(tail -20 "$run2.log")"
ls "$run2/checkpoints"/step-*.h5 > /dev/null 2>&1 || fail "SIGUSR1 to mpirun: no checkpoint"
echo "ok: SIGUSR1 to mpirun reached both ranks, checkpoint written, exit 138"

# 5. Resume that 2-rank checkpoint on 1 rank: the sampler continues from the global position.
"$winnow" train --resume "$run" --train.steps 4000 --train.stop_at $((stopped + 3)) --dist.backend local \
  > "$run.one_rank.log" 2>&1 || { cat "$run.one_rank.log"; fail "resume on 1 rank"; }
grep -q "saved on 2 rank(s), continuing on 1" "$run.one_rank.log" \
  || fail "resume at a different world size does not say so: $(cat "$run.one_rank.log")"
"$winnow" inspect "$run" > "$work/inspect_one.txt"
grep -q "step          $((stopped + 3)) of 4000" "$work/inspect_one.txt" || fail "no checkpoint after the 1-rank resume: $(cat "$work/inspect_one.txt")"
echo "ok: 2-rank checkpoint resumed on 1 rank"

# 6. A resume with a different model is refused, naming the parameters.
set +e
out=$("$winnow" train --resume "$work/straight/checkpoints/step-00000004.h5" --model.depth 3 2>&1)
rc=$?
set -e
[ "$rc" -ne 0 ] || fail "resume with a deeper model must fail"
grep -q "does not fit the configured model" <<<"$out" || fail "no mismatch message: $out"
grep -q "blocks.2." <<<"$out" || fail "mismatch message lacks the missing names: $out"
echo "checkpoint_e2e: all checks passed"
