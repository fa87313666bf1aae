#!/usr/bin/python3
"""Training wall-clock of the co-scheduler's modes against dense and a shallower dense model, on a
shared machine: the variants run one after another in rounds, the order rotated every round, so
a slow spell of the machine falls on every variant alike; reported per variant is the median and
the range over rounds of the training seconds (the trainer's own step time, summary.json), and of
its ratio to dense measured in the same round.

The variants and the config are those of launch/studies/coschedule_gpt_fortunes.ini (one seed):
whose accuracy-vs-time plot mixes cells run up to half an hour apart, on a machine whose speed
drifts by a third over that time (the same dense model's inference rate, measured in every cell).

  /usr/bin/python3 launch/experiments/coschedule_wallclock.py [--winnow build/launch/winnow]
      [--config launch/configs/coschedule-gpt.ini] [--rounds 3] [--budget 0.5]
      [--out runs/coschedule-wallclock] [-- more `winnow train` options for every run]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys


def variants(budget):
    mode = ["--coschedule.target", str(budget), "--coschedule.mode"]
    return {
        "dense": [],
        "shallow-d5": ["--model.depth", "5"],
        f"joint-r{budget}": mode + ["joint"],
        f"token_only-r{budget}": mode + ["token_only"],
        f"layer_only-r{budget}": mode + ["layer_only"],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--winnow", default="build/launch/winnow")
    parser.add_argument("--config", default="launch/configs/coschedule-gpt.ini")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--budget", default="0.5")
    parser.add_argument("--seed", default="0")
    parser.add_argument("--out", default="runs/coschedule-wallclock")
    parser.add_argument("train_options", nargs="*",
                        help="after --: options given to every `winnow train` run")
    args = parser.parse_args()
    if args.rounds < 1:
        sys.exit("coschedule_wallclock: --rounds must be >= 1")
    runs = variants(args.budget)
    names = list(runs)
    seconds = {name: [] for name in names}
    ratios = {name: [] for name in names}
    for r in range(args.rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        this_round = {}
        for name in order:
            run_dir = os.path.join(args.out, f"round{r}", name)
            os.makedirs(run_dir, exist_ok=True)
            command = [args.winnow, "train", "--config", args.config, "--train.run_dir", run_dir,
                       "--checkpoint.dir=none", "--train.inference_rounds", "0",
                       "--train.seed", args.seed] + args.train_options + runs[name]
            with open(os.path.join(run_dir, "train.log"), "w") as log:
                subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=True)
            with open(os.path.join(run_dir, "summary.json")) as f:
                this_round[name] = json.load(f)["train_seconds"]
            print(f"round {r + 1}/{args.rounds} {name}: {this_round[name]:.1f} s", flush=True)
        for name in names:
            seconds[name].append(this_round[name])
            ratios[name].append(this_round[name] / this_round["dense"])
    print(f"\n| variant | training seconds, median (range) over {args.rounds} rounds "
          "| ÷ dense in the same round, median (range) |")
    print("|---|---|---|")
    for name in names:
        s, q = seconds[name], ratios[name]
        print(f"| {name} | {statistics.median(s):.1f} ({min(s):.1f}–{max(s):.1f}) "
              f"| {statistics.median(q):.2f} ({min(q):.2f}–{max(q):.2f}) |")


if __name__ == "__main__":
    main()
