"""The native reader against tesseract on the same held-out pages, every tier.

    python benchmarks/reader.py [--pages 3] [--no-tesseract] [--record]
                                [--quiet-wait 300] [--out benchmarks/results/reader.md]

Pages: the memory's default layout for ``deepseek-ocr:base`` (1024², the
calibrated face and size, newline markers), ``--pages`` pages of each of

- prose: ``/usr/share/common-licenses`` (all files, in name order),
- code: Pillow's own ``.py`` sources,
- chat: :func:`optical_memory.conversation.generate_conversation` (seed 101),
  drawn as the memory draws turns (bold speaker labels),

none of which the reader was trained on (it trained on the standard
library's sources, ``pydoc_data`` and synthetic text: see
``optical_memory/reader/data.py``). Each page is read fresh (1024²) and at
the 640² and 512² tiers (Lanczos resample of the master PNG, the memory's
``resample_png``). Precision is the memory's read-back score:
1 − edit distance / max length, whitespace-normalised, newline marker read as
a line break (:func:`optical_memory.decode.precision`).

The native reader is timed reading the stored pages as the memory hands
them over (lines from the layout the page records) and as bare PNGs (lines
found from the ink profile), with each engine: int8 in onnxruntime (the
default) and float32 in numpy; tesseract reads the PNG (upscaled to 2048, its
defaults). With ``--no-tesseract`` the tesseract rows of the previous report
(same pages) are carried over and say so.

Speed: the native reader on its own, all fresh pages read ``--repeats`` times
per engine, one page after another (onnxruntime on all cores) and through
``decode_many`` (two pages at a time in threads, one core each). The machine
is shared with other work, so each pass records its wall time, this
process's CPU time (user + system) and the load average; ``--quiet-wait``
first waits (up to that many seconds) for the 1-minute load to fall under
1.5. Pages per second of CPU time × cores is the rate the work would allow
on idle cores, a derived figure, labelled as such.
``--record`` writes the summary into the shipped recipe
(``optical_memory/reader/weights/reader.json``, key ``heldout``).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from optical_memory.age.renditions import resample_page
from optical_memory.config import default_render_config
from optical_memory.decode import get_decoder, precision
from optical_memory.reader.data import chat_messages, license_text, pil_code_text
from optical_memory.render import NEWLINE_MARKER, Renderer
from optical_memory.render.config import RenderItem
from optical_memory.types import Page

HERE = Path(__file__).resolve().parent
TIERS = ((1024, "fresh 1024²"), (640, "640² (small)"), (512, "512² (tiny)"))
TARGETS = {1024: 0.995, 640: 0.95, 512: 0.85}


def _pick(pages: list[Page], n: int) -> list[Page]:
    full = [p for p in pages if p.meta.get("lines", 0) >= 0.9 * max(q.meta["lines"] for q in pages)]
    step = max(1, len(full) // n)
    return full[::step][:n]


def held_out_pages(n: int) -> dict[str, list[Page]]:
    from optical_memory.ingest import turn_draft
    from optical_memory.tokens import get_counter

    renderer = Renderer(default_render_config("deepseek-ocr:base"))
    counter = get_counter("o200k_base")
    chat = [turn_draft(m, i, counter, keep_text=True).render
            for i, m in enumerate(chat_messages(101, tokens=8000 * n))]
    return {
        "prose": _pick(renderer.render_text(license_text()), n),
        "code": _pick(renderer.render_items([RenderItem("code", "text", pil_code_text())]), n),
        "chat": _pick(renderer.render_items(chat), n),
    }


def at_tier(page: Page, side: int) -> Page:
    return resample_page(page, (side, side))


def run(n: int, tesseract: bool) -> dict:
    pages = held_out_pages(n)
    decoders = {"native int8 (layout lines)": (get_decoder("native", engine="onnx"), "page"),
                "native float32 numpy (layout lines)": (get_decoder("native", engine="numpy"),
                                                        "page"),
                "native int8 (ink lines, bare PNG)": (get_decoder("native", engine="onnx"),
                                                      "png")}
    if tesseract:
        decoders["tesseract"] = (get_decoder("tesseract"), "png")
    # warm up (weights load, BLAS threads)
    get_decoder("native").decode(pages["prose"][0])
    scores: dict = {}
    for name, (dec, kind) in decoders.items():
        for side, _ in TIERS:
            for k, plist in pages.items():
                for page in plist:
                    tier = at_tier(page, side)
                    image = tier if kind == "page" else tier.to_png()
                    t0 = time.perf_counter()
                    res = dec.decode(image)
                    secs = time.perf_counter() - t0
                    p = precision(page.text, res.text, marker=NEWLINE_MARKER)
                    scores.setdefault((name, side, k), []).append((p, secs))
                    print(f"{name:28s} {side:5d} {k:6s} {p:.4f} {secs:6.2f} s", flush=True)
    return {"pages": pages, "scores": scores, "decoders": list(decoders)}


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def wait_quiet(limit: float, below: float = 1.5) -> float:
    """Wait up to ``limit`` s for the 1-minute load average to fall under ``below``."""
    t0 = time.perf_counter()
    while os.getloadavg()[0] >= below and time.perf_counter() - t0 < limit:
        time.sleep(5)
    return time.perf_counter() - t0


def speed(pages: list[Page], repeats: int, engines: tuple[str, ...] = ("onnx", "numpy")) -> dict:
    """Native pages/s over ``pages`` (fresh, layout lines), per engine and mode:
    each pass's wall rate, CPU seconds per page and load average."""
    from optical_memory.decode import decode_many

    out: dict = {}
    for engine in engines:
        dec = get_decoder("native", engine=engine)
        dec.decode(pages[0])
        decode_many(pages[:2], decoder="native", workers=2, options={"engine": engine})
        for mode in ("one page at a time", "decode_many, 2 threads"):
            passes = []
            for _ in range(repeats):
                load = os.getloadavg()[0]
                t0, c0 = time.perf_counter(), _cpu()
                if mode.startswith("one"):
                    for p in pages:
                        dec.decode(p)
                else:
                    decode_many(pages, decoder="native", workers=2, options={"engine": engine})
                wall, cpu = time.perf_counter() - t0, _cpu() - c0
                passes.append({"rate": len(pages) / wall, "cpu": cpu / len(pages),
                               "load": max(load, os.getloadavg()[0])})
                print(f"speed {engine:5s} {mode:24s} {passes[-1]['rate']:6.2f} pages/s  "
                      f"{passes[-1]['cpu']:.3f} CPU s/page  load {passes[-1]['load']:.1f}",
                      flush=True)
            out[(engine, mode)] = passes
    return {"passes": out, "repeats": repeats, "pages": len(pages),
            "batch": get_decoder("native").batch}


def carried_tesseract(path: Path) -> list[str]:
    """The tesseract rows of the previous report at ``path`` (same pages), marked."""
    if not path.is_file():
        return []
    rows = [ln for ln in path.read_text(encoding="utf-8").splitlines()
            if ln.startswith("| tesseract") or ln.startswith("| tesseract (previous run)")]
    if not rows:
        return []
    rows = [ln.replace("| tesseract |", "| tesseract (previous run) |", 1) for ln in rows]
    return ["", "Tesseract on the same pages, carried over from the previous report "
                "(this run skipped it with `--no-tesseract`):", "",
            "| decoder | tier | prose | code | chat | all | target | s/page | pages/s |",
            "|---|---|---|---|---|---|---|---|---|", *rows]


def summary(res: dict) -> dict:
    out: dict = {}
    for (name, side, _k), vals in res["scores"].items():
        out.setdefault(name, {}).setdefault(str(side), []).extend(v[0] for v in vals)
    return {name: {side: round(statistics.mean(v), 4) for side, v in tiers.items()}
            for name, tiers in out.items()}


def _training_line(rec: dict) -> str:
    """How the shipped weights were trained: every run of the chain (a run
    started with ``--init`` from an earlier one), steps, lines, minutes, frame width."""
    runs = []
    tr = rec["training"]
    while tr:
        runs.append(tr)
        tr = tr.get("init")
    parts = []
    for r in reversed(runs):
        batch = r.get("batch_lines", r.get("batch"))
        pool = (r.get("arch") or (rec["arch"] if r is runs[0] else {})).get("pool_w")
        parts.append(f"{r['steps']:,} steps × {batch} lines in {r['seconds'] / 60:.1f} min"
                     + (f" (frames of {pool} px)" if pool else ""))
    total = sum(r["steps"] * (r.get("batch_lines") or r.get("batch") or 0) for r in runs)
    minutes = sum(r["seconds"] for r in runs) / 60
    head = "trained " + ", then fine-tuned ".join(parts)
    first = runs[-1].get("recipe") if len(runs) > 1 else None
    return (f"{head} on this CPU ({total:,} lines, {minutes:.0f} min in all); data recipe "
            f"{rec['data_recipe_hash']}"
            + (f" (first run: {first})" if first and first != rec["data_recipe_hash"] else ""))


def report(res: dict, n: int, seconds: float, load: tuple[float, float]) -> str:
    from optical_memory.reader.infer import NumpyReader

    reader = NumpyReader()
    rec = reader.recipe
    tr = rec["training"]
    scores = res["scores"]
    kinds = list(res["pages"])
    chars = statistics.mean(len(p.text) for ps in res["pages"].values() for p in ps)
    cfg = default_render_config("deepseek-ocr:base")
    face = Path(cfg.font_path).stem if cfg.font_path else "DejaVuSans"
    lines = [
        "# Native reader vs tesseract (held-out pages, every tier)",
        "",
        f"Generated by `benchmarks/reader.py --pages {n}` in {seconds:.0f} s on "
        f"{os.cpu_count()} CPU cores ({platform.machine()}, Python {platform.python_version()}, "
        f"load average {load[0]:.1f} at start, {load[1]:.1f} at end: the machine is shared).",
        "",
        f"Pages: the memory's default layout for deepseek-ocr:base ({cfg.width}², {face} "
        f"{cfg.font_size:g} px, line spacing {cfg.line_spacing:g}, newline markers), "
        f"{n} page(s) each of prose (/usr/share/common-licenses), code (Pillow's .py sources) "
        f"and chat (generate_conversation seed 101, bold speaker labels); "
        f"{chars:,.0f} characters per page on average. None of this text was in the "
        "reader's training data (stdlib sources, pydoc_data topics, synthetic text). "
        "Tiers: Lanczos resample of the master PNG (`resample_png`).",
        "",
        f"Reader: {reader.parameters:,} parameters "
        f"({sum(p.stat().st_size for p in reader.path.parent.iterdir()) / 1e6:.2f} MB "
        f"shipped), {_training_line(rec)}; "
        f"inference stretch {reader.stretch:g} (chosen on validation pages of the training "
        "sources by `python -m optical_memory.reader.tune`). "
        "Inference without torch: int8 in onnxruntime (`reader.int8.onnx`, "
        f"{(reader.path.parent / 'reader.int8.onnx').stat().st_size / 1e6:.2f} MB, made from "
        "the same weights by `python -m optical_memory.reader.quantize`) or float32 in numpy. "
        "Unknown-glyph marking on (`optical_memory/reader/unknown.py`). "
        + (f"Look-alikes I/l and O/0 decided by their neighbours where the model's margin is "
           f"under {reader.context.margin:g} logits (weight {reader.context.weight:g}; counts "
           "from the training text, margin and weight chosen on validation and catalogue pages "
           "by `python -m optical_memory.reader.context`)."
           if reader.context is not None and reader.context.margin > 0 else
           "Look-alike prior (`optical_memory/reader/context.py`) off: for these weights no "
           "margin beat none on the tuning pages (`python -m optical_memory.reader.context`)."),
        "",
        "## Read-back precision (mean over pages)",
        "",
        "| decoder | tier | " + " | ".join(kinds) + " | all | target | s/page | pages/s |",
        "|---|---|" + "---|" * len(kinds) + "---|---|---|---|",
    ]
    for name in res["decoders"]:
        for side, label in TIERS:
            cells, allp, alls = [], [], []
            for k in kinds:
                vals = scores.get((name, side, k), [])
                cells.append(f"{statistics.mean(v[0] for v in vals):.4f}" if vals else "—")
                allp += [v[0] for v in vals]
                alls += [v[1] for v in vals]
            if not allp:
                continue
            sp = statistics.mean(alls)
            lines.append(f"| {name} | {label} | " + " | ".join(cells)
                         + f" | **{statistics.mean(allp):.4f}** | ≥ {TARGETS[side]} | "
                           f"{sp:.3f} | {1 / sp:.2f} |")
    lines += res.get("carried", [])
    sp = res.get("speed")
    if sp:
        cores = os.cpu_count() or 1
        lines += [
            "",
            f"## Speed: the native reader alone, fresh 1024² pages on {cores} cores",
            "",
            f"The {sp['pages']} fresh pages read {sp['repeats']} times per engine and mode "
            f"(batches of {sp['batch']} lines). The machine is shared: wall rates depend on the "
            "load of other work (load: the highest 1-minute load average seen over the pass; "
            f"a load of {cores} fills the {cores} cores). CPU s/page: this process's "
            "user + system time per page. *Idle-core rate* = cores / CPU s per page: what the "
            "work would allow on idle cores (derived, not measured).",
            "",
            "| engine | mode | best wall pages/s | median wall pages/s | load (best pass) "
            "| CPU s/page (min) | idle-core rate (derived) |",
            "|---|---|---|---|---|---|---|",
        ]
        for (engine, mode), passes in sp["passes"].items():
            best = max(passes, key=lambda q: q["rate"])
            cpu = min(q["cpu"] for q in passes)
            label = "int8, onnxruntime" if engine == "onnx" else "float32, numpy"
            lines.append(f"| {label} | {mode} | **{best['rate']:.2f}** | "
                         f"{statistics.median(q['rate'] for q in passes):.2f} | "
                         f"{best['load']:.1f} | {cpu:.3f} | {cores / cpu:.1f} |")
        if sp.get("waited") is not None:
            below = sp.get("quiet_below", 1.5)
            quiet = sp.get("quiet", sp["load_at_start"] < below)
            lines += ["", f"Waited {sp['waited']:.0f} s for a quiet moment (1-minute load "
                          f"under {below:g}) before timing; "
                      + (f"it came; timed at load {sp['load_at_start']:.1f} (this process "
                         "included)." if quiet else
                         f"none came: timed at load {sp['load_at_start']:.1f}.")]
    lines += [
        "",
        "Targets are issue 19's (fresh ≥ 99.5 %, 640² ≥ 95 %, 512² ≥ 85 %, ≥ 10 pages/s on 2 "
        "cores). s/page: wall time of one `decode` (image coercion, line finding, cropping "
        "and reading), pages read one after another in one process.",
        "",
        "## Training history (held-out licence lines at the default layout, per tier)",
        "",
        "| step | minutes | fresh | 640² | 512² |",
        "|---|---|---|---|---|",
    ]
    for h in tr["history"]:
        s = h["heldout"]
        lines.append(f"| {h['step']:,} | {h['seconds'] / 60:.1f} | {s.get('1.0', 0):.4f} | "
                     f"{s.get('0.625', 0):.4f} | {s.get('0.5', 0):.4f} |")
    return "\n".join(lines) + "\n"


def speed_only(args: argparse.Namespace, load0: float) -> int:
    """The speed table alone, on the same fresh pages (a quick rerun at a quieter moment)."""
    t0 = time.perf_counter()
    pages = held_out_pages(args.pages)
    waited = wait_quiet(args.quiet_wait, args.quiet_below) if args.quiet_wait > 0 else None
    res: dict = {"pages": pages, "scores": {}, "decoders": []}
    res["speed"] = speed([p for ps in pages.values() for p in ps], args.repeats,
                         tuple(args.engines.split(",")))
    res["speed"].update(waited=waited, load_at_start=os.getloadavg()[0],
                        quiet_below=args.quiet_below,
                        quiet=waited is not None and waited < args.quiet_wait)
    full = report(res, args.pages, time.perf_counter() - t0, (load0, os.getloadavg()[0]))
    table = full[full.index("## Speed"):full.index("Targets are issue 19")].strip()
    text = "\n".join([
        "# Native reader speed (fresh 1024² pages)",
        "",
        f"Generated by `benchmarks/reader.py --speed-only --pages {args.pages} --repeats "
        f"{args.repeats} --engines {args.engines}` in {time.perf_counter() - t0:.0f} s on {os.cpu_count()} CPU cores "
        f"({platform.machine()}, Python {platform.python_version()}, load average "
        f"{load0:.1f} at start, {os.getloadavg()[0]:.1f} at end: the machine is shared). "
        "The pages of `benchmarks/results/reader.md` (its read-back table), timed again.",
        "",
        "#" + table,
        "",
        "Issue 19's target: ≥ 10 pages/s on 2 cores for 1024² pages.",
    ]) + "\n"
    out = args.out if args.out != HERE / "results" / "reader.md" else (
        HERE / "results" / "reader_speed.md")
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pages", type=int, default=3, help="pages per kind (prose, code, chat)")
    ap.add_argument("--no-tesseract", action="store_true")
    ap.add_argument("--repeats", type=int, default=5, help="passes of the speed measurement")
    ap.add_argument("--speed-only", action="store_true",
                    help="only the speed table (default --out: results/reader_speed.md)")
    ap.add_argument("--engines", default="onnx,numpy", help="with --speed-only: engines to time")
    ap.add_argument("--quiet-wait", type=float, default=0.0,
                    help="before timing, wait up to this many seconds for a quiet moment")
    ap.add_argument("--quiet-below", type=float, default=1.5,
                    help="a quiet moment: 1-minute load average under this")
    ap.add_argument("--record", action="store_true",
                    help="write the summary into the shipped recipe (reader.json)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "reader.md")
    args = ap.parse_args()
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    if args.speed_only:
        return speed_only(args, load0)
    res = run(args.pages, not args.no_tesseract)
    if args.no_tesseract:
        res["carried"] = carried_tesseract(args.out)
    waited = wait_quiet(args.quiet_wait, args.quiet_below) if args.quiet_wait > 0 else None
    load_at_start = os.getloadavg()[0]
    res["speed"] = speed([p for ps in res["pages"].values() for p in ps], args.repeats)
    res["speed"].update(waited=waited, load_at_start=load_at_start,
                        quiet_below=args.quiet_below,
                        quiet=waited is not None and waited < args.quiet_wait)
    text = report(res, args.pages, time.perf_counter() - t0, (load0, os.getloadavg()[0]))
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    if args.record:
        import json

        from optical_memory.reader.infer import default_weights

        path = default_weights()
        recipe = json.loads(path.read_text(encoding="utf-8"))
        recipe["heldout"] = {
            "by": f"benchmarks/reader.py --pages {args.pages}",
            "pages": "memory default layout (deepseek-ocr:base): licences, PIL code, chat seed 101",
            "precision": summary(res),
            "native_pages_per_s": {
                f"{engine} / {mode}": round(max(q["rate"] for q in passes), 2)
                for (engine, mode), passes in res["speed"]["passes"].items()},
        }
        path.write_text(json.dumps(recipe, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
