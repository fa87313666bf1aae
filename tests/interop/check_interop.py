#!/usr/bin/env python3
"""End-to-end weight interop with PyTorch (docs/interop.md).

Builds a small torchvision VisionTransformer and small nanoGPT-style GPTs with fixed seeds, saves
their state dicts with torch.save, imports them with `winnow import`, runs winnow's forward pass
(tests/interop/interop_logits) and compares the logits with PyTorch's (<= 1e-5 relative). Then
exports them back with `winnow export`, loads them with load_state_dict(strict=True) and checks
that every tensor and the logits are identical.

The GPT is written here from torch.nn, in the shape of karpathy/nanoGPT's model.py (same module
and parameter names); with --nanogpt DIR the real nanoGPT from a checkout is tested as well.

Exit 0: pass; 1: a check failed; 77: skipped (no torch/torchvision importable).
"""
import argparse
import math
import os
import subprocess
import sys

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    import torchvision
except ImportError as error:  # ctest reports this as skipped (SKIP_RETURN_CODE 77)
    print(f"SKIP: the interop check needs PyTorch and torchvision in {sys.executable} ({error}); "
          "install python3-torch python3-torchvision (launch/setup.sh)")
    sys.exit(77)

TOLERANCE = 1e-5  # max |winnow - torch| / max |torch|


# ---- a nanoGPT-style GPT, module and parameter names as in nanoGPT's model.py ----

class OptionalBiasLayerNorm(nn.Module):
    def __init__(self, width, bias):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))
        self.bias = nn.Parameter(torch.zeros(width)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class CausalSelfAttention(nn.Module):
    def __init__(self, width, heads, context, bias, mask_buffer):
        super().__init__()
        self.heads = heads
        self.c_attn = nn.Linear(width, 3 * width, bias=bias)
        self.c_proj = nn.Linear(width, width, bias=bias)
        if mask_buffer:  # what nanoGPT registers when PyTorch lacks scaled_dot_product_attention
            self.register_buffer("bias", torch.tril(torch.ones(context, context)).view(1, 1, context, context))

    def forward(self, x):
        batch, length, width = x.shape
        q, k, v = self.c_attn(x).split(width, dim=2)
        split = lambda t: t.view(batch, length, self.heads, width // self.heads).transpose(1, 2)
        q, k, v = split(q), split(k), split(v)
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(k.size(-1))
        future = torch.ones(length, length, dtype=torch.bool).triu(1)
        scores = scores.masked_fill(future, float("-inf"))
        y = scores.softmax(-1) @ v
        return self.c_proj(y.transpose(1, 2).reshape(batch, length, width))


class Mlp(nn.Module):
    def __init__(self, width, bias):
        super().__init__()
        self.c_fc = nn.Linear(width, 4 * width, bias=bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * width, width, bias=bias)

    def forward(self, x):
        return self.c_proj(self.gelu(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, width, heads, context, bias, mask_buffer):
        super().__init__()
        self.ln_1 = OptionalBiasLayerNorm(width, bias)
        self.attn = CausalSelfAttention(width, heads, context, bias, mask_buffer)
        self.ln_2 = OptionalBiasLayerNorm(width, bias)
        self.mlp = Mlp(width, bias)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class SmallGpt(nn.Module):
    def __init__(self, vocab, context, width, depth, heads, bias, mask_buffer):
        super().__init__()
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(vocab, width),
            wpe=nn.Embedding(context, width),
            h=nn.ModuleList([Block(width, heads, context, bias, mask_buffer) for _ in range(depth)]),
            ln_f=OptionalBiasLayerNorm(width, bias),
        ))
        self.lm_head = nn.Linear(width, vocab, bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # tied, as in nanoGPT

    def forward(self, tokens):  # [B, T] -> logits of every position [B, T, V]
        positions = torch.arange(tokens.size(1))
        x = self.transformer.wte(tokens) + self.transformer.wpe(positions)
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))


# ---- helpers ----

def randomise(model, seed, embedding_scale=1.0):
    """Every tensor random (fresh inits leave heads, biases and class tokens at zero, which would
    hide a mapping error). LayerNorm weights stay near 1."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=generator)
            if p.dim() == 1 and ("ln" in name and name.endswith("weight")):
                p.copy_(1.0 + 0.2 * noise)
            else:
                p.copy_(0.3 * noise)
    return model


def relative_error(got, want):
    return ((got.double() - want.double()).abs().max() / want.double().abs().max()).item()


class Check:
    def __init__(self, args):
        self.args = args
        self.failures = 0
        os.makedirs(args.work, exist_ok=True)

    def path(self, name):
        return os.path.join(self.args.work, name)

    def run(self, *command):
        result = subprocess.run(list(command), capture_output=True, text=True)
        if result.returncode != 0:
            print(f"FAIL: {' '.join(command)} exited {result.returncode}\n{result.stdout}{result.stderr}")
            raise SystemExit(1)
        return result.stdout

    def expect(self, ok, message):
        print(("ok    " if ok else "FAIL  ") + message)
        if not ok:
            self.failures += 1

    def winnow_logits(self, weights, inputs, name):
        torch.save({"input": inputs}, self.path(name + "-input.pt"))
        self.run(self.args.logits, weights, self.path(name + "-input.pt"), self.path(name + "-logits.pt"))
        return torch.load(self.path(name + "-logits.pt"))["logits"]

    def round_trip(self, name, make_model, inputs, import_args, export_args, save=None):
        """PyTorch -> winnow (logits compared) -> PyTorch (strict load, identical tensors and logits)."""
        model = make_model().eval()
        with torch.no_grad():
            want = model(inputs)
        source = self.path(name + ".pt")
        (save or (lambda m, p: torch.save(m.state_dict(), p)))(model, source)
        weights = self.path(name + ".h5")
        self.run(self.args.winnow, "import", source, "--out", weights, *import_args)
        got = self.winnow_logits(weights, inputs, name)
        error = relative_error(got, want)
        self.expect(got.shape == want.shape and error <= TOLERANCE,
                    f"{name}: winnow logits {tuple(got.shape)} vs PyTorch, relative error {error:.2e} <= {TOLERANCE}")

        exported = self.path(name + "-exported.pt")
        self.run(self.args.winnow, "export", weights, "--out", exported, *export_args)
        back = make_model().eval()
        with torch.no_grad():
            for p in back.parameters():
                p.zero_()
        # weights_only: PyTorch 2.6's default, which accepts only plain containers and tensors
        back.load_state_dict(torch.load(exported, weights_only=True), strict=True)
        same = all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), back.state_dict().values()))
        self.expect(same, f"{name}: export -> torch.load(weights_only=True) -> load_state_dict(strict=True) gives identical tensors")
        with torch.no_grad():
            self.expect(torch.equal(back(inputs), want), f"{name}: exported model gives identical logits")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--winnow", required=True, help="the winnow executable")
    parser.add_argument("--logits", required=True, help="the interop_logits test tool")
    parser.add_argument("--work", required=True, help="folder for the files this check writes")
    parser.add_argument("--nanogpt", help="a karpathy/nanoGPT checkout: also test its model.py GPT")
    args = parser.parse_args()
    torch.set_num_threads(1)
    check = Check(args)
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}")

    # ViT. Tiny patch and position embeddings make the first LayerNorm's input variance ~1e-6,
    # so a wrong epsilon (1e-5 instead of torchvision's 1e-6) changes the logits far beyond 1e-5.
    def make_vit():
        model = torchvision.models.VisionTransformer(
            image_size=16, patch_size=4, num_layers=3, num_heads=4, hidden_dim=32, mlp_dim=80, num_classes=7)
        randomise(model, seed=1)
        with torch.no_grad():
            for p in (model.conv_proj.weight, model.conv_proj.bias, model.class_token, model.encoder.pos_embedding):
                p.mul_(3e-3)
        return model
    images = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    check.round_trip("vit", make_vit, images, ["--format", "torchvision-vit", "--heads", "4"],
                     ["--format", "torchvision-vit"])

    tokens = torch.randint(50, (2, 13), generator=torch.Generator().manual_seed(3))  # T < context 16

    # nanoGPT-style GPT with biases, saved as a plain state dict; heads given on the command line.
    def make_gpt():
        return randomise(SmallGpt(vocab=50, context=16, width=24, depth=2, heads=3, bias=True, mask_buffer=False), seed=4)
    check.round_trip("gpt", make_gpt, tokens, ["--format", "nanogpt", "--heads", "3"], ["--format", "nanogpt"])

    # bias=False with PyTorch < 2.0's mask buffers, saved like nanoGPT's train.py (ckpt.pt with
    # 'model' under torch.compile's '_orig_mod.' prefix, 'model_args' giving n_head, an optimizer).
    def make_gpt_nobias():
        return randomise(SmallGpt(vocab=50, context=16, width=24, depth=2, heads=3, bias=False, mask_buffer=True), seed=5)

    def save_checkpoint(model, path):
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95))
        model(tokens).sum().backward()
        optimizer.step()  # the optimizer state holds tensors, ints, floats, tuples and None
        with torch.no_grad():
            model.load_state_dict(make_gpt_nobias().state_dict())  # back to the reference weights
        torch.save({"model": {"_orig_mod." + k: v for k, v in model.state_dict().items()},
                    "optimizer": optimizer.state_dict(),
                    "model_args": dict(n_layer=2, n_head=3, n_embd=24, block_size=16, bias=False, vocab_size=50, dropout=0.0),
                    "iter_num": 7, "best_val_loss": torch.tensor(2.5), "config": {"learning_rate": 1e-3, "dataset": "x"}}, path)
    check.round_trip("gpt-nobias-ckpt", make_gpt_nobias, tokens, ["--format", "nanogpt"],
                     ["--format", "nanogpt", "--nanogpt.bias", "false", "--nanogpt.mask_buffers", "true"],
                     save=save_checkpoint)

    if args.nanogpt:
        sys.path.insert(0, args.nanogpt)
        from model import GPT, GPTConfig  # karpathy/nanoGPT
        has_flash = hasattr(F, "scaled_dot_product_attention")

        class FullLogits(nn.Module):  # nanoGPT returns every position's logits when given targets
            def __init__(self):
                super().__init__()
                self.gpt = randomise(GPT(GPTConfig(block_size=16, vocab_size=50, n_layer=2, n_head=3, n_embd=24,
                                                   dropout=0.0, bias=True)), seed=6)

            def forward(self, idx):
                return self.gpt(idx, targets=idx)[0]

            def state_dict(self, *a, **k):
                return self.gpt.state_dict(*a, **k)

            def load_state_dict(self, *a, **k):
                return self.gpt.load_state_dict(*a, **k)
        check.round_trip("nanogpt-checkout", FullLogits, tokens, ["--format", "nanogpt", "--heads", "3"],
                         ["--format", "nanogpt", "--nanogpt.mask_buffers", "false" if has_flash else "true"])

    if check.failures:
        print(f"{check.failures} check(s) failed")
        return 1
    print("all interop checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
