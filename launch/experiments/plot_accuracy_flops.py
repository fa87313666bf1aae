#!/usr/bin/env python3
"""Draws accuracy against training FLOPs from a results.tsv as an SVG (no dependencies).

usage: plot_accuracy_flops.py RESULTS_TSV OUT_SVG
"""
import csv
import sys


def main(tsv_path, svg_path):
    with open(tsv_path) as f:
        rows = [r for r in csv.DictReader(f, delimiter="\t")]
    points = [(float(r["training_flops"]), 100 * float(r["eval_accuracy"]), r["variant"]) for r in rows]
    width, height, margin = 760, 460, 70
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    x0, x1 = 0.0, max(xs) * 1.1
    y0, y1 = min(ys) - 2, max(ys) + 1
    sx = lambda x: margin + (x - x0) / (x1 - x0) * (width - 2 * margin)
    sy = lambda y: height - margin - (y - y0) / (y1 - y0) * (height - 2 * margin)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<line x1="{margin}" y1="{height - margin}" x2="{width - margin}" y2="{height - margin}" stroke="black"/>',
           f'<line x1="{margin}" y1="{margin}" x2="{margin}" y2="{height - margin}" stroke="black"/>',
           f'<text x="{width / 2}" y="{height - 25}" text-anchor="middle">training FLOPs (analytic, forward + backward, x1e12)</text>',
           f'<text x="20" y="{height / 2}" text-anchor="middle" transform="rotate(-90 20 {height / 2})">test accuracy (%)</text>',
           f'<text x="{width / 2}" y="30" text-anchor="middle" font-size="14">Fashion-MNIST, ViT 128x4, 700 steps x 128: accuracy vs training FLOPs</text>']
    for i in range(6):
        x = x0 + (x1 - x0) * i / 5
        out.append(f'<text x="{sx(x)}" y="{height - margin + 18}" text-anchor="middle">{x / 1e12:.1f}</text>')
        y = y0 + (y1 - y0) * i / 5
        out.append(f'<text x="{margin - 8}" y="{sy(y) + 4}" text-anchor="end">{y:.1f}</text>')
    for x, y, name in points:
        color = "black" if name.startswith("dense") else "#1f6fb4"
        out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="5" fill="{color}"/>')
        out.append(f'<text x="{sx(x) + 8:.1f}" y="{sy(y) - 6:.1f}">{name} ({y:.2f}%)</text>')
    out.append("</svg>")
    with open(svg_path, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
