"""Fidelity: text tokens per page vs read-back precision, the Fox table's shape.

    .venv/bin/python benchmarks/fidelity.py [--quick] [--workers 2] [--write-calibration]

Pages are 1024² masters (bundled DejaVu Sans unless a row names DejaVu Sans
Condensed, margin 4, system fallback Noto Sans CJK SC for Chinese). Each is
read back at 1024 and after resampling (Lanczos) to 640 and 512; the decoder
upscales it again before reading. Ratio = o200k_base tokens of the source
text a page holds / DeepSeek-OCR vision tokens of the mode of its resolution,
with the newline and separator tokens (1024 → base 273, 640 → small 111,
512 → tiny 73; every page is also compared with all four modes).
Precision = 1 − edit distance / max length, whitespace-normalised, against
the page's visible text; in marker mode the newline marker must be read
("strict"; "lenient" maps it to a space on both sides).

Corpora: English = ``pydoc_data.topics``, the "report" split (odd-numbered
topics; ``optical_memory.fit`` chooses layouts on the even-numbered ones);
English prose = CPython's LICENSE.txt (report only); Chinese =
``optical_memory/data/zh_prose.txt``. rapidocr reads a subset only (15–40 s
a page). Writes ``benchmarks/results/fidelity.md``. ``--write-calibration``
first regenerates ``optical_memory/data/calibration.json``
(``optical_memory.fit.calibrate`` on the "calibrate" split), then reports the
layouts it recommends on the held-out pages.
"""
from __future__ import annotations

import argparse
import sys
import sysconfig
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from optical_memory.decode import available_decoders, decode_many
from optical_memory.fit import (
    calibrate,
    decoder_options,
    first_page,
    font_path,
    merge,
    page_precision,
    recommended_entry,
    resample,
    sample_texts,
)
from optical_memory.render import RenderConfig
from optical_memory.tokens import get_target

MODE_OF_SIDE = {1024: "base", 640: "small", 512: "tiny"}
RESULTS = Path(__file__).resolve().parent / "results" / "fidelity.md"
CALIBRATION = Path(__file__).resolve().parents[1] / "optical_memory" / "data" / "calibration.json"
PLAIN = dict(font="sans", line_spacing=1.2)
#: The dense prose layout: DejaVu Sans, lines 1.1 em, vertical-only hinting
#: (fractional advances). Chosen on the LICENSE passages of the first sweep
#: (6 pages at 11 px: 0.992 vs 0.990 with normal hinting, 12.2× vs 11.9×).
DENSE = dict(font="sans", line_spacing=1.1, hinting="slight")


def prose_texts(samples: int, min_chars: int = 40_000) -> list[str]:
    """Passages of CPython's LICENSE.txt starting at evenly spaced paragraphs."""
    path = Path(sysconfig.get_paths()["stdlib"]) / "LICENSE.txt"
    if not path.is_file():
        return []
    paras = [p.strip() for p in path.read_text("utf-8").split("\n\n") if p.strip()]
    out = []
    for k in range(samples):
        start = (k * len(paras)) // samples
        pieces: list[str] = []
        size, j = 0, 0
        while size < min_chars:
            pieces.append(paras[(start + j) % len(paras)])
            size += len(pieces[-1]) + 2
            j += 1
        out.append("\n\n".join(pieces))
    return out


def fit_rows(corpus: str, pages: int) -> list[dict]:
    """Rows for the layouts ``optical_memory.fit`` recommends at 0.98–0.99."""
    rows: dict[tuple, dict] = {}
    for threshold in (0.98, 0.985, 0.99):
        e = recommended_entry("deepseek-ocr:base", threshold=threshold)
        key = (e.newline_mode, e.font, e.line_spacing)
        row = rows.setdefault(key, dict(
            corpus=corpus, script="latin", mode=e.newline_mode, font=e.font,
            line_spacing=e.line_spacing, hinting="normal", sizes=[], pages=pages, sides=(1024,),
            decoders={"tesseract": None}))
        if e.font_size not in row["sizes"]:
            row["sizes"].append(e.font_size)
    return list(rows.values())


def plan(quick: bool) -> list[dict]:
    """Rows to measure: corpus, script, mode, face, spacing, sizes, pages, sides, decoders."""
    if quick:
        return [
            dict(corpus="English (pydoc)", script="latin", mode="marker", sizes=(10.0, 12.0),
                 pages=2, sides=(1024, 512), decoders={"tesseract": None}, **PLAIN),
            *fit_rows("English (pydoc)", 2),
            dict(corpus="Chinese", script="cjk", mode="break", sizes=(12.0,),
                 pages=1, sides=(1024,), decoders={"tesseract": None}, **PLAIN),
        ]
    return [
        dict(corpus="English (pydoc)", script="latin", mode="marker",
             sizes=(10.0, 11.0, 12.0, 14.0), pages=4, sides=(1024, 640, 512),
             decoders={"tesseract": None, "rapidocr": {"sizes": (10.0, 12.0), "pages": 2,
                                                        "sides": (1024, 512)}}, **PLAIN),
        *fit_rows("English (pydoc)", 4),
        dict(corpus="English (pydoc)", script="latin", mode="break",
             sizes=(10.0, 12.0, 14.0), pages=4, sides=(1024,),
             decoders={"tesseract": None}, **PLAIN),
        dict(corpus="English (pydoc)", script="latin", mode="marker",
             sizes=(10.5, 11.0, 12.0), pages=4, sides=(1024,),
             decoders={"tesseract": None}, **DENSE),
        dict(corpus="English prose (LICENSE)", script="latin", mode="marker",
             sizes=(10.0, 11.0, 12.0), pages=3, sides=(1024, 640, 512),
             decoders={"tesseract": None}, **PLAIN),
        *fit_rows("English prose (LICENSE)", 3),
        dict(corpus="English prose (LICENSE)", script="latin", mode="marker",
             sizes=(10.5, 11.0, 12.0), pages=8, sides=(1024, 640),
             decoders={"tesseract": None}, **DENSE),
        dict(corpus="Chinese", script="cjk", mode="break",
             sizes=(10.0, 12.0, 14.0, 16.0), pages=3, sides=(1024, 640, 512),
             decoders={"tesseract": None, "rapidocr": {"sizes": (12.0, 14.0), "pages": 2,
                                                        "sides": (1024,)}}, **PLAIN),
    ]


def measure(rows: list[dict], workers: int, log) -> list[dict]:
    have = available_decoders()
    out: list[dict] = []
    done: set[tuple] = set()
    for row in rows:
        row.setdefault("hinting", "normal")
        if row["corpus"].startswith("English prose"):
            texts = prose_texts(row["pages"])
            if not texts:
                log(f"skip {row['corpus']}: no LICENSE.txt in the stdlib")
                continue
        else:
            texts = sample_texts(row["script"], row["pages"], split="report")
        for size in row["sizes"]:
            cfg = RenderConfig(font_size=size, newline_mode=row["mode"],
                               line_spacing=row["line_spacing"], font_path=font_path(row["font"]),
                               hinting=row["hinting"])
            pages = [first_page(t, cfg) for t in texts]
            for dec, sub in row["decoders"].items():
                if have.get(dec) is not True:
                    log(f"skip {dec}: {have.get(dec)}")
                    continue
                if sub and size not in sub["sizes"]:
                    continue
                use = pages[: sub["pages"]] if sub else pages
                for side in (sub["sides"] if sub else row["sides"]):
                    key = (row["corpus"], row["mode"], row["font"], row["line_spacing"],
                           row["hinting"], size, side, dec)
                    if key in done:
                        continue
                    done.add(key)
                    t0 = time.perf_counter()
                    reads = decode_many([resample(p.page.pixels, side) for p in use],
                                        decoder=dec, workers=workers,
                                        options=decoder_options(dec, row["script"]))
                    strict = [page_precision(p.page, r.text) for p, r in zip(use, reads)]
                    lenient = [page_precision(p.page, r.text, marker_as_space=True)
                               for p, r in zip(use, reads)]
                    res = dict(corpus=row["corpus"], mode=row["mode"], font=row["font"],
                               line_spacing=row["line_spacing"], hinting=row["hinting"],
                               size=size, side=side,
                               decoder=dec, n=len(use),
                               tokens=float(np.mean([p.tokens for p in use])),
                               chars=float(np.mean([p.chars for p in use])),
                               strict=float(np.mean(strict)), strict_min=float(min(strict)),
                               lenient=float(np.mean(lenient)),
                               seconds=time.perf_counter() - t0)
                    out.append(res)
                    log(f"{res['corpus']:<24} {row['mode']:<6} {row['font']:<9} "
                        f"{row['line_spacing']:<4} {row['hinting']:<6} {size:>5.1f}px side {side:>4} {dec:<9} "
                        f"tokens {res['tokens']:>6.0f} precision {res['strict']:.4f} "
                        f"(min {res['strict_min']:.4f}, lenient {res['lenient']:.4f}) "
                        f"{res['seconds']:.0f}s")
    return out


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


def tables(results: list[dict]) -> str:
    toks = {m: get_target(f"deepseek-ocr:{m}").page_tokens for m in ("tiny", "small", "base", "large")}
    lines: list[str] = []
    groups: dict[tuple, dict] = defaultdict(dict)
    for r in results:
        layout = f"{r['mode']}, {r['font']}, spacing {r['line_spacing']}"
        if r.get("hinting", "normal") != "normal":
            layout += f", hinting {r['hinting']}"
        groups[(r["corpus"], layout, r["size"])][(r["side"], r["decoder"])] = r
    by_layout: dict[tuple, list] = defaultdict(list)
    for key in groups:
        by_layout[key[:2]].append(key)
    for (corpus, layout), keys in by_layout.items():
        lines.append(f"\n### {corpus}: newline mode {layout}\n")
        lines.append(
            "| px @1024 | text tokens/page | chars/page | ratio vs tiny 73 / small 111 / base 273 / "
            "large 421 | 1024 tesseract | 1024 rapidocr | 640 (small) tesseract | "
            "512 (tiny) tesseract | 512 rapidocr |")
        lines.append("|---|---|---|---|---|---|---|---|---|")
        for key in sorted(keys, key=lambda k: k[2]):
            g = groups[key]
            t = next(iter(g.values()))["tokens"]
            chars = next(iter(g.values()))["chars"]
            ratios = " / ".join(f"{t / toks[m]:.1f}×" for m in ("tiny", "small", "base", "large"))

            def cell(side: int, dec: str, g: dict = g, layout: str = layout) -> str:
                r = g.get((side, dec))
                if r is None:
                    return "—"
                s = f"{_pct(r['strict'])} (min {_pct(r['strict_min'])}, n={r['n']})"
                if layout.startswith("marker"):
                    s += f" [lenient {_pct(r['lenient'])}]"
                return s

            lines.append(
                f"| {key[2]:g} | {t:.0f} | {chars:.0f} | {ratios} | {cell(1024, 'tesseract')} "
                f"| {cell(1024, 'rapidocr')} | {cell(640, 'tesseract')} | {cell(512, 'tesseract')} "
                f"| {cell(512, 'rapidocr')} |")
    # The Fox table's shape: one row per page density, one column per
    # DeepSeek mode (resolution): tesseract precision (ratio vs that mode).
    lines.append("\n### Fox-table shape (tesseract: precision (ratio vs the mode of the resolution))\n")
    lines.append("| corpus, layout, px @1024 | text tokens/page | 512 → tiny 73 | 640 → small 111 "
                 "| 1024 → base 273 |")
    lines.append("|---|---|---|---|---|")
    for key in sorted(groups, key=lambda k: (k[0], k[1], -k[2])):
        g = groups[key]
        t = next(iter(g.values()))["tokens"]
        cells = []
        for side in (512, 640, 1024):
            r = g.get((side, "tesseract"))
            cells.append("—" if r is None
                         else f"{_pct(r['strict'])} ({t / toks[MODE_OF_SIDE[side]]:.1f}×)")
        lines.append(f"| {key[0]}, {key[1]}, {key[2]:g} px | {t:.0f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_calibration(quick: bool, workers: int, log) -> Path:
    """Regenerate optical_memory/data/calibration.json (the "calibrate" split)."""
    n = 2 if quick else 4

    def tick(done: int, total: int) -> None:
        if done == total or done % 10 == 0:
            log(f"  calibration {done}/{total}")

    common = dict(workers=workers, write=False, progress=tick)
    parts = [
        # The dense candidates: marker mode, two faces, two line spacings.
        calibrate(sizes=(11.0,) if quick else (10.0, 10.5, 11.0, 12.0, 14.0), samples=n,
                  newline_modes=("marker",), fonts=("sans", "condensed"),
                  line_spacings=(1.1, 1.2), **common),
        # ... and the dense prose layout (sans, 1.1, vertical-only hinting)
        calibrate(sizes=(11.0,) if quick else (10.5, 11.0, 12.0), samples=n,
                  newline_modes=("marker",), line_spacings=(1.1,), hinting="slight", **common),
        calibrate(sizes=(12.0,) if quick else (10.0, 12.0, 14.0), samples=n,
                  newline_modes=("break",), **common),
        # Aged pages: the 1024 master read at 640 and 512.
        calibrate(sizes=(16.0,) if quick else (12.0, 14.0, 16.0, 18.0), samples=1 if quick else 3,
                  newline_modes=("marker",), page_sides=(640, 512), **common),
        calibrate(sizes=(14.0,) if quick else (10.0, 12.0, 14.0, 16.0), samples=1 if quick else 3,
                  scripts=("cjk",), **common),
    ]
    if available_decoders().get("rapidocr") is True and not quick:
        parts += [
            calibrate(sizes=(10.0, 12.0), samples=2, decoders=("rapidocr",),
                      newline_modes=("marker",), **common),
            calibrate(sizes=(12.0, 14.0), samples=2, decoders=("rapidocr",),
                      scripts=("cjk",), **common),
        ]
    merged = merge(*parts)
    merged.meta["seconds"] = round(sum(p.meta["seconds"] for p in parts), 1)
    merged.meta["generated_by"] = "benchmarks/fidelity.py --write-calibration"
    return merged.save(CALIBRATION)


HEADER = (
    "1024² pages (DejaVu Sans unless a row says condensed; margin 4); text tokens = "
    "o200k_base (tiktoken) of the source text a page holds; vision tokens = DeepSeek-OCR "
    "with newline + separator tokens (tiny 73, small 111, base 273, large 421); 640/512 = "
    "the 1024 page resampled (Lanczos), then upscaled again by the decoder. Precision = "
    "1 − edit distance / max length (whitespace-normalised) vs the page's visible text, mean "
    "(and min) over n pages; marker mode: the newline marker `»` must be read, the "
    "whitespace next to it does not count (as whitespace around a line break collapses "
    "in break mode; lenient: marker → space on both sides). Hinting normal unless a row "
    "says slight (vertical-only, fractional advances). Decoders: tesseract 5.3 (`--psm 6`, page upscaled "
    "(Lanczos) to 2048, Latin with curly quotes blacklisted, Chinese `chi_sim`), rapidocr 3 "
    "(bundled PP-OCR, tuned detector, upscaled to 1024). English pages: pydoc_data.topics, "
    "report split (odd-numbered topics; the calibration that picks layouts uses the "
    "even-numbered ones); English prose: CPython's LICENSE.txt; Chinese: "
    "optical_memory/data/zh_prose.txt. The dense prose layout (sans, 1.1, slight) was "
    "chosen on 6 LICENSE passages (evenly spaced starts); its rows read 8 (2 of them start "
    "where 2 of the 6 did)."
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a few pages, tesseract only (~2 min)")
    ap.add_argument("--workers", type=int, default=2, help="decoder processes (default 2)")
    ap.add_argument("--write-calibration", action="store_true",
                    help=f"first regenerate {CALIBRATION.relative_to(CALIBRATION.parents[2])}")
    ap.add_argument("--out", type=Path, default=RESULTS, help=f"markdown output (default {RESULTS})")
    args = ap.parse_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    if args.write_calibration:
        path = write_calibration(args.quick, args.workers, log)
        log(f"wrote {path} ({time.perf_counter() - t0:.0f} s)")
    t1 = time.perf_counter()
    results = measure(plan(args.quick), args.workers, log)
    md = ["# Fidelity: text tokens per page vs read-back precision", "", HEADER, tables(results),
          f"\nTables measured in {time.perf_counter() - t1:.0f} s with {args.workers} worker(s)"
          f"{' (--quick)' if args.quick else ''}; whole run {time.perf_counter() - t0:.0f} s.\n"]
    text = "\n".join(md)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
