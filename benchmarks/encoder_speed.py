"""DeepEncoder speed: seconds per page per mode, achieved GFLOP/s against this
machine's measured matmul throughput, and pages/s on a GPU.

Random weights (the speed does not depend on them). FLOPs per forward are
counted with ``torch.utils.flop_counter.FlopCounterMode`` on the meta device,
eager attention (so the attention matmuls are counted as bmm); element-wise
work (norms, GELU, the rel-pos mask) is not counted.

    python benchmarks/encoder_speed.py --device cpu --modes tiny,small,base --iters 1
    python benchmarks/encoder_speed.py --device cuda --dtype bf16 --modes base --batch 8,16,32,64
    python benchmarks/encoder_speed.py --quick

Prints a markdown table and writes it to benchmarks/results/encoder_speed_<device>.md
(``_tuned`` added with ``--tune-malloc``).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from optical_memory.encoder import (
    MODES,
    DeepEncoder,
    DeepEncoderConfig,
    build_deep_encoder,
    flash_attn_available,
    token_layout,
    tune_cpu_allocator,
)

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
RESULTS = Path(__file__).resolve().parent / "results"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int, reps: int) -> float:
    """Measured dense matmul throughput in GFLOP/s (best of ``reps``)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    sync(device)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def forward_flops(config: DeepEncoderConfig, side: int) -> float:
    """FLOPs of one forward of one [1, 3, side, side] view (meta device, no compute)."""
    with torch.device("meta"):
        model = build_deep_encoder(config, attn_impl="eager")
        x = torch.empty(1, 3, side, side)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    return float(counter.get_total_flops())


def emit(lines: list[str], out: Path) -> str:
    """Print a markdown table and write it to ``out`` (folders created)."""
    table = "\n".join(lines) + "\n"
    print(table)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table)
    return table


def set_impl(model: DeepEncoder, impl: str) -> None:
    """``impl`` for every attention module, or ``"W:G"``: SAM's windowed blocks
    W, its global blocks and CLIP G (e.g. ``sdpa:fold``)."""
    if ":" not in impl:
        model.set_attn_impl(impl)
        return
    window, glob = impl.split(":")
    model.set_attn_impl(glob)
    for block in model.sam_model.blocks:
        if block.window_size:
            block.attn.attn_impl = window


def time_forward(model, x: torch.Tensor, iters: int, warmup: int) -> float:
    """Best seconds per forward over ``iters`` runs after ``warmup`` runs."""
    with torch.inference_mode():
        for _ in range(warmup):
            model(x)
        sync(x.device)
        best = float("inf")
        for _ in range(iters):
            t0 = time.perf_counter()
            model(x)
            sync(x.device)
            best = min(best, time.perf_counter() - t0)
    return best


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--dtype", choices=tuple(DTYPES), default=None,
                   help="default: fp32 on cpu, bf16 on cuda")
    p.add_argument("--modes", default=None,
                   help="comma list of view modes (tiny,small,base,large); default cpu: tiny,small,base; cuda: base")
    p.add_argument("--batch", default=None, help="comma list of batch sizes; default cpu: 1, cuda: 8,16,32,64")
    p.add_argument("--iters", type=int, default=None, help="timed runs (best kept); default cpu 1, cuda 10")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--attn", default=None,
                   help="comma list of attn impls (sdpa,fold,fold-cudnn,auto,eager; W:G = SAM window blocks W, global blocks G and CLIP); default: sdpa, plus fold on cuda (auto = fold for SAM + flash-attn for CLIP when installed)")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--full", dest="tiny", action="store_false", help="full-size model (default)")
    size.add_argument("--tiny", dest="tiny", action="store_true", help="tiny test config")
    p.set_defaults(tiny=False)
    p.add_argument("--compile", action="store_true", help="torch.compile the forward")
    p.add_argument("--quick", action="store_true", help="fast sanity run: tiny config, tiny mode, 1 iter")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--tune-malloc", action="store_true",
                   help="call tune_cpu_allocator() first (glibc keeps large blocks for reuse)")
    p.add_argument("--out", type=Path, default=None, help="markdown output path")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    on_cuda = args.device == "cuda"
    if on_cuda and not torch.cuda.is_available():
        sys.exit("--device cuda but torch.cuda.is_available() is False")
    if args.threads:
        torch.set_num_threads(args.threads)
    malloc = "default"
    if args.tune_malloc:
        malloc = "tune_cpu_allocator()" if tune_cpu_allocator() else "tune_cpu_allocator() not applied"
    device = torch.device(args.device)
    dtype = DTYPES[args.dtype or ("bf16" if on_cuda else "fp32")]
    if args.quick:
        args.tiny, args.modes, args.iters, args.warmup = True, args.modes or "tiny", 1, 1
        args.batch = args.batch or "1"
    modes = (args.modes or ("base" if on_cuda else "tiny,small,base")).split(",")
    for m in modes:
        if m not in MODES or MODES[m].crop:
            sys.exit(f"--modes takes view modes ({', '.join(k for k, v in MODES.items() if not v.crop)}), got {m!r}")
    batches = [int(b) for b in (args.batch or ("8,16,32,64" if on_cuda else "1")).split(",")]
    iters = args.iters or (10 if on_cuda else 1)
    impls = (args.attn or (("sdpa,fold,auto" if flash_attn_available() else "sdpa,fold")
                           if on_cuda else "sdpa")).split(",")
    config = DeepEncoderConfig.tiny() if args.tiny else DeepEncoderConfig()

    peak_dtype = dtype  # the peak of the dtype the encoder runs in
    peak = matmul_peak(device, peak_dtype, 8192 if on_cuda else 2048, 10)
    model = DeepEncoder.from_config(config, device=device, dtype=dtype)
    n_params = sum(p.numel() for p in model.parameters())
    forward = torch.compile(model) if args.compile else model

    name = torch.cuda.get_device_name(device) if on_cuda else (platform.processor() or platform.machine())
    suffix = ("_quick" if args.quick else "") + ("_tuned" if args.tune_malloc else "")
    out = args.out or RESULTS / f"encoder_speed_{args.device}{suffix}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    rows: list[tuple] = []

    def write_table() -> str:
        """The table so far, written after every row (a long GPU run cut short keeps its rows)."""
        lines = [
            f"# DeepEncoder speed on {args.device} ({name})",
            "",
            f"{_dt.datetime.now().isoformat(timespec='seconds')} · torch {torch.__version__} · "
            f"{'tiny' if args.tiny else 'full-size'} encoder ({n_params / 1e6:.1f} M params, random weights) · "
            f"{str(dtype).removeprefix('torch.')} · threads {torch.get_num_threads()} of {os.cpu_count()} cores · "
            f"flash-attn {'importable' if flash_attn_available() else 'absent'} · malloc: {malloc}"
            f"{' · torch.compile' if args.compile else ''}",
            "",
            f"Measured {str(peak_dtype).removeprefix('torch.')} matmul peak: **{peak:.0f} GFLOP/s**. "
            "FLOPs: matmuls, convs and attention (FlopCounterMode); best of "
            f"{iters} timed runs after {args.warmup} warm-up.",
            "",
            "| mode | LM tokens | attn | batch | s/page | pages/s | GFLOP/page | GFLOP/s | % of peak |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for mode, impl, batch, spp, flops in rows:
            tokens = token_layout(MODES[mode].base_size, MODES[mode].base_size, mode).num_tokens
            if spp is None:
                lines.append(f"| {mode} | {tokens} | {impl} | {batch} | OOM | | {flops / 1e9:.0f} | | |")
                continue
            achieved = flops / spp / 1e9
            lines.append(
                f"| {mode} | {tokens} | {impl} | {batch} | {spp:.4f} | {1 / spp:.1f} | "
                f"{flops / 1e9:.0f} | {achieved:.0f} | {100 * achieved / peak:.0f}% |"
            )
        table = "\n".join(lines) + "\n"
        out.write_text(table)
        return table

    for mode in modes:
        side = MODES[mode].base_size
        flops = forward_flops(config, side)
        for impl in impls:
            set_impl(model, impl)
            for batch in batches:
                x = torch.randn(batch, 3, side, side, device=device, dtype=dtype)
                try:
                    seconds = time_forward(forward, x, iters, args.warmup)
                except torch.cuda.OutOfMemoryError:
                    rows.append((mode, impl, batch, None, flops))
                    del x
                    torch.cuda.empty_cache()
                    write_table()
                    continue
                rows.append((mode, impl, batch, seconds / batch, flops))
                write_table()
                print(f"{mode} {impl} batch {batch}: {seconds / batch:.4f} s/page", file=sys.stderr)
        # re-measure the peak between modes: a shared machine's speed drifts
        peak = max(peak, matmul_peak(device, peak_dtype, 8192 if on_cuda else 2048, 5))
    table = write_table()
    print(table)
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
