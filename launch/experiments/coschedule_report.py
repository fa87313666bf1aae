#!/usr/bin/python3
"""Summarises a co-scheduler experiment's results.tsv: mean ± std per variant and budget, the
pre-stated success test (joint vs the single-axis fronts and the shallow dense model), and, when
python3-matplotlib is installed, accuracy (or validation loss) against training FLOPs as an SVG.

usage: coschedule_report.py RESULTS_TSV [--svg OUT.svg] [--title TEXT] [--metric eval_accuracy]
"""
import argparse
import csv
import statistics
import sys


def mean_std(values):
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tsv")
    parser.add_argument("--svg")
    parser.add_argument("--title", default="accuracy vs training FLOPs")
    parser.add_argument("--metric", default="eval_accuracy",
                        help="eval_accuracy (higher is better) or eval_loss (lower is better)")
    args = parser.parse_args()
    with open(args.tsv) as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    if not rows:
        sys.exit(f"{args.tsv}: no runs")
    higher = args.metric != "eval_loss"
    scale = 100.0 if args.metric == "eval_accuracy" else 1.0
    groups = {}
    for r in rows:
        groups.setdefault((r["variant"], r["budget"]), []).append(r)
    stats = {}
    print(f"{'variant':<14}{'budget':>7}{'n':>3}{args.metric + ' (mean ± std)':>30}"
          f"{'training FLOPs':>16}{'train s':>10}")
    for (variant, budget), group in sorted(groups.items(), key=lambda kv: (kv[0][0], -float(kv[0][1]))):
        metric = mean_std([scale * float(r[args.metric]) for r in group])
        flops = statistics.mean(float(r["training_flops"]) for r in group)
        secs = statistics.mean(float(r["train_seconds"]) for r in group)
        stats[(variant, budget)] = (metric, flops, len(group))
        print(f"{variant:<14}{budget:>7}{len(group):>3}{metric[0]:>21.3f} ± {metric[1]:<6.3f}"
              f"{flops:>16.3e}{secs:>10.1f}")
    budgets = sorted({b for (v, b) in stats if v == "joint"}, key=float, reverse=True)
    if budgets:
        print("\nsuccess test (stated before running): joint beats token_only and layer_only by "
              "> 2 std at >= 2 budgets, and matches or beats the shallow dense model")
        wins = 0
        for b in budgets:
            (jm, js), _, _ = stats[("joint", b)]
            line, beats_all = f"  budget {b}: joint {jm:.3f} ± {js:.3f}", True
            for other in ("token_only", "layer_only", "shallow"):
                if (other, b) not in stats:
                    continue
                (om, osd), _, _ = stats[(other, b)]
                margin = (jm - om) if higher else (om - jm)
                need = 2 * max(js, osd)
                if other != "shallow":
                    beats_all = beats_all and margin > need
                line += f"; vs {other} {om:.3f} ± {osd:.3f} (margin {margin:+.3f}, 2 std {need:.3f})"
            wins += beats_all
            print(line + ("  -> beats both fronts" if beats_all else ""))
        print(f"  joint beats both single-axis fronts by > 2 std at {wins} of {len(budgets)} budgets")
    if args.svg:
        try:
            import matplotlib
            matplotlib.use("svg")
            import matplotlib.pyplot as plt
        except ImportError:
            print("(no python3-matplotlib: apt-get install python3-matplotlib for the plot)")
            return
        fig, ax = plt.subplots(figsize=(8, 5))
        for variant in sorted({v for (v, b) in stats}):
            points = sorted(((f, m[0], m[1]) for (v, b), (m, f, n) in stats.items() if v == variant))
            xs = [p[0] for p in points]
            ax.errorbar(xs, [p[1] for p in points], yerr=[p[2] for p in points], marker="o",
                        capsize=3, label=variant, linestyle="-" if len(points) > 1 else "none")
        ax.set_xlabel("training FLOPs (analytic, forward + backward)")
        ax.set_ylabel({"eval_accuracy": "test accuracy (%)"}.get(args.metric, args.metric))
        ax.set_title(args.title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(args.svg)
        print(f"wrote {args.svg}")


if __name__ == "__main__":
    main()
