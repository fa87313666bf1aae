#!/usr/bin/env bash
# Ranks that die, end to end: a loop of trials, each SIGKILLing one random rank of a 3-rank
# `mpirun` training job at a random moment; every second trial waits for a checkpoint save in
# progress (a `step-*.h5.tmp.*` file in the checkpoint folder) and kills then. Every trial must
#  - end the whole job with a non-zero exit within 10 s of the kill (mpirun gone, every rank gone),
#    mpirun naming the killed rank;
#  - leave a checkpoint folder whose newest complete `step-*.h5` is what `--resume` picks (never a
#    temporary file), not older than the last save finished before the kill and not newer than the
#    last step logged;
#  - resume on 3 ranks to the last step with the loss log (every step line, `%.9g`) and the final
#    weights (h5diff, exact) of an uninterrupted 3-rank run, and no temporary file left behind.
# One line per trial, then "rank_kill_e2e: N passed, M failed (...)"; exit 1 if any trial failed.
# The kill moments are random (the rank and target step come from SEED, the timing from the
# machine). CI runs 4 trials (ctest rank_kill_short); the long loop is documented in
# docs/checkpoint-format.md.
# usage: rank_kill_e2e.sh WINNOW_BINARY MPIEXEC [TRIALS (4)] [SEED (1)]
set -euo pipefail
winnow=$1
mpiexec=$2
trials=${3:-4}
seed=${4:-1}
source "$(dirname "$0")/e2e_common.sh"  # work, fail, expect_exit
mpirun=("$mpiexec" --allow-run-as-root --oversubscribe --bind-to none)
ranks=3
steps=600
every=3
limit_s=10    # the issue's bound: kill -> whole job gone
hang_s=40     # past this a job counts as hung and is killed by the script
RANDOM=$seed

config=(--data.synthetic images --data.synthetic_samples 480 --model.dim 16 --model.depth 2
        --model.heads 2 --model.patch 7 --train.global_batch 24 --optim.warmup_steps 2
        --train.log_every 1 --train.steps $steps --checkpoint.every $every --checkpoint.keep 3
        --dist.threads 1)

# The loss log without timings: "step N loss X" per step line.
losses() { grep '"event":"step"' "$1/metrics.jsonl" | sed -E 's/.*"step":([0-9]+),"loss":([^,]+),.*/step \1 loss \2/'; }
# The last step logged so far (0 before the first).
last_step() {
  local s
  s=$(grep -o '"event":"step","step":[0-9]*' "$1/metrics.jsonl" 2>/dev/null | tail -1 | grep -o '[0-9]*$') || true
  echo "${s:-0}"
}
# True while PID is a live process (not gone, not a zombie).
alive() {
  local state=
  [ -r "/proc/$1/stat" ] || return 1
  read -r _ _ state _ < "/proc/$1/stat" 2>/dev/null || return 1
  [ "$state" != Z ]
}
problem() { verdict=FAIL; problems+=("$*"); }  # records a failed check of the current trial
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

# The uninterrupted reference, once.
ref=$work/reference
timeout --kill-after=10 300 "${mpirun[@]}" -np $ranks "$winnow" train "${config[@]}" --train.run_dir "$ref" \
  > "$ref.log" 2>&1 || { tail -30 "$ref.log"; fail "the uninterrupted reference run"; }
[ "$(losses "$ref" | wc -l)" -eq $steps ] || fail "reference: expected $steps step lines"
grep -q "3 rank(s) \[mpi\]" "$ref.log" || fail "reference: not 3 MPI ranks: $(head -5 "$ref.log")"

passed=0 failed=0 saves=0 seconds_list=()
for trial in $(seq "$trials"); do
  run=$work/trial_$trial
  kill_rank=$((RANDOM % ranks))
  during_save=$((trial % 2 == 0))
  # The step to wait for: late enough that two saves have finished, early enough to leave steps.
  target=$((2 * every + 1 + RANDOM % (steps - 2 * every - 20)))
  delay_ms=$((RANDOM % 60))
  verdict=ok
  problems=()

  started=$EPOCHREALTIME
  "${mpirun[@]}" -np $ranks "$winnow" train "${config[@]}" --train.run_dir "$run" > "$run.log" 2>&1 &
  launcher=$!

  # The 3 rank processes (children of mpirun) by OMPI_COMM_WORLD_RANK.
  declare -A pid_of=()
  for _ in $(seq 600); do
    pid_of=()
    for child in $(pgrep -P "$launcher" || true); do
      [ "$(cat "/proc/$child/comm" 2>/dev/null)" = winnow ] || continue
      r=$(tr '\0' '\n' < "/proc/$child/environ" 2>/dev/null | sed -n 's/^OMPI_COMM_WORLD_RANK=//p')
      [ -n "$r" ] && pid_of[$r]=$child
    done
    [ "${#pid_of[@]}" -eq $ranks ] && break
    alive "$launcher" || break
    sleep 0.05
  done
  if [ "${#pid_of[@]}" -ne $ranks ]; then
    kill -9 "$launcher" 2>/dev/null || true
    wait "$launcher" 2>/dev/null || true
    tail -20 "$run.log"
    fail "trial $trial: did not find $ranks winnow rank processes under mpirun $launcher"
  fi
  victim=${pid_of[$kill_rank]}

  # Wait for the target step, then either a short random delay or a save in progress.
  while [ "$(last_step "$run")" -lt $target ] && alive "$victim"; do sleep 0.02; done
  tmp_seen=
  if [ $during_save -eq 1 ]; then
    # Spin (shell builtins only) until a temporary checkpoint file exists, then kill at once.
    shopt -s nullglob
    deadline=$((SECONDS + 20))
    while alive "$victim" && [ $SECONDS -lt $deadline ]; do
      tmps=("$run"/checkpoints/*.tmp.*)
      if [ ${#tmps[@]} -gt 0 ]; then
        kill -9 "$victim" 2>/dev/null || true
        tmp_seen=${tmps[0]##*/}
        break
      fi
    done
    shopt -u nullglob
    [ -n "$tmp_seen" ] && saves=$((saves + 1))
  else
    sleep "$(printf '0.%03d' $delay_ms)"
  fi
  [ -n "$tmp_seen" ] || kill -9 "$victim" 2>/dev/null || true
  killed=$EPOCHREALTIME
  killed_at=$SECONDS
  kill_step=$(last_step "$run")
  moment="after step $kill_step, $(elapsed "$started" "$killed") s in"
  [ -n "$tmp_seen" ] && moment="$moment, during the save of ${tmp_seen%%.tmp.*}"
  [ $during_save -eq 1 ] && [ -z "$tmp_seen" ] && moment="$moment (no save caught)"

  # The whole job must end: mpirun and every rank.
  gone=
  while :; do
    any=0
    alive "$launcher" && any=1
    for p in "${pid_of[@]}"; do alive "$p" && any=1; done
    [ $any -eq 0 ] && { gone=$EPOCHREALTIME; break; }
    [ $((SECONDS - killed_at)) -ge $hang_s ] && break
    sleep 0.01
  done
  if [ -z "$gone" ]; then
    kill -9 "$launcher" "${pid_of[@]}" 2>/dev/null || true
    gone=$EPOCHREALTIME
    problem "still running $hang_s s after the kill (killed by the script)"
  fi
  set +e
  wait "$launcher"
  rc=$?
  set -e
  took=$(elapsed "$killed" "$gone")
  seconds_list+=("$took")
  awk -v t="$took" -v l=$limit_s 'BEGIN { exit !(t <= l) }' || problem "the job took $took s to end (limit $limit_s s)"
  [ "$rc" -ne 0 ] || problem "mpirun exited 0 after a rank was killed"
  grep -q "process rank $kill_rank with PID .* exited on signal 9" "$run.log" \
    || problem "mpirun does not report rank $kill_rank killed by signal 9: $(tail -5 "$run.log" | tr '\n' ' ')"
  last_logged=$(last_step "$run")
  [ "$last_logged" -lt $steps ] || problem "the run finished (step $last_logged) before the kill"

  # The newest complete checkpoint on disk, and the bounds it must lie in.
  newest=$( (ls "$run/checkpoints" 2>/dev/null || true) | grep -E '^step-[0-9]+\.h5$' | sort | tail -1)
  newest_step=$(sed -E 's/^step-0*([0-9]+)\.h5$/\1/' <<<"${newest:-step-0.h5}")
  floor=$(( (kill_step - 1) / every * every ))
  [ "$newest_step" -ge "$floor" ] || problem "newest checkpoint $newest is older than step $floor, saved before the kill"
  [ "$newest_step" -le "$last_logged" ] || problem "newest checkpoint $newest is newer than the last logged step $last_logged"
  leftovers=$( (ls "$run/checkpoints" 2>/dev/null || true) | grep -c '\.tmp\.' || true)

  # Resume on 3 ranks to the end.
  resumed_step=-
  set +e
  timeout --kill-after=10 300 "${mpirun[@]}" -np $ranks "$winnow" train --resume "$run" > "$run.resume.log" 2>&1
  resume_rc=$?
  set -e
  if [ $resume_rc -ne 0 ]; then
    problem "resume exited $resume_rc: $(tail -5 "$run.resume.log" | tr '\n' ' ')"
  else
    resumed_from=$(sed -nE 's/^resumed from (.*) at step ([0-9]+) .*/\1 \2/p' "$run.resume.log")
    resumed_step=${resumed_from##* }
    resumed_file=${resumed_from% *}
    [ -n "$resumed_from" ] || problem "no 'resumed from' line: $(head -5 "$run.resume.log")"
    [ "${resumed_file##*/}" = "$newest" ] || problem "resumed from ${resumed_file##*/}, the newest complete checkpoint is $newest"
    grep -q "warning: skipping damaged checkpoint" "$run.resume.log" && problem "resume skipped a damaged checkpoint"
    left=$( (ls "$run/checkpoints" || true) | grep -c '\.tmp\.' || true)
    [ "$left" -eq 0 ] || problem "$left temporary file(s) left after the resume"
  fi
  if diff <(losses "$ref") <(losses "$run") > "$run.loss_diff"; then
    curve="losses equal ($steps steps, $((steps - ${resumed_step/-/0})) after the resume)"
  else
    curve="losses differ"
    problem "loss log differs from the reference: $(head -6 "$run.loss_diff" | tr '\n' ' ')"
  fi
  if [ $resume_rc -eq 0 ] && h5diff "$ref/model.h5" "$run/model.h5" /model /model > "$run.weights_diff" 2>&1; then
    curve="$curve, weights identical"
  else
    curve="$curve, weights differ"
    problem "final weights differ from the reference: $(head -5 "$run.weights_diff" 2>/dev/null | tr '\n' ' ')"
  fi

  echo "trial $trial/$trials: killed rank $kill_rank $moment; job ended in $took s, exit $rc;" \
       "$leftovers temporary file(s) left; resumed from step $resumed_step (newest complete: $newest);" \
       "$curve: $verdict"
  if [ $verdict = ok ]; then
    passed=$((passed + 1))
    rm -rf "$run"
  else
    failed=$((failed + 1))
    for p in "${problems[@]}"; do echo "  - $p"; done
  fi
done

sorted=$(printf '%s\n' "${seconds_list[@]}" | sort -g)
max=$(tail -1 <<<"$sorted")
median=$(awk '{ v[NR] = $1 } END { printf "%.2f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }' <<<"$sorted")
echo "rank_kill_e2e: $passed passed, $failed failed of $trials trials (seed $seed; $saves killed during a save;" \
     "kill to job end: median $median s, max $max s, limit $limit_s s)"
[ $failed -eq 0 ]
