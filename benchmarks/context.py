"""Context cost vs raw history, and context-build latency with pages cached.

For synthetic agent histories of 10k, 100k and 1M text tokens
(:func:`optical_memory.conversation.generate_conversation`), ingest into a
fresh SQLite store, build a context with an unlimited budget (nothing
dropped) and report:

- history text tokens (o200k_base) vs context tokens (DeepSeek-OCR base
  accounting, aged pages billed in the mode their size calls for);
- the paged part's ratio, and what it would be with every page at base;
- ingest time, first (cold) context build, and the median warm build
  (tier images cached in process);
- the read-back of each tier the context holds (the shipped calibration for
  the memory's decoder: held-out pages, ``benchmarks/tier_methods.py``) and
  the part of the history that stays legible (read-back ≥ 0.95) vs faded,

once per age mode and decoder: ``legible`` with tesseract (pages shrink only
while tesseract still reads them ≥ 0.95), ``fade`` with tesseract (the
forgetting curve regardless of read-back), ``legible`` with the native reader.

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
from optical_memory.age import AgePolicy
from optical_memory.conversation import generate_conversation
from optical_memory.tokens import get_target

TARGET = "deepseek-ocr:base"
MODES = (("tesseract", "legible"), ("tesseract", "fade"), ("native", "legible"))


def run(tokens: int, folder: Path, decoder: str = "tesseract", mode: str = "legible") -> dict:
    conv = generate_conversation(tokens=tokens, seed=tokens)
    with OpticalMemory(folder / f"bench-{tokens}-{decoder}-{mode}.db", target=TARGET,
                       decoder=decoder, aging=AgePolicy(mode=mode)) as mem:
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
        def rb(row) -> str:
            return "?" if row.readback is None else f"{row.readback:.3f}"

        return {
            "decoder": decoder,
            "mode": mode,
            "readback": ", ".join(f"{k} {rb(v)}" for k, v in acc.per_tier.items()),
            "legible": acc.legible.text_tokens,
            "faded": acc.faded.text_tokens,
            "legible_ratio": (acc.legible.text_tokens / acc.legible.vision_tokens
                              if acc.legible.vision_tokens else 0.0),
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
    head = ("| decoder, age mode | history (target) | messages | history text tokens | "
            "context tokens | ratio | pages (per tier) | read-back per tier (calibrated) | "
            "paged text tokens legible / faded | legible part ratio | paged part ratio | "
            "paged part at base | ingest s | cold build ms | warm build ms |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
    body = "".join(
        f"| {r['decoder']}, {r['mode']} | {r['tokens']:,} | {r['messages']:,} | "
        f"{r['history']:,} | {r['context']:,} | "
        f"{r['ratio']:.1f}x | {r['pages']} ({r['tiers']}) | {r['readback']} | "
        f"{r['legible']:,} / {r['faded']:,} | {r['legible_ratio']:.1f}x | {r['page_ratio']:.1f}x | "
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
        for decoder, mode in MODES:
            for size in (int(s) for s in args.sizes.split(",")):
                rows.append(run(size, Path(tmp), decoder, mode))
                print(f"done {decoder} {mode} {size:,}: ingest {rows[-1]['ingest_s']:.1f} s",
                      flush=True)
    md = (
        "# Context cost vs raw history\n\n"
        f"Tokenizer o200k_base; target {TARGET} (fresh pages 1024² = 273 tokens, aged pages "
        "billed in DeepSeek-OCR small 640² = 111 / tiny 512² = 73). Read-back per tier: the "
        "shipped calibration for the row's decoder (mean precision of held-out pages at that "
        "tier, `benchmarks/tier_methods.py`); legible = pages reading back ≥ 0.95, the "
        "age policy's floor. Synthetic agent sessions "
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
