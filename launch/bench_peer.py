#!/usr/bin/python3
"""The PyTorch peer of `winnow bench`: the same ViT training step in Python PyTorch.

Times torchvision's VisionTransformer with the shapes of a winnow bench config (width, depth,
heads, MLP ratio, patch, image size, classes, global batch) trained with AdamW (two groups:
weight decay on matrices, none on norms/biases/embeddings, as winnow's optimizer), gradient-norm
clipping at 1.0 and cross-entropy, on synthetic Fashion-MNIST-shaped images, with the same number
of intra-op threads. Prints one line: `peer step ms: <median> (min <min>, max <max>) over N steps`.

With --winnow PATH it is the comparison instead: it reads the model shape from a winnow config
(--config, default launch/configs/bench-vit.ini), then for --rounds rounds runs `winnow bench` and
itself (a fresh process each) alternately, and prints each round's step times, the ratio
peer/winnow (> 1: winnow is faster) and winnow's share of the matmul rate, then the medians and
ranges. The peer runs with the allocator winnow reports (tcmalloc through LD_PRELOAD) unless
--peer-allocator system.

    /usr/bin/python3 launch/bench_peer.py --winnow build/launch/winnow --rounds 5 --threads 2

Needs Debian's python3-torch and python3-torchvision (launch/setup.sh installs them).
"""
import argparse
import configparser
import os
import re
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from torchvision.models.vision_transformer import VisionTransformer


TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"


def run(command, env=None):
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.exit(f"bench_peer: {' '.join(command)} failed with {done.returncode}:\n"
                 f"{done.stdout}{done.stderr}")
    return done.stdout


def find(pattern, text, what):
    m = re.search(pattern, text)
    if not m:
        sys.exit(f"bench_peer: no {what} in this output:\n{text}")
    return m


def compare(a):
    """Alternates `winnow bench` and the peer for a.rounds rounds; prints ratios."""
    ini = configparser.ConfigParser()
    if not ini.read(a.config):
        sys.exit(f"bench_peer: cannot read config {a.config}")
    get = lambda section, key, default: ini.get(section, key, fallback=str(default))
    shape = ["--dim", get("model", "dim", 192), "--depth", get("model", "depth", 6),
             "--heads", get("model", "heads", 3), "--mlp_ratio", get("model", "mlp_ratio", 4.0),
             "--patch", get("model", "patch", 4), "--batch", get("train", "global_batch", 32),
             "--threads", str(a.threads), "--steps", str(a.steps), "--warmup", str(a.warmup)]
    winnow = [a.winnow, "bench", "--config", a.config, "--dist.threads", str(a.threads),
              "--bench.steps", str(a.steps), "--bench.warmup", str(a.warmup)]
    peer_env = dict(os.environ)
    allocator = "glibc malloc"
    if a.peer_allocator == "tcmalloc":
        if not os.path.exists(TCMALLOC):
            sys.exit(f"bench_peer: {TCMALLOC} is missing (apt install libtcmalloc-minimal4), or "
                     "pass --peer-allocator system")
        peer_env["LD_PRELOAD"] = TCMALLOC
        allocator = "tcmalloc (LD_PRELOAD)"
    peer = [sys.executable, os.path.abspath(__file__)] + shape
    print(f"bench_peer: {a.rounds} rounds of winnow bench vs PyTorch peer, {a.threads} thread(s), "
          f"{a.steps} timed steps each; config {a.config}; peer allocator {allocator}", flush=True)
    ratios, winnow_ms, peer_ms, efficiency = [], [], [], []
    for r in range(a.rounds):
        w = run(winnow)
        if r == 0:
            m = re.search(r"allocator\s+(.*)", w)
            print("  winnow allocator: " + (m.group(1).strip() if m else "not reported"))
        wms = float(find(r"step time \(median of \d+\)\s+([0-9.]+) ms", w, "step time").group(1))
        eff = float(find(r"efficiency\s+([0-9.]+) %", w, "efficiency").group(1))
        pms = float(find(r"peer step ms: ([0-9.]+)", run(peer, peer_env), "peer time").group(1))
        winnow_ms.append(wms), peer_ms.append(pms), ratios.append(pms / wms), efficiency.append(eff)
        print(f"  round {r + 1}: winnow {wms:8.1f} ms ({eff:4.1f}% of matmul rate)   peer "
              f"{pms:8.1f} ms ({eff * wms / pms:4.1f}%)   peer/winnow {pms / wms:5.3f}", flush=True)
    med = statistics.median
    print(f"median: winnow {med(winnow_ms):.1f} ms ({min(winnow_ms):.1f}-{max(winnow_ms):.1f}), "
          f"peer {med(peer_ms):.1f} ms ({min(peer_ms):.1f}-{max(peer_ms):.1f}), winnow "
          f"{med(efficiency):.1f}% of the matmul rate; winnow is {med(ratios):.3f}x the peer's "
          f"throughput (range {min(ratios):.3f}-{max(ratios):.3f})")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dim", type=int, default=192)
    p.add_argument("--depth", type=int, default=8)
    p.add_argument("--heads", type=int, default=3)
    p.add_argument("--mlp_ratio", type=float, default=4.0)
    p.add_argument("--patch", type=int, default=2)
    p.add_argument("--image", type=int, default=28, help="image side (square, 1 channel)")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=10, help="timed steps")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--winnow", help="path of the winnow executable: compare against it")
    p.add_argument("--config", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                    "configs", "bench-vit.ini"))
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--peer-allocator", choices=["tcmalloc", "system"], default="tcmalloc")
    a = p.parse_args()
    if a.winnow:
        return compare(a)
    if a.image % a.patch:
        p.error(f"--image {a.image} must be a multiple of --patch {a.patch}")
    if a.dim % a.heads:
        p.error(f"--dim {a.dim} must be divisible by --heads {a.heads}")

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    model = VisionTransformer(image_size=a.image, patch_size=a.patch, num_layers=a.depth,
                              num_heads=a.heads, hidden_dim=a.dim,
                              mlp_dim=int(a.dim * a.mlp_ratio), num_classes=a.classes)
    # One input channel, like Fashion-MNIST (torchvision's stem expects three).
    model.conv_proj = torch.nn.Conv2d(1, a.dim, kernel_size=a.patch, stride=a.patch)
    decayed = [q for n, q in model.named_parameters() if q.dim() >= 2 and "pos_embedding" not in n
               and "class_token" not in n]
    exempt = [q for n, q in model.named_parameters() if not (q.dim() >= 2 and "pos_embedding"
              not in n and "class_token" not in n)]
    optimizer = torch.optim.AdamW([{"params": decayed, "weight_decay": 0.05},
                                   {"params": exempt, "weight_decay": 0.0}], lr=1e-3)
    images = torch.randn(a.batch, 1, a.image, a.image)
    labels = torch.randint(0, a.classes, (a.batch,))

    times = []
    for step in range(a.warmup + a.steps):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step >= a.warmup:
            times.append(1000.0 * (time.perf_counter() - start))
    print(f"peer step ms: {statistics.median(times):.2f} (min {min(times):.2f}, "
          f"max {max(times):.2f}) over {a.steps} steps; torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s), {sum(q.numel() for q in model.parameters())} "
          f"parameters", flush=True)


if __name__ == "__main__":
    main()
