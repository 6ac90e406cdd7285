"""DeepEncoder attention paths against the fp32 eager reference.

Full-size encoder with random weights (seeded), a batch of random pages at
the mode's resolution; each ``--attn`` path runs in ``--dtype`` and its
projected tokens are compared with the eager fp32 forward of the same
weights: max |diff|, and the minimum cosine similarity over tokens.

    python benchmarks/encoder_agreement.py --device cuda --dtype bf16 --attn sdpa,fold,fold-cudnn
    python benchmarks/encoder_agreement.py --tiny --device cpu --dtype fp32

Writes benchmarks/results/encoder_agreement_<device>.md.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from encoder_speed import DTYPES, RESULTS, emit, set_impl

from optical_memory.encoder import MODES, DeepEncoder, DeepEncoderConfig


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--dtype", choices=tuple(DTYPES), default="fp32")
    p.add_argument("--mode", default="base")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--attn", default="sdpa,fold,fold-cudnn")
    p.add_argument("--tiny", action="store_true", help="tiny test config instead of full size")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    config = DeepEncoderConfig.tiny() if args.tiny else DeepEncoderConfig()
    side = MODES[args.mode].base_size
    gen = torch.Generator().manual_seed(0)
    x = (torch.rand(args.batch, 3, side, side, generator=gen) * 2 - 1).to(device)

    model = DeepEncoder.from_config(config, device=device, dtype=torch.float32, attn_impl="eager")
    with torch.inference_mode():
        ref = model(x).float()
    model = model.to(dtype)
    lines = [
        f"# DeepEncoder attention paths vs eager fp32 ({args.device}, "
        f"{torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'})",
        "",
        f"torch {torch.__version__} · {'tiny' if args.tiny else 'full-size'} encoder, random weights · "
        f"mode {args.mode} ({side}²) · batch {args.batch} · paths run in {args.dtype}",
        "",
        "| attn | max abs diff | mean abs diff | min token cosine | ref max abs |",
        "|---|---|---|---|---|",
    ]
    for impl in args.attn.split(","):
        set_impl(model, impl)
        with torch.inference_mode():
            got = model(x.to(dtype)).float()
        diff = (got - ref).abs()
        cos = F.cosine_similarity(got.flatten(0, 1), ref.flatten(0, 1), dim=-1).min().item()
        lines.append(f"| {impl} | {diff.max().item():.4g} | {diff.mean().item():.4g} | "
                     f"{cos:.6f} | {ref.abs().max().item():.4g} |")
        print(lines[-1], file=sys.stderr, flush=True)
    emit(lines, args.out or RESULTS / f"encoder_agreement_{args.device}.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
