"""What fresh memory costs a CPU DeepEncoder forward, and what the two fixes buy.

On CPU, glibc gives every tensor above its mmap threshold fresh pages from the
kernel, so each large activation page-faults on first touch. This measures, in
one process with the forwards interleaved (a shared machine drifts):

- ``fresh masks``: every relative-position mask a new tensor
  (``SamEncoder.reuse_mask_buffer = False``);
- ``reused mask buffer``: the default, one buffer for all masks;

and the same two in a child process that called ``tune_cpu_allocator()``
first (glibc keeps large blocks for reuse). Per row: best and median seconds
per forward, minor page faults and kernel (system) CPU seconds per forward.

    python benchmarks/encoder_cpu_memory.py --mode base --rounds 4

Writes benchmarks/results/encoder_cpu_memory.md.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from encoder_speed import RESULTS, emit

from optical_memory.encoder import MODES, DeepEncoder, DeepEncoderConfig, tune_cpu_allocator

VARIANTS = {"fresh masks": False, "reused mask buffer": True}


def measure(args: argparse.Namespace) -> dict[str, list[tuple[float, int, float]]]:
    """{variant: [(seconds, minor faults, system seconds) per forward]}, interleaved."""
    config = DeepEncoderConfig.tiny() if args.tiny else DeepEncoderConfig()
    model = DeepEncoder.from_config(config, attn_impl="sdpa")
    side = MODES[args.mode].base_size
    x = torch.randn(args.batch, 3, side, side)
    runs: dict[str, list[tuple[float, int, float]]] = {v: [] for v in VARIANTS}
    with torch.inference_mode():
        model(x)  # warm-up
        for _ in range(args.rounds):
            for variant, reuse in VARIANTS.items():
                model.sam_model.reuse_mask_buffer = reuse
                r0 = resource.getrusage(resource.RUSAGE_SELF)
                t0 = time.perf_counter()
                model(x)
                seconds = time.perf_counter() - t0
                r1 = resource.getrusage(resource.RUSAGE_SELF)
                runs[variant].append((seconds, r1.ru_minflt - r0.ru_minflt, r1.ru_stime - r0.ru_stime))
    return runs


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", default="base")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--tiny", action="store_true", help="tiny config (a smoke run)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    if args.child:  # tuned allocator: a separate process, the setting is process-wide
        tuned = tune_cpu_allocator()
        print(json.dumps({"tuned": tuned, "runs": measure(args)}))
        return 0

    rows = [("default", v, r) for v, r in measure(args).items()]
    cmd = [sys.executable, __file__, "--child", "--mode", args.mode, "--batch", str(args.batch),
           "--rounds", str(args.rounds)] + (["--tiny"] if args.tiny else [])
    child = subprocess.run(cmd, capture_output=True, text=True, check=True)
    result = json.loads(child.stdout.strip().splitlines()[-1])
    allocator = "tune_cpu_allocator()" if result["tuned"] else "tune_cpu_allocator() not applied"
    rows += [(allocator, v, r) for v, r in result["runs"].items()]

    lines = [
        f"# DeepEncoder CPU forward: fresh memory vs reuse ({args.mode}, batch {args.batch})", "",
        f"torch {torch.__version__} · {'tiny' if args.tiny else 'full-size'} encoder, fp32, sdpa · "
        f"threads {torch.get_num_threads()} of {os.cpu_count()} cores · {args.rounds} interleaved "
        "forwards per row after 1 warm-up; page faults and system time from getrusage", "",
        "| allocator | masks | best s | median s | minor faults | system s |",
        "|---|---|---|---|---|---|",
    ]
    for allocator_name, variant, runs in rows:
        secs = [r[0] for r in runs]
        lines.append(
            f"| {allocator_name} | {variant} | {min(secs):.3f} | {statistics.median(secs):.3f} | "
            f"{statistics.median(r[1] for r in runs):.0f} | {statistics.median(r[2] for r in runs):.2f} |"
        )
    emit(lines, args.out or RESULTS / "encoder_cpu_memory.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
