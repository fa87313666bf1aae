#!/usr/bin/env bash
# Checkpoint cost for the largest shipped config (launch/configs/bench-vit.ini: ViT width 192,
# depth 8, 197 tokens): file size, save time, load time, and the overhead of periodic saving on
# step time at the default interval (checkpoint.every = 500), measured in one run.
#   launch/bench_checkpoint.sh [STEPS (default 60)] [EVERY (default 20)]
# The run saves every EVERY steps (more often than the default, to time several saves), then a
# resume loads the newest checkpoint. Overhead at interval N = save seconds / (N x step seconds).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
winnow=${WINNOW:-$root/build/launch/winnow}
steps=${1:-60}
every=${2:-20}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}

"$winnow" train --config "$root/launch/configs/bench-vit.ini" --train.steps "$steps" \
  --optim.warmup_steps 5 --train.log_every 1000 --checkpoint.every "$every" --checkpoint.keep 0 \
  --checkpoint.minutes 0 --dist.backend local --train.run_dir "$work/run" > "$work/train.log" 2>&1 \
  || { cat "$work/train.log"; exit 1; }
newest=$(ls "$work/run/checkpoints"/step-*.h5 | tail -1)
cp "$work/run/summary.json" "$work/summary.json"
cp "$work/run/metrics.jsonl" "$work/metrics.jsonl"
# The resume trains one more step (and evaluates a little) only to load the newest checkpoint.
"$winnow" train --resume "$work/run" --train.steps $((steps + 1)) --train.eval_max_samples 32 \
  --dist.backend local --checkpoint.dir none > "$work/resume.log" 2>&1 || { cat "$work/resume.log"; exit 1; }

python3 - "$work" "$newest" "$work/resume.log" "$steps" <<'EOF'
import json, os, re, sys
run, newest, resume_log, steps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
summary = json.load(open(os.path.join(run, "summary.json")))
saves = [json.loads(l) for l in open(os.path.join(run, "metrics.jsonl")) if '"event":"checkpoint"' in l]
save_s = sum(s["seconds"] for s in saves) / len(saves)
step_s = summary["train_seconds"] / summary["steps"]
load_s = float(re.search(r"loaded and verified in ([0-9.e-]+) s", open(resume_log).read()).group(1))
size = os.path.getsize(newest)
print(f"config                 launch/configs/bench-vit.ini ({steps} steps, {len(saves)} saves)")
print(f"checkpoint file        {size / 1e6:.1f} MB ({os.path.basename(newest)}: model + AdamW moments)")
print(f"save (write+fsync+rename+link)  {save_s:.3f} s  (mean of {len(saves)})")
print(f"load (read+verify CRC-32)       {load_s:.3f} s")
print(f"step time              {step_s:.3f} s")
print(f"measured overhead      {100 * summary['checkpoint_seconds'] / summary['train_seconds']:.2f}% "
      f"of training time (a save every {steps // len(saves)} steps)")
for interval in (500, 100):
    print(f"overhead at every={interval:<4}  {100 * save_s / (interval * step_s):.3f}% of step time")
EOF
