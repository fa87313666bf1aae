#!/usr/bin/env bash
# End to end under a real Slurm: starts a private single-node cluster on this machine (munged,
# slurmctld and slurmd with their own key, socket, ports and state under a temporary directory),
# submits launch/slurm/winnow.sbatch with `sbatch --wait` for 2 tasks training a tiny synthetic
# ViT, and checks that the job completed with 2 MPI ranks and wrote its run directory. Everything
# it started is stopped on exit, also on failure. A second job checks the template's preemption path:
# SIGUSR1 forwarded to every task, requeue, and the requeued attempt started with --resume.
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
  for fd_dir in /proc/[0-9]*/fd; do
    pid=${fd_dir#/proc/}; pid=${pid%/fd}
    if ls -l "$fd_dir" 2>/dev/null | grep -q -- "-> $work/"; then kill -9 "$pid" 2>/dev/null; fi
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
# batch shell; the template must forward it to every task, requeue the unfinished job, and start
# the requeued attempt with --resume RUN_DIR. `scancel --batch --signal=USR1` sends exactly that
# warning. The tasks here are a small stand-in trainer that waits for SIGUSR1 on every rank and
# then stops, and on --resume finishes (what `winnow train` does on SIGUSR1 is tested with it).
fake=$work/fake-trainer
cat > "$fake" <<'TRAINER'
#!/usr/bin/env bash
# Stand-in for `winnow train` in slurm_e2e.sh's preemption check.
set -u
[ "$1 ${2:-}" = "train --help" ] && { echo "  --resume DIR   continue the run in DIR"; exit 0; }
run_dir="" resume=""
while [ $# -gt 0 ]; do
  case $1 in --train.run_dir) run_dir=$2; shift ;; --resume) resume=$2; shift ;; esac
  shift
done
rank=${SLURM_PROCID:?no SLURM_PROCID}
if [ -n "$resume" ]; then
  [ "$resume" = "$run_dir" ] || { echo "rank $rank: --resume $resume is not the run dir $run_dir"; exit 4; }
  echo "rank $rank: resumed from $resume"
  [ "$rank" -ne 0 ] || echo '{"event":"summary","steps":20}' > "$run_dir/summary.json"
  exit 0
fi
mkdir -p "$run_dir"
[ "$rank" -ne 0 ] || printf '[train]\nsteps = 20\n' > "$run_dir/config.ini"
stop=0
trap 'stop=1' USR1
echo "rank $rank: training, waiting for SIGUSR1"
for _ in $(seq 600); do [ "$stop" -eq 1 ] && break; sleep 0.1; done
[ "$stop" -eq 1 ] || { echo "rank $rank: no SIGUSR1 within 60 s"; exit 3; }
echo "rank $rank: SIGUSR1, checkpoint saved, stopping"
TRAINER
chmod +x "$fake"
run=$work/preempted
job_start=$(date +%s)
WINNOW=$fake WINNOW_RUN_DIR=$run submit "$work/sbatch-preempt.out" --job-name=winnow-preempt --ntasks=2 \
  --cpus-per-task=1 "${overcommit[@]}" --time=5 --chdir="$work" --output="$work/log/preempt-%j.out" "$template"
wait_for 30 "a job id from sbatch" -- grep -q '^[0-9]' "$work/sbatch-preempt.out"
job=$(grep -m1 -o '^[0-9]*' "$work/sbatch-preempt.out")
job_log=$work/log/preempt-$job.out
both_waiting() { [ "$(grep -c 'waiting for SIGUSR1' "$job_log" 2>/dev/null)" -eq 2 ]; }
wait_for 60 "both tasks of job $job starting" -- both_waiting
scancel --batch --signal=USR1 "$job"
rc=0
submitted_status || rc=$?
[ "$rc" -eq 0 ] || fail "preempted job $job exited $rc: $(cat "$work/sbatch-preempt.out"); job log: $(cat "$job_log")"
for expected in "received SIGUSR1; forwarding it to the training step" "rank 0: SIGUSR1, checkpoint saved" \
    "rank 1: SIGUSR1, checkpoint saved" "requeueing job $job to resume from $run" "job $job (restart 1)" \
    "train --train.run_dir $run --dist.threads 1 --resume $run" "rank 0: resumed from $run" "rank 1: resumed from $run"; do
  grep -qF -- "$expected" "$job_log" || fail "preempted job $job: log lacks '$expected': $(cat "$job_log")"
done
state=$(scontrol show job -o "$job")
grep -q "JobState=COMPLETED" <<<"$state" || fail "preempted job $job: expected COMPLETED after the requeue: $state"
grep -q "Restarts=1 " <<<"$state" || fail "preempted job $job: expected Restarts=1: $state"
echo "slurm_e2e: preempted job $job forwarded SIGUSR1, requeued and resumed in $(( $(date +%s) - job_start )) s"
echo "slurm_e2e: all checks passed in $(( $(date +%s) - start )) s"
