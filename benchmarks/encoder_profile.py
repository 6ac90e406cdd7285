"""Where a DeepEncoder forward spends its time: the top kernels by total time.

Runs the full-size encoder (random weights) under ``torch.profiler`` for a
few forwards after warm-up, eager or compiled, and prints the kernels (CUDA)
or ops (CPU) that take the most time, with their share of the total. Use it
to see which attention kernel a compiled graph really calls (flash, cuDNN,
memory-efficient) and what the matmuls, norms and copies cost around it.

    python benchmarks/encoder_profile.py --device cuda --attn fold-cudnn --compile --batch 64
    python benchmarks/encoder_profile.py --tiny --device cpu --mode tiny --batch 1

Writes benchmarks/results/encoder_profile_<device>_<attn>.md.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from encoder_speed import DTYPES, RESULTS, emit, set_impl, sync

from optical_memory.encoder import MODES, DeepEncoder, DeepEncoderConfig


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--dtype", choices=tuple(DTYPES), default=None, help="default bf16 on cuda, fp32 on cpu")
    p.add_argument("--mode", default="base")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--attn", default="auto")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--tiny", action="store_true")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    device = torch.device(args.device)
    dtype = DTYPES[args.dtype or ("bf16" if device.type == "cuda" else "fp32")]
    config = DeepEncoderConfig.tiny() if args.tiny else DeepEncoderConfig()
    model = DeepEncoder.from_config(config, device=device, dtype=dtype)
    set_impl(model, args.attn)
    forward = torch.compile(model) if args.compile else model
    side = MODES[args.mode].base_size
    x = torch.randn(args.batch, 3, side, side, device=device, dtype=dtype)
    with torch.inference_mode():
        for _ in range(2):
            forward(x)
        sync(device)
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        with profile(activities=acts) as prof:
            for _ in range(args.iters):
                forward(x)
            sync(device)
    on_gpu = device.type == "cuda"
    events = [e for e in prof.key_averages()
              if (e.device_type.name == "CUDA") == on_gpu and (not on_gpu or e.self_device_time_total > 0)]
    time_of = (lambda e: e.self_device_time_total) if on_gpu else (lambda e: e.self_cpu_time_total)
    total = sum(time_of(e) for e in events) or 1.0
    events.sort(key=time_of, reverse=True)
    name = torch.cuda.get_device_name(device) if on_gpu else "cpu"
    lines = [f"# DeepEncoder profile: {args.attn}{' compiled' if args.compile else ''} on {name}", "",
             f"torch {torch.__version__} · {'tiny' if args.tiny else 'full-size'} · {args.mode} "
             f"({side}²) · batch {args.batch} · {str(dtype).removeprefix('torch.')} · "
             f"{args.iters} forwards · per page {total / 1e3 / args.iters / args.batch:.3f} ms "
             f"of {'GPU kernels' if on_gpu else 'CPU ops'}", "",
             "| kernel / op | calls | ms per page | share |", "|---|---|---|---|"]
    for e in events[: args.top]:
        t = time_of(e)
        lines.append(f"| `{e.key[:90]}` | {e.count // args.iters} | "
                     f"{t / 1e3 / args.iters / args.batch:.4f} | {100 * t / total:.1f}% |")
    emit(lines, args.out or RESULTS / f"encoder_profile_{args.device}_{args.attn.replace(':', '-')}.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
