#!/usr/bin/python3
"""Answers the seed paper's questions from the three seed-claims studies (issue 12,
docs/study-seed-claims.md): prints Markdown tables and draws the plots.

  /usr/bin/python3 launch/studies/seed_claims_report.py [--runs runs] [--plots docs/plots]

Reads RUNS/seed-claims-{vit,refs,gpt}/*/summary.json (every cell; run `winnow study report`
on each directory first for its own report.csv and plots) and writes to PLOTS:
  seed_claims_accuracy.{png,svg}   accuracy vs training FLOPs (ratio to dense), mean ± std
  seed_claims_positions.{png,svg}  kept-position heatmaps on the 4x4 patch grid, r = 0.25
  seed_claims.csv                  one row per group: accuracy / loss, FLOPs, time, memory, ...
The questions:
  1. Do random dropping, uniform selection and pooling rival attention-based selection during
     training? ("rival", stated before running: the random/uniform mean within one (larger) seed
     std of the best attention-based method's mean at the same keep ratio r.)
  2. Do kept-position heatmaps show a position bias (for a ViT's CLS attention: more of the centre,
     or of one side)?
  3. How do measured attention time and activation memory compare with m^2/n^2 and m/n?
"""

import argparse
import csv
import glob
import json
import os
import statistics

KEEPS = {"0.5": 0.25, "0.7071": 0.5, "0.8367": 0.7}  # compress.keep per layer -> r after block 2
METHODS = ["random", "uniform", "cls_attention", "attention_received", "norm", "similarity_merge"]
ATTENTION_BASED = ["cls_attention", "attention_received"]


def cells(study_dir):
    """{group: [summary, ...]}, a group being the cell name without its seed."""
    groups = {}
    for path in sorted(glob.glob(os.path.join(study_dir, "*", "summary.json"))):
        name = os.path.basename(os.path.dirname(path))
        group = ",".join(p for p in name.split(",") if not p.startswith("seed="))
        groups.setdefault(group, []).append(json.load(open(path)))
    return groups


def mean_std(values):
    values = [v for v in values if v is not None]
    if not values:
        return float("nan"), float("nan")
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def fmt(pair, scale=1.0, digits=2):
    return f"{pair[0] * scale:.{digits}f} ± {pair[1] * scale:.{digits}f}"


def ratio_per_layer(summary, key, dense_key):
    return [a / b if b else float("nan") for a, b in zip(summary[key], summary[dense_key])]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", default="runs")
    parser.add_argument("--plots", default="docs/plots")
    args = parser.parse_args()
    vit = cells(os.path.join(args.runs, "seed-claims-vit"))
    refs = cells(os.path.join(args.runs, "seed-claims-refs"))
    gpt = cells(os.path.join(args.runs, "seed-claims-gpt"))
    if "dense" not in refs:
        raise SystemExit("no dense cells in seed-claims-refs: run the refs study first")
    dense_flops = statistics.mean(s["training_flops"] for s in refs["dense"])
    dense_peak = statistics.mean(s["peak_activation_bytes"] for s in refs["dense"])

    rows = []
    def add(study, group, method, r, summaries):
        acc = mean_std([s.get("eval_accuracy") for s in summaries])
        rows.append(dict(
            study=study, group=group, method=method, r=r, seeds=len(summaries),
            accuracy=acc, flops=mean_std([s["training_flops"] / dense_flops for s in summaries]),
            seconds=mean_std([s["train_seconds"] for s in summaries]),
            peak=mean_std([s["peak_activation_bytes"] / dense_peak for s in summaries]),
            speedup=mean_std([s.get("inference_speedup") for s in summaries]),
            flops_speedup=mean_std([s.get("inference_flops_speedup") for s in summaries]),
            summaries=summaries))
    for group, summaries in vit.items():
        method, keep = group.split(",keep=")
        add("vit", group, method, KEEPS.get(keep), summaries)
    for group, summaries in refs.items():
        add("refs", group, group, None, summaries)

    # 1. Accuracy table: methods x r, then the references.
    print("### Accuracy (%) by method and keep ratio r, mean ± std over seeds "
          "(training FLOPs / dense in brackets)\n")
    print("| method | " + " | ".join(f"r = {r}" for r in sorted(set(KEEPS.values()))) + " |")
    print("|---|" + "---|" * len(KEEPS))
    by = {(row["method"], row["r"]): row for row in rows if row["study"] == "vit"}
    for method in METHODS:
        cells_text = []
        for r in sorted(set(KEEPS.values())):
            row = by.get((method, r))
            cells_text.append(f"{fmt(row['accuracy'], 100)} ({row['flops'][0]:.2f})" if row else "–")
        print(f"| {method} | " + " | ".join(cells_text) + " |")
    print("\n| reference | accuracy (%) | training FLOPs / dense |\n|---|---|---|")
    for row in rows:
        if row["study"] == "refs":
            print(f"| {row['group']} | {fmt(row['accuracy'], 100)} | {row['flops'][0]:.3f} |")

    print("\n### Do random and uniform rival the best attention-based method? (within one std)\n")
    print("| r | best attention-based | random | uniform | best overall |\n|---|---|---|---|---|")
    for r in sorted(set(KEEPS.values())):
        att = max((by[(m, r)] for m in ATTENTION_BASED if (m, r) in by),
                  key=lambda row: row["accuracy"][0], default=None)
        if att is None:
            continue
        verdicts = []
        for m in ["random", "uniform"]:
            row = by.get((m, r))
            if not row:
                verdicts.append("–")
                continue
            diff = row["accuracy"][0] - att["accuracy"][0]
            tolerance = max(row["accuracy"][1], att["accuracy"][1])
            word = "rivals" if abs(diff) <= tolerance else ("beats" if diff > 0 else "loses")
            verdicts.append(f"{fmt(row['accuracy'], 100)}: {word} ({diff * 100:+.2f} pt, "
                            f"std {tolerance * 100:.2f})")
        best = max((by[(m, r)] for m in METHODS if (m, r) in by), key=lambda row: row["accuracy"][0])
        print(f"| {r} | {att['method']} {fmt(att['accuracy'], 100)} | " + " | ".join(verdicts) +
              f" | {best['method']} |")

    # 2. Position bias: kept fraction of the centre 2x2 patches vs the 12 border patches, and of
    # the bottom half vs the top half, at the input of block 3 (after both prunings).
    print("\n### Kept positions entering block 3 (after the prunings at blocks 1 and 2), "
          "mean over seeds\n")
    print("| method, r | centre 2×2 | border 12 | top half | bottom half | left half | right half |")
    print("|---|---|---|---|---|---|---|")
    heat = {}
    for row in rows:
        if row["study"] != "vit" or row["r"] is None:
            continue
        grids = []
        for s in row["summaries"]:
            layers, positions = s["kept_position_shape"]
            values = s["kept_position_fraction"]
            layer = min(3, layers - 1)
            grids.append(values[layer * positions + 1:(layer + 1) * positions])  # skip CLS
        side = int(round(len(grids[0]) ** 0.5))
        grid = [statistics.mean(g[i] for g in grids) for i in range(side * side)]
        heat[(row["method"], row["r"])] = (side, grid)
        at = lambda rr, cc: grid[rr * side + cc]
        centre = [at(rr, cc) for rr in range(side) for cc in range(side)
                  if 0 < rr < side - 1 and 0 < cc < side - 1]
        border = [at(rr, cc) for rr in range(side) for cc in range(side)
                  if not (0 < rr < side - 1 and 0 < cc < side - 1)]
        half = side // 2
        part = lambda rows_, cols_: statistics.mean(at(rr, cc) for rr in rows_ for cc in cols_)
        print(f"| {row['method']}, {row['r']} | {statistics.mean(centre):.2f} | "
              f"{statistics.mean(border):.2f} | {part(range(half), range(side)):.2f} | "
              f"{part(range(half, side), range(side)):.2f} | {part(range(side), range(half)):.2f} | "
              f"{part(range(side), range(half, side)):.2f} |")

    # 3. Time and memory against m/n and m^2/n^2, per layer (blocks 1-3: the reduced ones).
    print("\n### Attention cost and activation memory against m/n (mean over seeds)\n")
    print("| method, r | layer | m/n | (m/n)² | attention-core FLOPs ratio | measured attention-core "
          "time ratio | measured attention time ratio (with projections) |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        if row["study"] != "vit" or row["method"] not in ("random", "similarity_merge"):
            continue
        per_layer = {}
        for s in row["summaries"]:
            m_over_n = [k / s["dense_tokens"] for k in s["kept_tokens_per_layer"]]
            core_flops = ratio_per_layer(s, "attention_core_flops_per_layer",
                                         "dense_attention_core_flops_per_layer")
            core_time = ratio_per_layer(s, "attention_core_seconds_per_layer",
                                        "dense_attention_core_seconds_per_layer")
            time = ratio_per_layer(s, "attention_seconds_per_layer",
                                   "dense_attention_seconds_per_layer")
            for layer in range(1, len(m_over_n)):
                per_layer.setdefault(layer, []).append(
                    (m_over_n[layer], core_flops[layer], core_time[layer], time[layer]))
        for layer, values in sorted(per_layer.items()):
            m = statistics.mean(v[0] for v in values)
            print(f"| {row['method']}, {row['r']} | {layer} | {m:.3f} | {m * m:.3f} | "
                  f"{statistics.mean(v[1] for v in values):.3f} | "
                  f"{statistics.median(v[2] for v in values):.3f} | "
                  f"{statistics.median(v[3] for v in values):.3f} |")
    print("\n| method, r | token-layers kept (Σm / Σn) | peak activation memory / dense | "
          "training time / dense | training FLOPs / dense | inference speedup (measured / FLOPs) |")
    print("|---|---|---|---|---|---|")
    dense_seconds = statistics.mean(s["train_seconds"] for s in refs["dense"])
    for row in sorted(rows, key=lambda row: (row["study"], row["method"], row["r"] or 0)):
        s0 = row["summaries"][0]
        kept = sum(s0["kept_tokens_per_layer"]) / (s0["dense_tokens"] * len(s0["kept_tokens_per_layer"]))
        print(f"| {row['group']} | {kept:.3f} | {fmt(row['peak'], 1, 3)} | "
              f"{row['seconds'][0] / dense_seconds:.2f} | {row['flops'][0]:.3f} | "
              f"{row['speedup'][0]:.2f} / {row['flops_speedup'][0]:.2f} |")

    if gpt:
        print("\n### Byte-level GPT: validation loss, mean ± std over seeds\n")
        print("| variant | seeds | val loss | training FLOPs / dense |\n|---|---|---|---|")
        gpt_dense = statistics.mean(s["training_flops"] for s in gpt.get("dense", refs["dense"]))
        for group, summaries in gpt.items():
            loss = mean_std([s["eval_loss"] for s in summaries])
            print(f"| {group} | {len(summaries)} | {fmt(loss, 1, 4)} | "
                  f"{statistics.mean(s['training_flops'] for s in summaries) / gpt_dense:.3f} |")

    os.makedirs(args.plots, exist_ok=True)
    with open(os.path.join(args.plots, "seed_claims.csv"), "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["study", "group", "method", "r", "seeds", "accuracy_mean", "accuracy_std",
                         "training_flops_ratio", "train_seconds_mean", "peak_activation_ratio",
                         "inference_speedup", "inference_flops_speedup"])
        for row in rows:
            writer.writerow([row["study"], row["group"], row["method"], row["r"], row["seeds"],
                             f"{row['accuracy'][0]:.5f}", f"{row['accuracy'][1]:.5f}",
                             f"{row['flops'][0]:.4f}", f"{row['seconds'][0]:.2f}",
                             f"{row['peak'][0]:.4f}", f"{row['speedup'][0]:.3f}",
                             f"{row['flops_speedup'][0]:.3f}"])
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("\n(python3-matplotlib is not installed: plots skipped)")
        return
    figure, axes = plt.subplots(figsize=(8.5, 5.5))
    for method in METHODS:
        line = [by[(method, r)] for r in sorted(set(KEEPS.values())) if (method, r) in by]
        axes.errorbar([row["flops"][0] for row in line], [row["accuracy"][0] * 100 for row in line],
                      yerr=[row["accuracy"][1] * 100 for row in line], marker="o", capsize=3,
                      label=method, linestyle="--" if method in ("random", "uniform") else "-")
    ref_rows = [row for row in rows if row["study"] == "refs"]
    cut = sorted([row for row in ref_rows if row["group"].startswith("dense")],
                 key=lambda row: row["flops"][0])
    axes.errorbar([row["flops"][0] for row in cut], [row["accuracy"][0] * 100 for row in cut],
                  yerr=[row["accuracy"][1] * 100 for row in cut], marker="s", color="black",
                  capsize=3, label="dense (cut to fewer steps)")
    pool = sorted([row for row in ref_rows if row["group"].startswith("pool")],
                  key=lambda row: row["flops"][0])
    axes.errorbar([row["flops"][0] for row in pool], [row["accuracy"][0] * 100 for row in pool],
                  yerr=[row["accuracy"][1] * 100 for row in pool], marker="^", color="grey",
                  capsize=3, linestyle=":", label="uniform 2×2 pooling (before block 1/2/3)")
    axes.set_xlabel("training FLOPs / dense (analytic)")
    axes.set_ylabel("test accuracy (%)")
    axes.set_title("Fashion-MNIST ViT 64×4, 7×7 patches, 200 steps: mean ± std over 3 seeds")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    for ext in ("png", "svg"):
        figure.savefig(os.path.join(args.plots, f"seed_claims_accuracy.{ext}"))
    plt.close(figure)

    r = 0.25
    shown = [m for m in METHODS if (m, r) in heat]
    figure, axes = plt.subplots(1, len(shown), figsize=(2.2 * len(shown), 2.6))
    for axis, method in zip(axes, shown):
        side, grid = heat[(method, r)]
        image = axis.imshow([grid[i * side:(i + 1) * side] for i in range(side)], vmin=0, vmax=1,
                            cmap="viridis")
        axis.set_title(method, fontsize=8)
        axis.set_xticks([])
        axis.set_yticks([])
    figure.colorbar(image, ax=list(axes), shrink=0.8, label="fraction kept")
    figure.suptitle(f"patches entering block 3 at r = {r} (4×4 grid, mean over seeds)", fontsize=9)
    for ext in ("png", "svg"):
        figure.savefig(os.path.join(args.plots, f"seed_claims_positions.{ext}"))
    plt.close(figure)
    print(f"\nwrote {args.plots}/seed_claims_accuracy.{{png,svg}}, seed_claims_positions.{{png,svg}},"
          " seed_claims.csv")


if __name__ == "__main__":
    main()
