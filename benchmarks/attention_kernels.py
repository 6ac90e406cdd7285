"""SDPA kernels on the DeepEncoder's folded attention shapes (CUDA).

The fold (optical_memory.encoder.common.folded_rel_pos_attention) turns SAM's
relative-position term into extra q/k channels: a global block at 1024 px is
attention over 4096 keys with q/k 192 channels wide (v zero-padded to 192 for
flash, or left at 64); a window block is 196 keys at 96 channels. This times
each SDPA backend on those shapes (batch ``--batch`` pages) and prints ms per
call and TFLOP/s counted on the useful work (q·k at the folded width, a·v at 64).

    python benchmarks/attention_kernels.py --batch 64 --out benchmarks/results/attention_kernels.md

A second table runs the folded global shape (v 64) under ``torch.compile``
three ways (plain SDPA, SDPA inside ``sdpa_kernel`` with cuDNN first, the
cuDNN op called directly) and names the kernel that took the most GPU time,
to see whether a compiled graph keeps the cuDNN choice.
"""
from __future__ import annotations

import argparse
import functools
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

BACKENDS = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION,
            "efficient": SDPBackend.EFFICIENT_ATTENTION}


def bench(fn, iters: int) -> float:
    fn()
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


def top_kernel(fn) -> str:
    """Name of the CUDA kernel that takes the most time in one call of ``fn``."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    events = [e for e in prof.key_averages() if e.self_device_time_total > 0]
    if not events:
        return "?"
    return max(events, key=lambda e: e.self_device_time_total).key[:80]


def sdpa_default(q, k, v):
    return F.scaled_dot_product_attention(q, k, v, scale=1.0)


def sdpa_cudnn_first(q, k, v):
    backends = [SDPBackend.CUDNN_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
    with sdpa_kernel(backends, set_priority=True):
        return F.scaled_dot_product_attention(q, k, v, scale=1.0)


def cudnn_op(q, k, v):
    return torch.ops.aten._scaled_dot_product_cudnn_attention(q, k, v, None, False, scale=1.0)[0]


def compiled_rows(batch: int, iters: int) -> list[str]:
    """Eager vs compiled time and top kernel of each way to ask for cuDNN."""
    import torch._inductor.config as inductor_config

    inductor_config.fx_graph_cache = False  # the cache key ignores the SDPA backend (pytorch#185449)
    dev, dt = torch.device("cuda"), torch.bfloat16
    q = torch.randn(batch, 12, 4096, 192, device=dev, dtype=dt)
    k = torch.randn(batch, 12, 4096, 192, device=dev, dtype=dt)
    v = torch.randn(batch, 12, 4096, 64, device=dev, dtype=dt)
    rows = ["", "## The folded global shape (v 64) under torch.compile", "",
            "| way | run | ms | top kernel |", "|---|---|---|---|"]
    for fn in (sdpa_default, sdpa_cudnn_first, cudnn_op):
        for run, f in (("eager", fn), ("compiled", torch.compile(fn, fullgraph=True))):
            try:
                call = functools.partial(f, q, k, v)
                s = bench(call, iters)
                row = f"| `{fn.__name__}` | {run} | {s * 1e3:.2f} | `{top_kernel(call)}` |"
            except Exception as exc:  # a way this torch/GPU cannot run: say so, go on
                row = f"| `{fn.__name__}` | {run} | failed: {str(exc).splitlines()[0][:70]} | |"
            rows.append(row)
            print(row, flush=True)
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "attention_kernels.md")
    args = p.parse_args()
    dev, dt = torch.device("cuda"), torch.bfloat16
    shapes = [  # name, batch·windows, heads, keys, qk width, v width
        ("global 64×64, v padded", args.batch, 12, 4096, 192, 192),
        ("global 64×64, v 64", args.batch, 12, 4096, 192, 64),
        ("global, no rel-pos (hd 64)", args.batch, 12, 4096, 64, 64),
        ("window 14×14, v padded", args.batch * 25, 12, 196, 96, 96),
    ]
    lines = [f"# SDPA kernels on folded attention shapes ({torch.cuda.get_device_name(dev)})", "",
             f"torch {torch.__version__} · bf16 · batch {args.batch} pages · best of {args.iters}", "",
             "| shape | backend | ms | TFLOP/s (useful) |", "|---|---|---|---|"]
    for name, b, h, n, dqk, dv in shapes:
        q = torch.randn(b, h, n, dqk, device=dev, dtype=dt)
        k = torch.randn(b, h, n, dqk, device=dev, dtype=dt)
        v = torch.randn(b, h, n, dv, device=dev, dtype=dt)
        useful = 2 * b * h * n * n * (dqk + 64)
        for bname, backend in BACKENDS.items():
            try:
                with sdpa_kernel([backend]):
                    s = bench(
                        functools.partial(F.scaled_dot_product_attention, q, k, v, scale=1.0),
                        args.iters,
                    )
                row = f"| {name} | {bname} | {s * 1e3:.2f} | {useful / s / 1e12:.0f} |"
            except RuntimeError as exc:
                row = f"| {name} | {bname} | unsupported ({str(exc).splitlines()[0][:60]}) | |"
            lines.append(row)
            print(row, flush=True)
        del q, k, v
        torch.cuda.empty_cache()
    lines += compiled_rows(args.batch, args.iters)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
