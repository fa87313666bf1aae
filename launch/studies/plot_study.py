#!/usr/bin/python3
"""Plots a study report (report.csv of `winnow study report`): final eval quality against training
FLOPs and against training seconds, one point per group with error bars over seeds, as PNG and
SVG. Called by `winnow study report` when matplotlib is installed (python3-matplotlib).

usage: plot_study.py REPORT_CSV OUT_PREFIX   # writes OUT_PREFIX_flops.{png,svg}, _time.{png,svg}
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[-1])
    with open(sys.argv[1]) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        sys.exit(f"{sys.argv[1]}: no groups")
    metric = rows[0]["metric"]
    scale = 100.0 if metric == "eval_accuracy" else 1.0
    label = "eval accuracy (%)" if metric == "eval_accuracy" else "eval loss"
    for axis, xlabel, suffix in (("training_flops", "training FLOPs (analytic, forward + backward)", "flops"),
                                 ("train_seconds", "training time (s)", "time")):
        fig, ax = plt.subplots(figsize=(8, 5))
        for r in rows:
            ax.errorbar(float(r[axis + "_mean"]), scale * float(r["metric_mean"]),
                        xerr=float(r[axis + "_std"]), yerr=scale * float(r["metric_std"]),
                        marker="o", capsize=3, linestyle="none",
                        label=f"{r['group']} (n={r['seeds']})")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(label)
        ax.set_title(f"{label} vs {xlabel.split(' (')[0]}, mean ± std over seeds")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        for ext in ("png", "svg"):
            fig.savefig(f"{sys.argv[2]}_{suffix}.{ext}")
        plt.close(fig)
    print(f"wrote {sys.argv[2]}_flops.png/.svg, {sys.argv[2]}_time.png/.svg")


if __name__ == "__main__":
    main()
