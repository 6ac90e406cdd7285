"""Needle in a haystack through the memory: the 15×15 grid and the forgetting curve.

Three stages, each resumable; rerunning skips what is done. The published
cells are one gzipped JSONL, ``benchmarks/niah/cells.jsonl.gz`` (one JSON
object per cell, sorted, reproducible bytes). A run unpacks the cells of each
stage from it into the live folder ``benchmarks/niah/cells/`` (one JSON per
cell, not in git), resumes there, and packs the folder back into the file
after every stage; ``--report`` reads the packed file only.

1. **grid**: gkamradt's 15×15 linear grid, 15 context lengths 1k…64k text
   tokens (o200k_base) × 15 depths 0…100 %, ``pydoc_data.topics`` haystack,
   RULER single needle with a 7-digit number, fresh tier (``base``, 1024²),
   recall = needle value read back by tesseract from the page holding it.
2. **tiers**: the same cells at every older tier (``small`` 640²,
   ``tiny`` 512²) on every third length (5 lengths × 15 depths).
3. **chat**: the forgetting curve on the synthetic agent conversation (the
   memory's chat-turn compaction path), 3 lengths × 5 depths × every tier.

Writes ``benchmarks/results/niah.md`` and PNGs in ``benchmarks/niah/``.
Run: ``python benchmarks/niah.py [--workers 2] [--quick]`` (``--quick`` keeps
its cells in ``benchmarks/niah/cells/quick/`` and never touches the packed file).
"""
from __future__ import annotations

import argparse
import json
import logging
import platform
import subprocess
import time
from pathlib import Path

from optical_memory.niah import (
    NiahConfig,
    RunSummary,
    forgetting_table,
    grid_table,
    linspace,
    load_results,
    run_grid,
)
from optical_memory.niah.packed import cells_for, pack_cells, read_packed, unpack_cells
from optical_memory.niah.plots import forgetting_curve, heatmap, markdown_grid, markdown_tiers

HERE = Path(__file__).resolve().parent
PACKED = HERE / "niah" / "cells.jsonl.gz"  # the published cells (in git)
CELLS = HERE / "niah" / "cells"  # live run folders, one JSON per cell (not in git)
PNG = HERE / "niah"
RESULTS = HERE / "results" / "niah.md"


def _tesseract_version() -> str:
    try:
        out = subprocess.run(["tesseract", "--version"], capture_output=True, text=True, check=False)
        return (out.stdout or out.stderr).splitlines()[0]
    except (OSError, IndexError):
        return "tesseract (version unknown)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="5×5 grid up to 16k (smoke run)")
    ap.add_argument("--report", action="store_true",
                    help="only write the report from the cells already on disk (no runs)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    n, top = (5, 16_000) if args.quick else (15, 64_000)
    lengths = tuple(int(round(x)) for x in linspace(1000, top, n))
    depths = tuple(round(d, 4) for d in linspace(0, 100, n))
    sub_lengths = lengths[::3] if lengths[-1] in lengths[::3] else (*lengths[::3], lengths[-1])
    stages = []
    live = CELLS / "quick" if args.quick else CELLS
    published = [] if args.quick or not PACKED.exists() else read_packed(PACKED)
    # --report reads the published cells (a --quick report: the quick run's live cells)
    on_record = published if not args.quick else [
        c for sub in ("pydoc", "chat") if (live / sub).is_dir() for c in load_results(live / sub)]

    def stage(name: str, cfg: NiahConfig, folder: Path):
        if args.report:
            cells = cells_for(cfg, on_record)
            total = len(cfg.lengths) * len(cfg.depths) * len(cfg.tiers or ())
            stages.append((name, 0, len(cells), float("nan")))
            print(f"{name}: {len(cells)}/{total} cells on record")
            return RunSummary(cells, 0, len(cells), 0.0)
        t0 = time.perf_counter()
        if published:  # resume from the published cells (a live file already there wins)
            unpack_cells(published, folder, cfg)
        s = run_grid(cfg, folder, workers=args.workers, resume=True,
                     progress=lambda d, t, c: print(f"\r{name}: {d}/{t} cells", end="", flush=True))
        print()
        if not args.quick:
            pack_cells([live / "pydoc", live / "chat"], PACKED)
        stages.append((name, s.ran, s.skipped, time.perf_counter() - t0))
        return s

    # the generic-OCR curve: tesseract reads every cell (benchmarks/niah_native.py:
    # the same needles read by the package's own reader, the memory's default)
    grid = stage("grid", NiahConfig(lengths=lengths, depths=depths, tiers=("base",),
                                    decoder="tesseract"), live / "pydoc")
    tiers = stage("tiers", NiahConfig(lengths=sub_lengths, depths=depths, decoder="tesseract"),
                  live / "pydoc")
    chat_lengths = (lengths[0], lengths[len(lengths) // 2], lengths[-1])
    chat = stage("chat", NiahConfig(lengths=chat_lengths, depths=tuple(linspace(0, 100, 5)),
                                    haystack="chat", decoder="tesseract"), live / "chat")

    if not grid.results:
        raise SystemExit("no grid cells yet: run without --report first")
    table = grid_table(grid.results, tier="base")
    miss = [c for c in grid.results if c["score"] < 1]
    fonts = sorted({json.dumps(c.get("layout", {"font_px": c.get("font_px")}), sort_keys=True)
                    for c in grid.results + tiers.results + chat.results})
    heatmap(grid.results, PNG / "heatmap_pydoc_base.png", tier="base",
            title=f"Read-back recall, fresh tier (base 1024², tesseract): {100 * table.mean:.1f}%")
    heatmap(grid.results, PNG / "heatmap_pydoc_base_retrieved.png", tier="base", metric="retrieved",
            title="retrieve(key): top hit on the needle's page")
    for tier in ("small", "tiny"):
        cells = [c for c in tiers.results if c["tier"] == tier]
        if cells:
            heatmap(cells, PNG / f"heatmap_pydoc_{tier}.png", tier=tier,
                    title=f"Read-back recall at tier {tier} ({cells[0]['tier_size'][0]}²): "
                          f"{100 * grid_table(cells, tier=tier).mean:.1f}%")
    both = [dict(c, haystack="pydoc") for c in tiers.results] + [dict(c, haystack="chat") for c in chat.results]
    if both:
        forgetting_curve(both, PNG / "forgetting_curve.png",
                         title="Forgetting curve: needle recall vs age tier (tesseract read-back)")
    tier_rows = forgetting_table(tiers.results) if tiers.results else []
    chat_rows = forgetting_table(chat.results) if chat.results else []
    sample = grid.results[0] if grid.results else {}

    lines = [
        "# Needle in a haystack through the memory",
        "",
        f"Generated by `python benchmarks/niah.py` on {platform.machine()}, "
        f"{platform.python_version()}, {args.workers} worker processes; decoder "
        f"`{_tesseract_version()}` (psm 6, pages upscaled to 2048 with Lanczos, curly quotes blacklisted: the decoder's defaults); tokenizer "
        f"`{sample.get('tokenizer')}`; target `{sample.get('target')}`; page font "
        f"{', '.join(str(f) for f in fonts)} px (the memory's default layout).",
        "",
        "Conventions: gkamradt/LLMTest_NeedleInAHaystack (linear grid, needle moved back to "
        "a sentence end, one JSON object per cell, published in `benchmarks/niah/cells.jsonl.gz`), "
        "NVIDIA RULER needle "
        "`One of the special magic numbers for {key} is: {value}.` (7-digit value) scored with "
        "`string_match_all` on the read-back of the page(s) holding the needle. Each "
        "haystack is stored in a fresh `OpticalMemory(':memory:', keep_last=0)`; tiers are "
        "read with `decode(page, tier=...)` (the Lanczos rendition aging stores).",
        "",
        "## 15×15 grid, fresh tier (`base`, 1024² pages), `pydoc_data.topics` haystack" if not args.quick
        else "## Quick grid, fresh tier",
        "",
        *([f"**PARTIAL**: {len(grid.results)} of {len(lengths) * len(depths)} grid cells on disk; "
           "rerun `python benchmarks/niah.py` to finish (it resumes).", ""]
          if len(grid.results) < len(lengths) * len(depths) else []),
        f"**Read-back recall: {100 * table.mean:.1f}%** over {table.cells} cells "
        f"({len(miss)} cells below 1); retrieval (`retrieve(key)` top hit on the needle's "
        f"page): {100 * sum(c['retrieved'] for c in grid.results) / max(1, len(grid.results)):.1f}%. "
        f"Haystack ratio at 64k: {max(grid.results, key=lambda c: c['context_length'])['ratio']:.1f}× "
        "(text tokens / vision tokens).",
        "",
        "![heatmap](../niah/heatmap_pydoc_base.png)",
        "",
        "Recall % per cell (rows: depth %, columns: context length in o200k tokens):",
        "",
        markdown_grid(table),
        "",
    ]
    if miss:
        lines += ["Misses (value expected → what tesseract read near the needle):", ""]
        for c in sorted(miss, key=lambda c: (c["context_length"], c["depth_percent"])):
            lines.append(f"- len {c['context_length']}, depth {c['depth_percent']:.1f}: "
                         f"`{c['references'][0]}` → “{c['model_response'][40:-40] or c['model_response']}”")
        lines.append("")
    lines += [
        "## Forgetting curve: recall vs age tier",
        "",
        f"`pydoc` haystack, lengths {', '.join(str(x) for x in sub_lengths)} × 15 depths, "
        "every tier (haystack ratio = all text tokens / all pages' vision tokens at the tier; "
        "needle-page ratio = the needle page's text tokens / its vision tokens; page precision "
        "= 1 − edit distance / length of the whole needle page's read-back):",
        "",
        markdown_tiers(tier_rows) if tier_rows else "(not run yet)",
        "",
        f"Synthetic agent conversation (`chat`, stored as turns and paged by `compact`), "
        f"lengths {', '.join(str(x) for x in chat_lengths)} × 5 depths:",
        "",
        markdown_tiers(chat_rows) if chat_rows else "(not run yet)",
        "",
        "![forgetting curve](../niah/forgetting_curve.png)",
        "",
        "Older tiers: ![small](../niah/heatmap_pydoc_small.png) ![tiny](../niah/heatmap_pydoc_tiny.png)",
        "",
        "## Runtime",
        "",
        "| stage | cells run | cells resumed | wall s |",
        "|---|---:|---:|---:|",
        *(f"| {name} | {ran} | {skipped} | {secs:.0f} |" for name, ran, skipped, secs in stages),
        "",
        "Per cell: the haystack is rendered once per (length, depth) and shared by its tiers; "
        "only the page(s) holding the needle are decoded "
        f"(mean decode {sum(c.get('decode_seconds', 0) for c in grid.results) / max(1, len(grid.results)):.1f} s, "
        f"mean build {sum(c.get('build_seconds', 0) for c in grid.results) / max(1, len(grid.results)):.1f} s "
        "on a shared 2-core machine).",
        "",
    ]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
