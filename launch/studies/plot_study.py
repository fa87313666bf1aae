#!/usr/bin/python3
"""Plots a study report (report.csv of `winnow study report`), one point per group with error
bars over seeds: final eval quality against training FLOPs, training seconds and measured
inference throughput (groups named FAMILY-rBUDGET, a budget sweep, drawn as one line per family); and, from the report_layers.csv and report_positions.csv beside it, the
per-layer kept-token fraction (groups x layers) and the kept-position fraction of each layer (on
the patch grid for images, layers x positions for sequences). PNG and SVG. Called by
`winnow study report` when matplotlib is installed (python3-matplotlib).

usage: plot_study.py REPORT_CSV OUT_PREFIX
  writes OUT_PREFIX_flops, _time, _inference, _kept_tokens, _kept_positions (.png, .svg),
  each when its data exist
"""
import csv
import math
import os
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_rows(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return list(csv.DictReader(f))


def save(fig, prefix, suffix, written):
    fig.tight_layout()
    for ext in ("png", "svg"):
        fig.savefig(f"{prefix}_{suffix}.{ext}")
    plt.close(fig)
    written.append(f"{prefix}_{suffix}.png/.svg")


MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "<", ">"]


def family_of(group):
    """Budget sweeps are named FAMILY-rBUDGET (joint-r0.5): one line per family, one point per
    budget. Other groups are their own family (a single point)."""
    match = re.fullmatch(r"(.+)-r([0-9.]+)", group)
    return match.group(1) if match else group


def budget_of(group):
    match = re.fullmatch(r"(.+)-r([0-9.]+)", group)
    return match.group(2) if match else ""


def quality_plots(rows, prefix, written):
    metric = rows[0]["metric"]
    scale = 100.0 if metric == "eval_accuracy" else 1.0
    label = "eval accuracy (%)" if metric == "eval_accuracy" else "eval loss"
    for axis, xlabel, suffix in (
            ("training_flops", "training FLOPs (analytic, forward + backward)", "flops"),
            ("train_seconds", "training time (s)", "time"),
            ("inference_samples_per_second",
             "inference throughput (samples/s, evaluation plan, median of rounds)", "inference")):
        points = [r for r in rows if axis + "_mean" in r and not math.isnan(float(r[axis + "_mean"]))]
        if not points:
            continue
        fig, ax = plt.subplots(figsize=(8, 5))
        families = {}
        for r in points:
            families.setdefault(family_of(r["group"]), []).append(r)
        colors = plt.get_cmap("tab10" if len(families) <= 10 else "tab20")
        for i, (family, members) in enumerate(families.items()):
            members.sort(key=lambda r: float(r[axis + "_mean"]))
            seeds = "/".join(sorted({r["seeds"] for r in members}))
            budgets = [budget_of(r["group"]) for r in members if budget_of(r["group"])]
            name = family + (f" (ρ* {', '.join(sorted(budgets, reverse=True))})" if budgets else "")
            ax.errorbar([float(r[axis + "_mean"]) for r in members],
                        [scale * float(r["metric_mean"]) for r in members],
                        xerr=[float(r[axis + "_std"]) for r in members],
                        yerr=[scale * float(r["metric_std"]) for r in members],
                        marker=MARKERS[i % len(MARKERS)], color=colors(i % colors.N), capsize=3,
                        linestyle="-" if len(members) > 1 else "none", linewidth=1.0,
                        label=f"{name}, n={seeds}")
        if suffix == "inference":
            # The dense model measured in the same processes, as a band per group's mean.
            dense = [float(r["dense_inference_samples_per_second_mean"]) for r in points]
            ax.axvspan(min(dense), max(dense), color="grey", alpha=0.15,
                       label="dense, measured alongside (range of groups)")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(label)
        ax.set_title(f"{label} vs {xlabel.split(' (')[0]}, mean ± std over seeds")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        save(fig, prefix, suffix, written)


def kept_token_heatmap(rows, prefix, written):
    if not rows:
        return
    groups = list(dict.fromkeys(r["group"] for r in rows))
    layers = 1 + max(int(r["layer"]) for r in rows)
    grid = [[math.nan] * layers for _ in groups]
    for r in rows:
        grid[groups.index(r["group"])][int(r["layer"])] = float(r["kept_token_fraction"])
    fig, ax = plt.subplots(figsize=(1.2 + 0.6 * layers, 1.0 + 0.35 * len(groups)))
    image = ax.imshow(grid, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
    for g, row in enumerate(grid):
        for layer, value in enumerate(row):
            if not math.isnan(value):
                ax.text(layer, g, f"{value:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if value < 0.6 else "black")
    ax.set_xticks(range(layers))
    ax.set_xlabel("layer")
    ax.set_yticks(range(len(groups)))
    ax.set_yticklabels(groups, fontsize=7)
    ax.set_title("tokens entering each layer's attention / dense (evaluation plan)")
    fig.colorbar(image, ax=ax, label="kept fraction")
    save(fig, prefix, "kept_tokens", written)


def kept_position_heatmaps(rows, prefix, written):
    if not rows:
        return
    groups = list(dict.fromkeys(r["group"] for r in rows))
    layers = 1 + max(int(r["layer"]) for r in rows)
    on_grid = all(r["row"] != "" for r in rows if int(r["position"]) > 0)
    if on_grid:
        # One panel per group and layer: the fraction of samples keeping each patch (CLS left out).
        height = 1 + max(int(r["row"]) for r in rows if r["row"] != "")
        width = 1 + max(int(r["column"]) for r in rows if r["column"] != "")
        fig, axes = plt.subplots(len(groups), layers, squeeze=False,
                                 figsize=(1.6 * layers + 1, 1.6 * len(groups) + 0.6))
        panels = {(g, layer): [[math.nan] * width for _ in range(height)]
                  for g in groups for layer in range(layers)}
        for r in rows:
            if r["row"] != "":
                panels[(r["group"], int(r["layer"]))][int(r["row"])][int(r["column"])] = \
                    float(r["kept_fraction"])
        image = None
        for gi, g in enumerate(groups):
            for layer in range(layers):
                ax = axes[gi][layer]
                image = ax.imshow(panels[(g, layer)], vmin=0.0, vmax=1.0, cmap="magma")
                ax.set_xticks([])
                ax.set_yticks([])
                if gi == 0:
                    ax.set_title(f"layer {layer}", fontsize=8)
                if layer == 0:
                    ax.set_ylabel(g, fontsize=7)
        fig.suptitle("fraction of samples keeping each patch, per layer (evaluation plan)")
        fig.colorbar(image, ax=axes, shrink=0.6, label="kept fraction")
        for ext in ("png", "svg"):
            fig.savefig(f"{prefix}_kept_positions.{ext}")
        plt.close(fig)
        written.append(f"{prefix}_kept_positions.png/.svg")
        return
    # Sequences: layers x positions per group.
    positions = 1 + max(int(r["position"]) for r in rows)
    fig, axes = plt.subplots(len(groups), 1, squeeze=False,
                             figsize=(8, 1.0 + 0.25 * layers * len(groups)))
    for gi, g in enumerate(groups):
        grid = [[math.nan] * positions for _ in range(layers)]
        for r in rows:
            if r["group"] == g:
                grid[int(r["layer"])][int(r["position"])] = float(r["kept_fraction"])
        ax = axes[gi][0]
        image = ax.imshow(grid, vmin=0.0, vmax=1.0, cmap="magma", aspect="auto")
        ax.set_ylabel(f"{g}\nlayer", fontsize=7)
    axes[-1][0].set_xlabel("position")
    fig.colorbar(image, ax=axes, label="kept fraction")
    fig.suptitle("fraction of samples keeping each position, per layer (evaluation plan)")
    for ext in ("png", "svg"):
        fig.savefig(f"{prefix}_kept_positions.{ext}")
    plt.close(fig)
    written.append(f"{prefix}_kept_positions.png/.svg")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[-3])
    report, prefix = sys.argv[1], sys.argv[2]
    rows = read_rows(report)
    if not rows:
        sys.exit(f"{report}: no groups")
    base = report[:-len(".csv")] if report.endswith(".csv") else report
    written = []
    quality_plots(rows, prefix, written)
    kept_token_heatmap(read_rows(base + "_layers.csv"), prefix, written)
    kept_position_heatmaps(read_rows(base + "_positions.csv"), prefix, written)
    print("wrote " + ", ".join(written))


if __name__ == "__main__":
    main()
