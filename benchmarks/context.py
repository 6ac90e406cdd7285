"""Context cost vs raw history, and context-build latency with pages cached.

For synthetic agent histories of 10k, 100k and 1M text tokens
(:func:`optical_memory.conversation.generate_conversation`), ingest into a
fresh SQLite store, build a context with an unlimited budget (nothing
dropped) and report:

- history text tokens (o200k_base) vs context tokens (DeepSeek-OCR base
  accounting, aged pages billed in the mode their size calls for);
- the paged part's ratio, and what it would be with every page at base;
- ingest time, first (cold) context build, and the median warm build
  (tier images cached in process).

Run: ``python benchmarks/context.py [--sizes 10000,100000,1000000]``; prints a
markdown table and writes ``benchmarks/results/context.md``.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

from optical_memory import OpticalMemory
from optical_memory.conversation import generate_conversation
from optical_memory.tokens import get_target

TARGET = "deepseek-ocr:base"


def run(tokens: int, folder: Path) -> dict:
    conv = generate_conversation(tokens=tokens, seed=tokens)
    with OpticalMemory(folder / f"bench-{tokens}.db", target=TARGET) as mem:
        t0 = time.perf_counter()
        [mem.add(conv.messages[i:i + 500], user_id="bench") for i in range(0, len(conv.messages), 500)]
        ingest = time.perf_counter() - t0
        t0 = time.perf_counter()
        ctx = mem.context(10**9, user_id="bench", system="You are a helpful assistant.")
        cold = time.perf_counter() - t0
        warm = []
        for _ in range(7):
            t0 = time.perf_counter()
            ctx = mem.context(10**9, user_id="bench", system="You are a helpful assistant.")
            warm.append(time.perf_counter() - t0)
        acc = ctx.accounting
        base_tokens = get_target(TARGET).page_tokens
        cfg = mem.render_config
        return {
            "tokens": tokens,
            "messages": len(conv.messages),
            "history": acc.history_text_tokens,
            "context": acc.context_tokens,
            "ratio": acc.ratio,
            "pages": acc.pages,
            "tiers": ", ".join(f"{k} {v.pages}" for k, v in acc.per_tier.items()),
            "page_ratio": acc.page_ratio,
            "base_ratio": acc.page_text_tokens / (acc.pages * base_tokens) if acc.pages else 0.0,
            "kept": acc.text_tokens_kept,
            "ingest_s": ingest,
            "cold_ms": cold * 1000,
            "warm_ms": statistics.median(warm) * 1000,
            "layout": f"{cfg.width}x{cfg.height}, {cfg.font_size:g} px, newline {cfg.newline_mode}",
        }


def table(rows: list[dict]) -> str:
    head = ("| history (target) | messages | history text tokens | context tokens | ratio | pages "
            "(per tier) | paged part ratio | paged part at base | ingest s | cold build ms | "
            "warm build ms |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
    body = "".join(
        f"| {r['tokens']:,} | {r['messages']:,} | {r['history']:,} | {r['context']:,} | "
        f"{r['ratio']:.1f}x | {r['pages']} ({r['tiers']}) | {r['page_ratio']:.1f}x | "
        f"{r['base_ratio']:.1f}x | {r['ingest_s']:.1f} | {r['cold_ms']:.0f} | {r['warm_ms']:.1f} |\n"
        for r in rows
    )
    return head + body


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "context.md"))
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            rows.append(run(size, Path(tmp)))
            print(f"done {size:,}: ingest {rows[-1]['ingest_s']:.1f} s", flush=True)
    md = (
        "# Context cost vs raw history\n\n"
        f"Tokenizer o200k_base; target {TARGET} (fresh pages 1024² = 273 tokens, aged pages "
        "billed in DeepSeek-OCR small 640² = 111 / tiny 512² = 73); decoder tesseract "
        "(read-back per tier: `optical-memory tiers`). Synthetic agent sessions "
        "(`optical_memory.conversation`, seed = size), default age tiers (base ≤ 200 items, "
        "small ≤ 1000, tiny older), keep_last 8, unlimited budget (nothing dropped). "
        f"Layout: {rows[0]['layout']}. Warm build = median of 7 `context()` calls with tier "
        f"images cached. Machine: {platform.machine()}, {platform.python_version()}, "
        "2 cores, SQLite store on local disk.\n\n" + table(rows)
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(md)
    print(md)


if __name__ == "__main__":
    main()
