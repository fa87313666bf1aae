#!/usr/bin/python3
"""Proxy validity of the co-scheduler's layer influences (issue 11; co_compression.md §8.3), step 2.

Given a run trained with `monitor.statistics` and `monitor.taylor` (step 1:
launch/studies/proxy_validity.ini), evaluates its model.h5 dense and with each one block removed
(`winnow eval --gate.kind skip --gate.layers L`, SLEB's oracle), and prints the Spearman
correlation between each influence signal at the end of training (the EMAs of Block Influence,
relative update and Taylor saliency in the run's metrics.jsonl) and the true loss increase.
Target from the note: rho >= 0.7; reported whichever way it comes out.

  /usr/bin/python3 launch/experiments/proxy_validity.py RUN_DIR [--winnow build/launch/winnow]
"""

import argparse
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SIGNALS = (("evolution_bi", "Block Influence"), ("evolution_relative_update", "relative update"),
           ("evolution_taylor", "Taylor saliency"))


def eval_loss(winnow, weights, extra=()):
    command = [winnow, "eval", "--weights", weights] + list(extra)
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if result.returncode != 0:
        sys.exit(f"failed ({result.returncode}): {' '.join(command)}\n{result.stdout[-2000:]}"
                 f"{result.stderr[-2000:]}")
    match = re.search(r"^\s+loss\s+([0-9.eE+-]+)", result.stdout, re.MULTILINE)
    if not match:
        sys.exit(f"no loss line in the output of {' '.join(command)}:\n{result.stdout[-2000:]}")
    return float(match.group(1))


def ranks(values):
    """Ranks from 0, ties sharing their mean rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    result = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            result[order[k]] = (i + j) / 2.0
        i = j + 1
    return result


def spearman(a, b):
    ra, rb = ranks(a), ranks(b)
    ma, mb = sum(ra) / len(ra), sum(rb) / len(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    va = sum((x - ma) ** 2 for x in ra) ** 0.5
    vb = sum((y - mb) ** 2 for y in rb) ** 0.5
    return cov / (va * vb)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", help="the run directory (model.h5, metrics.jsonl)")
    parser.add_argument("--winnow", default=os.path.join(ROOT, "build/launch/winnow"))
    args = parser.parse_args()
    weights = os.path.join(args.run, "model.h5")
    metrics = os.path.join(args.run, "metrics.jsonl")
    lines = [json.loads(line) for line in open(metrics) if '"evolution_bi"' in line]
    if not lines:
        sys.exit(f"{metrics} has no evolution_bi: train with --monitor.statistics true "
                 "--monitor.taylor true")
    last = lines[-1]
    depth = len(last["evolution_bi"])
    base = eval_loss(args.winnow, weights)
    increase = []
    for layer in range(depth):
        print(f"  eval without block {layer} ...", flush=True)
        increase.append(eval_loss(args.winnow, weights,
                                  ["--gate.kind", "skip", "--gate.layers", str(layer)]) - base)
    print(f"dense test loss {base:.4f}; loss increase when one block is removed, per block:")
    print("  " + " ".join(f"{x:+.3f}" for x in increase))
    for key, name in SIGNALS:
        if key not in last:
            print(f"{name:<16} not in {metrics}")
            continue
        values = last[key]
        print(f"{name:<16} Spearman {spearman(values, increase):+.3f}   values " +
              " ".join(f"{v:.3g}" for v in values))


if __name__ == "__main__":
    main()
