#!/usr/bin/env python3
"""Fuzzes the files winnow reads, through the `winnow` executable (standard library only).

Targets, each fed `--count` mutated inputs:
  torch-structure  torch.save archives mutated as structures: pickle opcodes (parsed with
                   pickletools) deleted, duplicated, swapped, inserted, their arguments replaced
                   (extreme integers, strings with control bytes); zip entries dropped, renamed,
                   duplicated, resized -> `winnow import`
  torch-bytes      the same archives with bytes flipped, inserted, deleted, truncated
                   -> `winnow import`
  checkpoint       a checkpoint with bytes flipped, zeroed, truncated
                   -> `winnow inspect --verify`, `winnow train --resume`, `winnow eval --weights`
  dataset          a prepared token data file, mutated the same way -> `winnow train --data.train`,
                   `winnow eval --data.eval`

Each command runs as its own `winnow` process, or, with --in-process FUZZ_COMMANDS, many to a
process through tests/fuzz/fuzz_commands (the same run_cli as winnow's main; no LibTorch start per
input), which is what makes thousands of inputs under AddressSanitizer + UBSan affordable.

Every run must end with exit code 0, 1 or 2 within --timeout seconds, with no signal, no C++
backtrace ("frame #N", "Exception raised from"), no sanitizer report and no raw control byte in
its output. Failing inputs are kept under WORKDIR/failures. Exit code: 0 when all passed.

The CI pass is short (ctest fuzz_short); the long pass under AddressSanitizer + UBSan is
documented in docs/checkpoint-format.md (Faults).
"""
import argparse
import os
import pickletools
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
import zipfile

BAD_OUTPUT = re.compile(
    rb"frame #\d+|Exception raised from|AddressSanitizer|UndefinedBehaviorSanitizer|"
    rb"runtime error:|LeakSanitizer|terminate called|Segmentation fault")
CONTROL = re.compile(rb"[\x00-\x08\x0b-\x1f\x7f]")
EXTREME_INTS = [0, 1, -1, 2**31 - 1, -2**31, 2**63 - 1, -2**63, 2**32, 255, 65535]
# Opcodes that take from the stack or the memo: the ones a byte flip rarely produces.
STACK_OPS = [b"a", b"e", b"s", b"u", b"0", b"1", b"2", b"t", b"l", b"d", b"R", b"\x81", b"Q",
             b"b", b"(", b")", b"}", b"]", b"N", b"\x85", b"\x86", b"\x87", b"\x93", b"\x94",
             b"q\x00", b"h\x00", b"h\x07", b"r\xff\xff\xff\xff", b"j\x00\x00\x00\x00", b"."]


READ_TIMEOUT = "10"  # seconds; set by --read-timeout


def command_environment():
    """One thread per run; HDF5's endless loops on some damaged files end after READ_TIMEOUT s
    (winnow's read deadline, WINNOW_READ_TIMEOUT) with exit 1 and a message."""
    return dict(os.environ, OMP_NUM_THREADS="1", WINNOW_READ_TIMEOUT=READ_TIMEOUT)


def run(cmd, timeout):
    start = time.time()
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout,
                           env=command_environment())
        return p.returncode, p.stdout, time.time() - start
    except subprocess.TimeoutExpired as e:
        return "timeout", e.stdout or b"", time.time() - start


def verdict(rc, out):
    """Why a run failed, or None."""
    if rc == "timeout":
        return "hang (timeout)"
    if rc < 0:
        return "signal %d" % -rc
    if rc not in (0, 1, 2):
        return "exit code %d" % rc
    if BAD_OUTPUT.search(out):
        return "bad output: " + BAD_OUTPUT.search(out).group(0).decode()
    if CONTROL.search(out):
        return "raw control byte in the output"
    return None


# --- byte-level mutations -------------------------------------------------------------------

def mutate_bytes(data, rng):
    data = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        kind = rng.randrange(6)
        if not data:
            break
        at = rng.randrange(len(data))
        if kind == 0:
            data[at] ^= 1 << rng.randrange(8)
        elif kind == 1:
            data[at] = rng.randrange(256)
        elif kind == 2:
            data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif kind == 3:
            del data[at:at + rng.randint(1, 64)]
        elif kind == 4:
            data[at:at + 512] = bytes(min(512, len(data) - at))
        else:
            del data[rng.randrange(len(data)):]
    return bytes(data)


# --- structure-aware mutations of torch.save archives -----------------------------------------

def pickle_ops(pickle):
    """[(start, end)] byte ranges of the opcodes of `pickle` (their arguments included)."""
    ops = list(pickletools.genops(pickle))
    bounds = []
    for i, (_, _, pos) in enumerate(ops):
        end = ops[i + 1][2] if i + 1 < len(ops) else len(pickle)
        bounds.append((pos, end))
    return ops, bounds


def encode_argument(op, rng):
    """A new argument for `op`: extreme integers, odd strings, lengths that lie."""
    name = op.name
    if name in ("BININT1", "BINGET", "BINPUT"):
        return bytes([rng.randrange(256)])
    if name in ("BININT2",):
        return rng.randrange(65536).to_bytes(2, "little")
    if name in ("BININT", "LONG_BINGET", "LONG_BINPUT"):
        return (rng.choice(EXTREME_INTS) % 2**32).to_bytes(4, "little")
    if name == "LONG1":
        value = rng.choice(EXTREME_INTS)
        raw = (value % 2**64).to_bytes(8, "little")
        return bytes([8]) + raw
    if name in ("BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8"):
        text = rng.choice([b"", b"\x1b[2J\x07", b"storage", b"cpu", b"0", b"9" * 40,
                           bytes(rng.randrange(256) for _ in range(rng.randint(1, 20)))])
        if rng.random() < 0.2:  # a length that lies
            return rng.randrange(2**32).to_bytes(4, "little") + text
        if name == "SHORT_BINUNICODE":
            return bytes([len(text) & 0xFF]) + text[:255]
        if name == "BINUNICODE8":
            return len(text).to_bytes(8, "little") + text
        return len(text).to_bytes(4, "little") + text
    if name == "GLOBAL":
        return rng.choice([b"torch\nEvilStorage\n", b"torch._utils\n_rebuild_tensor_v2\n",
                           b"collections\nOrderedDict\n", b"os\nsystem\n", b"torch\n\x1b[31m\n",
                           b"builtins\ndict\n", b"torch\nFloatStorage\n"])
    return None


def mutate_pickle(pickle, rng):
    try:
        ops, bounds = pickle_ops(pickle)
    except Exception:
        return mutate_bytes(pickle, rng)
    pieces = [pickle[s:e] for s, e in bounds]
    for _ in range(rng.randint(1, 4)):
        if not pieces:
            break
        i = rng.randrange(len(pieces))
        kind = rng.randrange(6)
        if kind == 0:
            del pieces[i]
        elif kind == 1:
            pieces.insert(i, pieces[i])
        elif kind == 2:
            j = rng.randrange(len(pieces))
            pieces[i], pieces[j] = pieces[j], pieces[i]
        elif kind == 3:
            pieces.insert(i, rng.choice(STACK_OPS))
        elif kind == 4 and i < len(ops):
            argument = encode_argument(ops[i][0], rng)
            if argument is not None:
                pieces[i] = pieces[i][:1] + argument
        else:
            del pieces[rng.randrange(len(pieces)):]
    return b"".join(pieces)


def mutate_archive(path, out, rng):
    warnings.filterwarnings("ignore", "Duplicate name")  # duplicated entries are a mutation
    with zipfile.ZipFile(path) as z:
        entries = [(info.filename, z.read(info.filename)) for info in z.infolist()]
    kind = rng.randrange(10)
    if kind < 6:
        entries = [(n, mutate_pickle(d, rng) if n.endswith("data.pkl") else d) for n, d in entries]
    elif kind == 6 and len(entries) > 1:
        del entries[rng.randrange(len(entries))]
    elif kind == 7:
        i = rng.randrange(len(entries))
        name, data = entries[i]
        entries[i] = (rng.choice([name + "x", "archive/data/99", name.upper(), "other/" + name]), data)
    elif kind == 8:
        i = rng.randrange(len(entries))
        name, data = entries[i]
        entries[i] = (name, data[: rng.randrange(len(data) + 1)] if rng.random() < 0.5
                      else data + bytes(rng.randrange(1, 64)))
    else:
        entries.append(rng.choice(entries))
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for name, data in entries:
            z.writestr(name, data)


def commands_for(winnow, target, mutated, work, fixtures):
    """The winnow command lines a mutated input of `target` goes through."""
    if target.startswith("torch"):
        return [[winnow, "import", "--format", "nanogpt", mutated, "--heads", "2", "--out",
                 os.path.join(work, "imported.h5")]]
    if target == "checkpoint":
        return [[winnow, "inspect", mutated, "--verify"],
                [winnow, "train", "--resume", mutated, "--train.steps", "3", "--checkpoint.dir",
                 "none", "--dist.threads", "1"],
                [winnow, "eval", "--weights", mutated, "--dist.threads", "1"]]
    return [[winnow, "train", "--data.train", mutated, "--model.kind", "gpt", "--model.dim", "16",
             "--model.depth", "1", "--model.heads", "2", "--data.context", "8", "--train.steps",
             "2", "--train.global_batch", "4", "--optim.warmup_steps", "1", "--checkpoint.dir",
             "none", "--dist.threads", "1"],
            [winnow, "eval", "--weights", fixtures["model"], "--data.eval", mutated,
             "--dist.threads", "1"]]


MARKER = re.compile(rb"^@@ (begin|end) (\d+)(?: (-?\d+))?$", re.M)


def run_in_process(harness, commands, timeout, work):
    """[(rc, out, seconds)] per command, run by the fuzz_commands harness many to a process.

    The harness marks each command's output with "@@ begin i" / "@@ end i RC"; a process that
    dies inside command i (a sanitizer report, a signal, SIGALRM after `timeout` seconds) leaves
    a begin without its end: that command gets the process's fate, and a new process goes on
    from i + 1."""
    listing = os.path.join(work, "commands.tsv")
    with open(listing, "w") as f:
        for command in commands:
            f.write("\t".join(command[1:]) + "\n")
    results = [None] * len(commands)
    first = 0
    while first < len(commands):
        started = time.time()
        try:
            p = subprocess.run([harness, listing, str(max(1, int(timeout))), str(first)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               timeout=timeout * (len(commands) - first) + 120,
                               env=command_environment())
            code, out = p.returncode, p.stdout
        except subprocess.TimeoutExpired as e:
            code, out = "timeout", e.stdout or b""
        elapsed = time.time() - started
        markers = list(MARKER.finditer(out))
        open_index, open_at = None, 0
        for m in markers:
            index = int(m.group(2))
            if m.group(1) == b"begin":
                open_index, open_at = index, m.end()
            elif open_index == index:
                results[index] = (int(m.group(3)), out[open_at:m.start()], 0.0)
                open_index = None
        done = [i for i in range(first, len(commands)) if results[i] is not None]
        if open_index is not None:  # the process died inside this command
            fate = "timeout" if code == -signal.SIGALRM or code == "timeout" else code
            results[open_index] = (fate if fate != 0 else 1, out[open_at:], elapsed)
            first = open_index + 1
        elif len(done) == len(commands) - first:
            first = len(commands)
        else:
            missing = next(i for i in range(first, len(commands)) if results[i] is None)
            results[missing] = (code if code != 0 else 1, b"fuzz_commands ended without running "
                                b"this command: " + out[-2000:], elapsed)
            first = missing + 1
    return results


# --- fixtures ---------------------------------------------------------------------------------

def make_fixtures(winnow, work):
    def must(cmd):
        rc, out, _ = run(cmd, 300)
        if rc != 0:
            sys.exit("fixture failed: %s\n%s" % (" ".join(cmd), out.decode(errors="replace")))
    gpt = os.path.join(work, "gpt")
    must([winnow, "train", "--data.synthetic", "text", "--model.kind", "gpt", "--model.dim", "16",
          "--model.depth", "1", "--model.heads", "2", "--train.steps", "2", "--train.global_batch",
          "4", "--optim.warmup_steps", "1", "--checkpoint.every", "1", "--checkpoint.keep", "1",
          "--dist.threads", "1", "--train.run_dir", gpt])
    must([winnow, "export", "--format", "nanogpt", os.path.join(gpt, "model.h5"), "--out",
          os.path.join(work, "gpt.pt")])
    text = os.path.join(work, "text.txt")
    with open(text, "w") as f:
        for j in range(40):
            f.write("a line of text %d\n%%\n" % j)
    must([winnow, "prepare", "text", "--in", text, "--out", os.path.join(work, "tokens")])
    text_model = os.path.join(work, "gpt-text")  # evaluates the mutated token files
    must([winnow, "train", "--data.train", os.path.join(work, "tokens", "train.h5"), "--model.kind",
          "gpt", "--model.dim", "16", "--model.depth", "1", "--model.heads", "2", "--data.context",
          "8", "--train.steps", "1", "--train.global_batch", "4", "--optim.warmup_steps", "1",
          "--checkpoint.dir", "none", "--dist.threads", "1", "--train.run_dir", text_model])
    checkpoint = sorted(p for p in os.listdir(os.path.join(gpt, "checkpoints")) if p.endswith(".h5"))[-1]
    return {"torch": os.path.join(work, "gpt.pt"),
            "checkpoint": os.path.join(gpt, "checkpoints", checkpoint),
            "model": os.path.join(text_model, "model.h5"),
            "dataset": os.path.join(work, "tokens", "train.h5")}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--winnow", required=True)
    parser.add_argument("--count", type=int, default=100, help="inputs per target")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=60)
    parser.add_argument("--targets", default="torch-structure,torch-bytes,checkpoint,dataset")
    parser.add_argument("--workdir", default=None, help="kept (with failures) when given")
    parser.add_argument("--in-process", default=None, metavar="FUZZ_COMMANDS",
                        help="run the commands through this tests/fuzz/fuzz_commands executable "
                             "(many per process, the same run_cli as winnow) instead of one "
                             "winnow process each")
    parser.add_argument("--read-timeout", default="10",
                        help="WINNOW_READ_TIMEOUT for the runs: seconds before winnow gives up "
                             "reading a file HDF5 is stuck in")
    args = parser.parse_args()
    global READ_TIMEOUT
    READ_TIMEOUT = args.read_timeout
    work = args.workdir or tempfile.mkdtemp(prefix="winnow-fuzz-")
    os.makedirs(os.path.join(work, "failures"), exist_ok=True)
    os.makedirs(os.path.join(work, "inputs"), exist_ok=True)
    rng = random.Random(args.seed)
    fixtures = make_fixtures(args.winnow, work)
    targets = args.targets.split(",")
    failures, runs, slowest = [], 0, 0.0
    for target in targets:
        started = time.time()
        jobs = []  # (input index, mutated file, command)
        for i in range(args.count):
            mutated = os.path.join(work, "inputs", "%s-%d" % (target, i))
            if target == "torch-structure":
                mutated += ".pt"
                mutate_archive(fixtures["torch"], mutated, rng)
            else:
                source = fixtures["torch" if target == "torch-bytes" else target]
                mutated += os.path.splitext(source)[1]
                with open(source, "rb") as f:
                    data = f.read()
                with open(mutated, "wb") as f:
                    f.write(mutate_bytes(data, rng))
            jobs += [(i, mutated, command) for command in commands_for(args.winnow, target, mutated, work, fixtures)]
        if args.in_process:
            results = run_in_process(args.in_process, [c for _, _, c in jobs], args.timeout, work)
        else:
            results = [run(c, args.timeout) for _, _, c in jobs]
        for (i, mutated, command), (rc, out, seconds) in zip(jobs, results):
            runs += 1
            slowest = max(slowest, seconds)
            why = verdict(rc, out)
            if why:
                kept = os.path.join(work, "failures", os.path.basename(mutated))
                shutil.copy(mutated, kept)
                failures.append("%s #%d: %s: %s (input kept: %s)\n%s" % (
                    target, i, " ".join(command[1:2]), why, kept,
                    out.decode(errors="replace")[-2000:]))
        shutil.rmtree(os.path.join(work, "inputs"), ignore_errors=True)
        os.makedirs(os.path.join(work, "inputs"))
        print("%-16s %5d inputs in %6.1f s" % (target, args.count, time.time() - started), flush=True)
    print("fuzz: %d runs, %d failures, slowest run %.1f s, seed %d, work %s"
          % (runs, len(failures), slowest, args.seed, work))
    for failure in failures:  # one line each, then the output of the first 20
        print("FAIL " + failure.split("\n", 1)[0])
    for failure in failures[:20]:
        print("\nFAIL " + failure)
    if not args.workdir and not failures:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
