#!/usr/bin/python3
"""Draws a co-scheduled run's per-layer capacity over training as a heatmap (layers × steps) from
its metrics.jsonl (the "capacity" array of the step lines), with the budget ρ(t) of its decisions.
Needs python3-matplotlib.

usage: plot_capacity.py RUN_DIR/metrics.jsonl OUT.svg [--title TEXT]
"""
import argparse
import json
import sys


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("metrics")
    parser.add_argument("svg")
    parser.add_argument("--title", default=None)
    args = parser.parse_args()
    steps, capacity, decisions = [], [], []
    with open(args.metrics) as f:
        for number, line in enumerate(f, 1):
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                sys.exit(f"{args.metrics}:{number}: not a JSON line ({error})")
            if record.get("event") == "step" and "capacity" in record:
                steps.append(record["step"])
                capacity.append(record["capacity"])
            elif record.get("event") == "capacity":
                decisions.append(record)
    if not capacity:
        sys.exit(f"{args.metrics}: no step line with a \"capacity\" array (not a co-scheduled run?)")
    try:
        import matplotlib
        matplotlib.use("svg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("plot_capacity.py needs python3-matplotlib (apt-get install python3-matplotlib)")
    depth = len(capacity[0])
    grid = [[row[layer] for row in capacity] for layer in range(depth)]  # [layer][logged step]
    fig, ax = plt.subplots(figsize=(9, 0.45 * depth + 1.8))
    image = ax.imshow(grid, aspect="auto", origin="lower", cmap="viridis", vmin=0.0, vmax=1.0,
                      extent=(steps[0] - 0.5, steps[-1] + 0.5, -0.5, depth - 0.5),
                      interpolation="nearest")
    ax.set_xlabel("step")
    ax.set_ylabel("layer")
    ax.set_yticks(range(depth))
    fig.colorbar(image, ax=ax, label="capacity k (0 = pruned, 1 = dense)")
    if decisions:
        budget = ax.twinx()
        budget.step([d["step"] for d in decisions], [d["budget"] for d in decisions], where="post",
                    color="white", linewidth=1.0, label="budget ρ")
        budget.set_ylim(0, 1.05)
        models = sorted({d.get("cost_model", "flops") for d in decisions})
        budget.set_ylabel(f"budget ρ at the decisions ({' / '.join(models)})")
    ax.set_title(args.title or args.metrics)
    fig.tight_layout()
    fig.savefig(args.svg)
    print(f"wrote {args.svg}: {depth} layers, {len(steps)} logged steps, {len(decisions)} decisions")


if __name__ == "__main__":
    main()
