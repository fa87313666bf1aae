#!/usr/bin/env bash
# End to end under a real Slurm: starts a private single-node cluster on this machine (munged,
# slurmctld and slurmd with their own key, socket, ports and state under a temporary directory),
# submits launch/slurm/winnow.sbatch with `sbatch --wait` for 2 tasks training a tiny synthetic
# ViT, and checks that the job completed with 2 MPI ranks and wrote its run directory. Everything
# it started is stopped on exit, also on failure. A second job checks the preemption path:
# SIGUSR1 forwarded to every task, requeue, and the requeued attempt resuming with --resume. A
# third submits a study (`winnow study run --slurm`) as a job array.
# usage: slurm_e2e.sh WINNOW_BINARY SOURCE_DIR
# Exit 77 (skipped) only when Slurm or munge is not installed or this is not root.
# SLURM_E2E_KEEP=1 keeps the temporary directory (configuration, logs, run) for inspection.
set -euo pipefail
winnow=$(readlink -f "$1")
source_dir=$2
template=$source_dir/launch/slurm/winnow.sbatch
skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }

for tool in munged mungekey slurmctld slurmd sbatch srun scontrol sinfo scancel; do
  command -v "$tool" >/dev/null ||
    skip "$tool not found: install slurm-wlm and munge (launch/setup.sh installs them)"
done
[ "$(id -u)" -eq 0 ] || skip "slurmd must run as root to launch job steps; run as root"
[ -f "$template" ] || fail "missing batch template $template"

work=$(mktemp -d)
# munged wants every directory above its socket searchable by all users.
chmod 711 "$work"
mkdir -p "$work/munge" "$work/state" "$work/log"
chmod 711 "$work/munge"
pids=()
sbatch_pid=""

stop_all() {
  local rc=$?
  set +e
  trap '' PIPE  # a closed stdout must not cut the teardown short
  [ -z "$sbatch_pid" ] || kill "$sbatch_pid" 2>/dev/null
  if [ ${#pids[@]} -ge 3 ] && kill -0 "${pids[1]}" 2>/dev/null; then
    # Every job of this private cluster is ours; let them end while slurmctld still runs.
    SLURM_CONF=$work/slurm.conf timeout 5 scancel --quiet --user="$(id -un)" 2>/dev/null
    for _ in $(seq 20); do
      [ -z "$(SLURM_CONF=$work/slurm.conf timeout 2 squeue -h 2>/dev/null)" ] && break
      sleep 0.5
    done
  fi
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[i]}" 2>/dev/null; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
  done
  # slurmstepd detaches from slurmd; end any of ours still holding a file under $work.
  for fd in /proc/[0-9]*/fd/*; do
    case $(readlink "$fd" 2>/dev/null) in
      "$work"/*) pid=${fd#/proc/}; kill -9 "${pid%%/*}" 2>/dev/null ;;
    esac
  done
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
    echo "--- logs of the private cluster ($work/log) ---" >&2
    for f in "$work"/log/*; do [ -s "$f" ] && { echo "== $f" >&2; tail -n 30 "$f" >&2; }; done
  fi
  if [ "${SLURM_E2E_KEEP:-0}" = 1 ]; then echo "slurm_e2e: kept $work" >&2; else rm -rf "$work"; fi
  exit "$rc"
}
trap stop_all EXIT
trap 'exit 130' INT TERM

# A port nothing listens on (bash's /dev/tcp connects when something does).
free_port() {
  local port
  for _ in $(seq 200); do
    port=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && [ "$port" != "${1:-}" ]; then
      echo "$port"; return 0
    fi
  done
  fail "found no free TCP port in 20000-59999"
}

# `sbatch --wait` runs in the background so that a signal to this script is handled at once
# (bash defers traps while a foreground command runs). submit OUT_FILE sbatch-arguments...
submit() {
  local out=$1; shift
  timeout --kill-after=10 120 sbatch --wait --parsable "$@" > "$out" 2>&1 < /dev/null &
  sbatch_pid=$!
}
# The exit status of the last submit (sbatch --wait returns the job's).
submitted_status() {
  local status=0
  wait "$sbatch_pid" || status=$?
  sbatch_pid=""
  return "$status"
}

wait_for() {  # wait_for SECONDS WHAT -- command...
  local seconds=$1 what=$2; shift 3
  for _ in $(seq $((seconds * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  fail "$what did not happen within $seconds s"
}

start=$(date +%s)
# munge: a private key and socket; Slurm reaches it through AuthInfo=socket=...
mungekey --create --keyfile="$work/munge/munge.key"
munged --foreground --socket="$work/munge/socket" --key-file="$work/munge/munge.key" \
  --pid-file="$work/munge/munged.pid" --seed-file="$work/munge/seed" > "$work/log/munged.out" 2>&1 &
pids+=($!)
wait_for 10 "munged creating $work/munge/socket" -- test -S "$work/munge/socket"

# The node as slurmd sees it: real CPUs, sockets, cores and memory.
node_line=$(slurmd -C | head -n 1)
node=$(sed -n 's/^NodeName=\([^ ]*\).*/\1/p' <<<"$node_line")
cpus=$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$node_line")
[ -n "$node" ] && [ -n "$cpus" ] || fail "could not read the node from 'slurmd -C': $node_line"
ctld_port=$(free_port)
slurmd_port=$(free_port "$ctld_port")
cluster=winnowe2e
mkdir -p "$work/spool/$node"
cat > "$work/slurm.conf" <<EOF
# Private single-node test cluster, generated by tests/launch/slurm_e2e.sh.
ClusterName=$cluster
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire also sets how long a requeued job waits before it may start again (default 120 s).
AuthInfo=socket=$work/munge/socket,cred_expire=5
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool/%n
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/log/slurmctld.log
SlurmdLogFile=$work/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=pmix
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
ReturnToService=2
MailProg=/bin/true
# Try pending jobs every second (default 60 s) so a requeued job starts once eligible.
SchedulerParameters=sched_interval=1
${node_line/NodeName=$node /NodeName=$node NodeAddr=127.0.0.1 } State=UNKNOWN
PartitionName=e2e Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
# mpi.conf sits beside slurm.conf: keep the PMIx server's client directories private too.
mkdir -p "$work/pmix"
echo "PMIxCliTmpDirBase=$work/pmix" > "$work/mpi.conf"
export SLURM_CONF=$work/slurm.conf

slurmctld -D -i > "$work/log/slurmctld.out" 2>&1 &
pids+=($!)
slurmd -D -N "$node" > "$work/log/slurmd.out" 2>&1 &
pids+=($!)
node_idle() { [ "$(sinfo -h -n "$node" -o %t)" = idle ]; }
wait_for 30 "node $node becoming idle in the private cluster (ports $ctld_port, $slurmd_port)" -- node_idle
echo "slurm_e2e: private cluster up in $(( $(date +%s) - start )) s (slurmctld :$ctld_port, slurmd :$slurmd_port, node $node, $cpus CPUs)"

# Two tasks of one CPU each; a 1-CPU machine needs --overcommit to fit them.
overcommit=()
[ "$cpus" -ge 2 ] || overcommit=(--overcommit)
run=$work/run
job_start=$(date +%s)
WINNOW=$winnow WINNOW_RUN_DIR=$run submit "$work/sbatch.out" --job-name=winnow-e2e --ntasks=2 \
  --cpus-per-task=1 "${overcommit[@]}" --time=5 --chdir="$work" --output="$work/log/job-%j.out" "$template" \
  --data.synthetic images --data.synthetic_samples 512 --model.dim 32 --model.depth 2 --model.heads 2 \
  --model.patch 7 --train.steps 20 --train.global_batch 32 --optim.warmup_steps 5 --train.log_every 10
rc=0
submitted_status || rc=$?
job=$(grep -m1 -o '^[0-9]*' "$work/sbatch.out" || true)
job_log=$work/log/job-$job.out
[ -n "$job" ] || fail "sbatch printed no job id: $(cat "$work/sbatch.out")"
[ "$rc" -eq 0 ] || fail "job $job exited $rc (sbatch --wait): $(cat "$work/sbatch.out"); job log: $(cat "$job_log" 2>/dev/null)"
echo "slurm_e2e: job $job finished in $(( $(date +%s) - job_start )) s"

state=$(scontrol show job -o "$job" | grep -o 'JobState=[A-Z]* .*ExitCode=[0-9:]*' || true)
grep -q "JobState=COMPLETED" <<<"$state" || fail "job $job: expected JobState=COMPLETED, got: $state"
grep -q "ExitCode=0:0" <<<"$state" || fail "job $job: expected ExitCode=0:0, got: $state"
[ -s "$job_log" ] || fail "no job log $job_log"
grep -q "srun --mpi=pmix" "$job_log" || fail "the job did not launch with srun --mpi=pmix: $(cat "$job_log")"
grep -q "OMP_NUM_THREADS=1 " "$job_log" || fail "expected OMP_NUM_THREADS=1 from --cpus-per-task=1: $(cat "$job_log")"
grep -q "2 rank(s) \[mpi\]" "$job_log" || fail "the job did not train on 2 MPI ranks: $(cat "$job_log")"
grep -q "step 20/20" "$job_log" || fail "the job did not reach step 20/20: $(cat "$job_log")"
for f in summary.json metrics.jsonl model.h5 config.ini; do [ -s "$run/$f" ] || fail "missing $run/$f"; done
grep -q '"world_size":2' "$run/summary.json" || fail "summary.json lacks world_size 2: $(cat "$run/summary.json")"
grep -q '"steps":20' "$run/summary.json" || fail "summary.json lacks steps 20: $(cat "$run/summary.json")"

# Preemption path of the template: Slurm's advance warning (--signal=B:USR1@120) reaches only the
# batch shell; the template must forward it to every task, requeue the job when training stopped
# early (exit status 128 + SIGUSR1), and start the requeued attempt with --resume RUN_DIR.
# `scancel --batch --signal=USR1` sends exactly that warning. The tasks are `winnow train` when it
# has --resume; a winnow without it gets a stand-in that keeps the same contract (stop on SIGUSR1
# with a checkpoint in RUN_DIR/checkpoints and exit 138; finish on --resume).
run=$work/preempted
usr1_status=$((128 + $(kill -l USR1)))
if grep -q -- '--resume' <<<"$("$winnow" train --help 2>/dev/null)"; then
  trainer=$winnow
  # 400 steps of a few ms (tens of ms on a loaded machine): still running when the signal comes.
  # A fine-tune from job 1's weights: the requeued attempt must drop --init-from for --resume.
  trainer_args=(--data.synthetic images --data.synthetic_samples 512 --model.dim 32 --model.depth 2
                --model.heads 2 --model.patch 7 --train.steps 400 --train.global_batch 32
                --optim.warmup_steps 5 --train.log_every 10 --init-from "$work/run/model.h5")
  started() { grep -q "^step 10/400 " "$job_log" 2>/dev/null; }
else
  echo "slurm_e2e: this winnow has no --resume; the preemption job runs a stand-in trainer"
  trainer=$work/stand-in-trainer
  trainer_args=()
  cat > "$trainer" <<TRAINER
#!/usr/bin/env bash
# Stand-in for \`winnow train\` (no --resume yet) in slurm_e2e.sh's preemption job.
set -u
[ "\$1 \${2:-}" = "train --help" ] && { echo "  --resume DIR   continue the run in DIR"; exit 0; }
run_dir="" resume=""
while [ \$# -gt 0 ]; do
  case \$1 in --train.run_dir) run_dir=\$2; shift ;; --resume) resume=\$2; shift ;; esac
  shift
done
rank=\${SLURM_PROCID:?no SLURM_PROCID}
if [ -n "\$resume" ]; then
  echo "rank \$rank: resumed from \$resume"
  [ "\$rank" -ne 0 ] || echo '{"event":"summary","world_size":2}' > "\$run_dir/summary.json"
  exit 0
fi
stop=0
trap 'stop=1' USR1
echo "rank \$rank: training, waiting for SIGUSR1"
for _ in \$(seq 600); do [ "\$stop" -eq 1 ] && break; sleep 0.1; done
[ "\$stop" -eq 1 ] || { echo "rank \$rank: no SIGUSR1 within 60 s"; exit 3; }
mkdir -p "\$run_dir/checkpoints"
[ "\$rank" -ne 0 ] || : > "\$run_dir/checkpoints/step-00000010.h5"
echo "rank \$rank: stopped on SIGUSR1"
exit $usr1_status
TRAINER
  chmod +x "$trainer"
  started() { [ "$(grep -c 'waiting for SIGUSR1' "$job_log" 2>/dev/null)" -eq 2 ]; }
fi
job_start=$(date +%s)
WINNOW=$trainer WINNOW_RUN_DIR=$run submit "$work/sbatch-preempt.out" --job-name=winnow-preempt --ntasks=2 \
  --cpus-per-task=1 "${overcommit[@]}" --time=5 --chdir="$work" --output="$work/log/preempt-%j.out" "$template" \
  "${trainer_args[@]}"
wait_for 30 "a job id from sbatch" -- grep -q '^[0-9]' "$work/sbatch-preempt.out"
job=$(grep -m1 -o '^[0-9]*' "$work/sbatch-preempt.out")
job_log=$work/log/preempt-$job.out
wait_for 60 "the training of job $job starting" -- started
scancel --batch --signal=USR1 "$job"
rc=0
submitted_status || rc=$?
[ "$rc" -eq 0 ] || fail "preempted job $job exited $rc: $(cat "$work/sbatch-preempt.out"); job log: $(cat "$job_log")"
for expected in "received SIGUSR1; forwarding it to the training step" \
    "training step ended with status $usr1_status" "requeueing job $job to resume from $run" \
    "job $job (restart 1)" "--train.run_dir $run --dist.threads 1 --resume $run" \
    "training step ended with status 0"; do
  grep -qF -- "$expected" "$job_log" || fail "preempted job $job: log lacks '$expected': $(cat "$job_log")"
done
if [ "$trainer" = "$winnow" ]; then
  grep -q "stopped after step [0-9]* of 400 on SIGUSR1" "$job_log" ||
    fail "preempted job $job: winnow did not report its SIGUSR1 stop: $(cat "$job_log")"
  [ "$(grep -c "^step 10/400 " "$job_log")" -eq 1 ] ||
    fail "preempted job $job: the requeued attempt started over instead of resuming: $(cat "$job_log")"
  grep -q "^step 400/400 " "$job_log" || fail "preempted job $job: the resumed run did not reach step 400: $(cat "$job_log")"
  [ "$(grep -c -- "srun .* --init-from $work/run/model.h5 --train.run_dir $run " "$job_log")" -eq 1 ] ||
    fail "preempted job $job: expected --init-from in the first attempt's command only: $(grep srun "$job_log")"
else
  for rank in 0 1; do
    grep -qF "rank $rank: stopped on SIGUSR1" "$job_log" || fail "rank $rank did not get SIGUSR1: $(cat "$job_log")"
    grep -qF "rank $rank: resumed from $run" "$job_log" || fail "rank $rank did not resume: $(cat "$job_log")"
  done
fi
grep -q '"world_size":2' "$run/summary.json" || fail "preempted job $job: no summary.json of 2 ranks in $run"
state=$(scontrol show job -o "$job")
grep -q "JobState=COMPLETED" <<<"$state" || fail "preempted job $job: expected COMPLETED after the requeue: $state"
grep -q "Restarts=1 " <<<"$state" || fail "preempted job $job: expected Restarts=1: $state"
echo "slurm_e2e: preempted job $job forwarded SIGUSR1, requeued and resumed in $(( $(date +%s) - job_start )) s"

# `winnow study run --slurm`: a study of three cells, one of them done before (so not submitted),
# goes to Slurm as one job array through the template, each cell on 2 ranks with its output in
# CELL/train.log; a second submission then has nothing to do.
study_dir=$work/study
cat > "$work/study-base.ini" <<EOF
[data]
synthetic = images
synthetic_samples = 512
[model]
dim = 32
depth = 2
heads = 2
patch = 7
[optim]
warmup_steps = 5
[train]
steps = 20
global_batch = 32
log_every = 10
eval_every = 0
EOF
cat > "$work/study.ini" <<EOF
[study]
config = $work/study-base.ini
dir = $study_dir
ranks = 2
[grid]
train.seed = 0 1 2
EOF
mkdir -p "$study_dir/seed=1"
echo '{"event":"summary","done_before":true}' > "$study_dir/seed=1/summary.json"
job_start=$(date +%s)
study_sbatch=(--sbatch=--cpus-per-task=1 --sbatch=--time=5)
[ "$cpus" -ge 2 ] || study_sbatch+=(--sbatch=--overcommit)
rc=0
(cd "$work" && timeout --kill-after=10 180 "$winnow" study run "$work/study.ini" --slurm --wait \
   "${study_sbatch[@]}") > "$work/study-submit.out" 2>&1 < /dev/null || rc=$?
[ "$rc" -eq 0 ] || fail "study run --slurm --wait exited $rc: $(cat "$work/study-submit.out")"
grep -qF -- "2 of 3 cell(s) to Slurm as one job array, 2 task(s) each" "$work/study-submit.out" ||
  fail "study run --slurm did not submit exactly the 2 cells not done: $(cat "$work/study-submit.out")"
grep -qF -- "--array=0,2 " "$work/study-submit.out" ||
  fail "expected the array 0,2 (cell seed=1 was done): $(cat "$work/study-submit.out")"
grep -q "all 3 cells done" "$work/study-submit.out" || fail "study run --slurm --wait: $(cat "$work/study-submit.out")"
for seed in 0 2; do
  cell=$study_dir/seed=$seed
  grep -q '"world_size":2' "$cell/summary.json" 2>/dev/null ||
    fail "cell seed=$seed: no summary.json of 2 ranks: $(cat "$cell/train.log" 2>/dev/null)"
  grep -q "^seed *= *$seed\$" "$cell/config.ini" ||
    fail "cell seed=$seed did not train with seed $seed: $(cat "$cell/config.ini")"
  grep -q "array task $seed of job" "$cell/train.log" || fail "cell seed=$seed: $(cat "$cell/train.log")"
  grep -q "^step 20/20 " "$cell/train.log" || fail "cell seed=$seed did not log step 20/20: $(cat "$cell/train.log")"
done
grep -q done_before "$study_dir/seed=1/summary.json" || fail "the done cell seed=1 was trained again"
"$winnow" study run "$work/study.ini" --slurm > "$work/study-again.out" 2>&1 ||
  fail "a second study run --slurm failed: $(cat "$work/study-again.out")"
grep -q "nothing to submit" "$work/study-again.out" || fail "a finished study was submitted again: $(cat "$work/study-again.out")"
echo "slurm_e2e: study job array of 2 cells on 2 ranks each done in $(( $(date +%s) - job_start )) s"
echo "slurm_e2e: all checks passed in $(( $(date +%s) - start )) s"
