"""Codec commands: text → pages (``render``), pages → text (``decode``), ``targets``
(``calibrate`` is :mod:`optical_memory.cli.calibrate`)."""
from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from optical_memory.cli._group import main, read_text_arg
from optical_memory.cli.files import write_private
from optical_memory.cli.output import console, out_folder, print_table, progress
from optical_memory.config import DEFAULT_DECODER

KINDS = ("auto", "text", "document", "chat")


def _chat_items(text: str, source: str):
    """A JSONL chat log (one {"role", "content", "name"?, "time"?} per line) as
    render turns; lines are read by the library's one parser
    (:func:`optical_memory.ingest.read_chat_log`), errors name ``file:line``."""
    from optical_memory.errors import InputError
    from optical_memory.ingest import read_chat_log
    from optical_memory.render import Turn

    messages, names = read_chat_log(text, source)
    turns = []
    for i, (msg, name) in enumerate(zip(messages, names), 1):
        where = name.removesuffix(": message")
        if not isinstance(msg.get("content"), str) or not isinstance(msg.get("role"), str):
            raise InputError(f"{where}: expected {{\"role\": str, \"content\": str}}")
        speaker, time = msg.get("name"), msg.get("time")
        if speaker is not None and not isinstance(speaker, str):
            raise InputError(f"{where}: \"name\" must be a string, got {type(speaker).__name__}")
        if isinstance(time, int | float) and not isinstance(time, bool):
            time = str(time)
        elif time is not None and not isinstance(time, str):
            raise InputError(f"{where}: \"time\" must be a string, got {type(time).__name__}")
        turns.append(Turn(id=f"turn-{i}", role=msg["role"], content=msg["content"],
                          name=speaker, time=time))
    return turns


def _items_for(text: str, kind: str, source: str):
    from optical_memory.render import RenderItem

    if kind == "auto":
        suffix = Path(source).suffix.lower()
        kind = {".md": "document", ".markdown": "document", ".jsonl": "chat"}.get(suffix, "text")
    if kind == "chat":
        return [RenderItem.from_turn(t) for t in _chat_items(text, source)]
    return [RenderItem("document" if kind == "document" else "text", kind, text)]


@main.command()
@click.argument("file", type=str)
@click.option("--target", "-t", default="deepseek-ocr:base", show_default=True,
              help="Vision target whose page size and token bill to use (see `targets`).")
@click.option("--font-size", type=float, default=None,
              help="Font size in px (default: the memory's calibrated layout, the densest "
                   "that Tesseract reads back at >= 0.98).")
@click.option("--newline-mode", type=click.Choice(["break", "marker"]), default=None,
              help="Real line breaks, or a visible newline marker with text flowing on.")
@click.option("--line-spacing", type=float, default=None,
              help="Line height in em (default: the calibrated layout's).")
@click.option("--hinting", type=click.Choice(["normal", "slight", "none", "full"]), default=None,
              help="Glyph hinting; 'slight' with --font-size 10.5 --line-spacing 1.1 "
                   "--newline-mode marker is the dense prose layout of the README and "
                   "benchmarks/RESULTS.md.")
@click.option("--kind", type=click.Choice(KINDS), default="auto", show_default=True,
              help="How to read FILE: plain text, markdown document, or JSONL chat log.")
@click.option("--tokenizer", default="o200k_base", show_default=True, help="Text tokenizer.")
@click.option("--out", "-o", type=click.Path(file_okay=False), required=True,
              help="Folder for the PNG pages (created; a new or empty one unless --force).")
@click.option("--force", is_flag=True,
              help="Reuse a non-empty --out (its old page-*.png files are removed first).")
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON.")
def render(file, target, font_size, newline_mode, line_spacing, hinting, kind, tokenizer, out,
           force, as_json):
    """Render FILE (or - for stdin) onto PNG pages sized for TARGET.

    Prints per page: source characters, text tokens, the target's vision
    tokens and the ratio text/vision.
    """
    from optical_memory.memory import default_render_config
    from optical_memory.render import Renderer
    from optical_memory.tokens import get_counter, get_target

    text = read_text_arg(file)
    items = _items_for(text, kind, "<stdin>" if file == "-" else file)
    vt = get_target(target)
    counter = get_counter(tokenizer)
    cfg = default_render_config(target)  # the memory's calibrated layout (read-back >= 0.98)
    if font_size is not None:
        cfg = replace(cfg, font_size=font_size)
    if newline_mode is not None:
        cfg = replace(cfg, newline_mode=newline_mode)
    if line_spacing is not None:
        cfg = replace(cfg, line_spacing=line_spacing)
    if hinting is not None:
        cfg = replace(cfg, hinting=hinting)
    renderer = Renderer(cfg)
    layouts = renderer.layout(items)
    sources = {it.item_id: it.text for it in items}
    outdir = out_folder(out, force)
    rows: list[dict[str, Any]] = []
    missing: dict[str, int] = {}
    with progress("rendering", len(layouts)) as bar:
        for i, lay in enumerate(layouts, 1):
            page = renderer.draw(lay)
            path = outdir / f"page-{i:04d}.png"
            write_private(path, page.to_png())
            held = "".join(sources[s.item_id][s.start:s.end] for s in page.spans)
            t = counter.count(held)
            v = vt.tokens(page.width, page.height)
            for ch, n in page.missing_glyphs.items():
                missing[ch] = missing.get(ch, 0) + n
            rows.append({"page": i, "file": str(path), "chars": len(held), "text_tokens": t,
                         "vision_tokens": v, "ratio": round(t / v, 2)})
            bar.update(1)
    total_t = counter.count(text)
    total_v = sum(r["vision_tokens"] for r in rows)
    summary = {
        "source": file, "target": vt.name, "tokenizer": counter.name,
        "page_size": [cfg.width, cfg.height], "font_size": cfg.font_size,
        "newline_mode": cfg.newline_mode, "pages": len(rows), "chars": len(text),
        "text_tokens": total_t, "vision_tokens": total_v,
        "ratio": round(total_t / total_v, 2) if total_v else None,
        "missing_glyphs": {f"U+{ord(c):04X}": n for c, n in missing.items()},
    }
    if as_json:
        click.echo(json.dumps({"summary": summary, "pages": rows}, ensure_ascii=False, indent=2))
        return
    cols = ("page", "chars", f"text tokens ({counter.name})", f"vision tokens ({vt.name})",
            "ratio")
    table = [(str(r["page"]), f"{r['chars']:,}", f"{r['text_tokens']:,}",
              f"{r['vision_tokens']:,}", f"{r['ratio']:.2f}×") for r in rows]
    table.append(("total", f"{len(text):,}", f"{total_t:,}", f"{total_v:,}",
                  f"{summary['ratio']:.2f}×" if summary["ratio"] else "-"))
    print_table(cols, table, right=cols,
                title=f"{file} → {outdir}/  ({vt.name}, {cfg.width}×{cfg.height}, "
                      f"{cfg.font_size:g} px, newlines: {cfg.newline_mode})")
    con = console()
    if missing:
        con.print(f"[yellow]{sum(missing.values())} character(s) had no glyph in any font "
                  f"(drawn as boxes): {', '.join(summary['missing_glyphs'])}[/yellow]")
    con.print("The ratio is text tokens / vision tokens; whether a model reads the pixels "
              "back is measured by `optical-memory decode` (see benchmarks/RESULTS.md).")


#: Below this mean line confidence ``decode`` notes that the native reader may
#: be reading an image it was not made for. A hint, not a verdict: this
#: package's pages read 0.95-0.98 (one of base64-dense code 0.83-0.91), lines
#: drawn by PIL in DejaVu Serif 18 px 0.79-0.90, read as garble.
LOW_CONFIDENCE = 0.92


@main.command()
@click.argument("images", nargs=-1, required=True, type=click.Path(allow_dash=True))
@click.option("--decoder", "-d", default=None,
              help="Decoder: native (the package's own line reader, for pages this package "
                   "drew), tesseract, rapidocr, or openai (OpenAI-compatible endpoint).  "
                   f"[default: {DEFAULT_DECODER}; tesseract with --lang]")
@click.option("--lang", default=None,
              help="Tesseract languages, e.g. eng, rus+eng, jpn or chi_sim; 'auto': a first "
                   "pass finds the page's scripts, a second reads it with their languages "
                   "(default: eng).")
@click.option("--reference", type=click.Path(dir_okay=False), default=None,
              help="Text file the page(s) should read as; prints the read-back precision.")
@click.option("--workers", type=int, default=None, help="Processes (default: all cores).")
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")
def decode(images, decoder, lang, reference, workers, as_json):
    """Read page images (PNG/JPEG; - reads one from stdin) back to text.

    The default reader is the package's own, trained on the pages this
    package draws (`optical-memory render`); for other images use tesseract.
    A bare image says nothing of its languages: tesseract reads English
    unless --lang names them, or finds them itself with --lang auto (about
    twice the time; with --json each page reports the languages read).
    """
    from optical_memory.decode import decode_many
    from optical_memory.decode.metrics import source_precision
    from optical_memory.render.config import NEWLINE_MARKER

    if images.count("-") > 1:
        raise click.UsageError("stdin (-) can be read once")
    for img in images:
        if img == "-":
            continue
        if Path(img).is_dir():
            raise click.ClickException(f"{img} is a directory, not an image file")
        if not Path(img).is_file():
            raise click.ClickException(f"no such image file: {img}")
    if decoder is None:
        decoder = "tesseract" if lang is not None else DEFAULT_DECODER
    if lang is not None and decoder != "tesseract":
        raise click.UsageError(f"--lang is a tesseract option (decoder is {decoder!r})")
    options = {"lang": lang} if lang else {}
    inputs = [_stdin_image() if img == "-" else img for img in images]
    with progress("decoding", len(images)) as bar:
        results = decode_many(inputs, decoder=decoder, workers=workers, options=options,
                              progress=lambda done, total: bar.update(1))
    ref = read_text_arg(reference) if reference else None
    text = "\n".join(r.text for r in results)
    for img, r in zip(images, results):  # the native reader knows when it is out of its depth
        conf = r.meta.get("mean_confidence")
        if isinstance(conf, float) and conf < LOW_CONFIDENCE:
            click.echo(f"note: {img}: the native reader's mean confidence is {conf:.2f}; it "
                       "was trained on the pages this package draws: if this image was not "
                       "drawn by optical-memory, --decoder tesseract reads it better", err=True)
    # marker-mode pages are scored as the memory scores them (newlines = markers)
    prec = source_precision(ref, text, NEWLINE_MARKER) if ref is not None else None
    if as_json:
        out = {"decoder": decoder,
               "pages": [{"image": i, "text": r.text, "seconds": round(r.seconds, 3),
                          **({"confidence": round(r.meta["mean_confidence"], 4)}
                             if "mean_confidence" in r.meta else {}),
                          **({"lang": r.meta["lang"]} if "lang" in r.meta else {})}
                         for i, r in zip(images, results)]}
        if prec is not None:
            out["precision"] = round(prec, 4)
        click.echo(json.dumps(out, ensure_ascii=False, indent=2))
        return
    for img, r in zip(images, results):
        if len(images) > 1:
            click.echo(f"==> {img} ({r.seconds:.1f} s) <==")
        if lang == "auto":
            click.echo(f"{img}: read with tesseract -l {r.meta.get('lang')}", err=True)
        click.echo(r.text)
    if prec is not None:
        click.echo(f"precision vs {reference}: {prec:.4f} "
                   f"(1 - edit distance / max length, {decoder})", err=True)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def targets(as_json):
    """List vision targets: default page size and tokens billed per page."""
    from optical_memory.tokens import get_target, list_targets

    rows: list[dict[str, Any]] = []
    for name in list_targets():
        t = get_target(name)
        rows.append({"target": t.name, "family": t.family, "page_size": list(t.page_size),
                     "tokens_per_page": t.page_tokens, "description": t.description,
                     "source": t.source})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    print_table(("target", "page", "tokens/page", "description"),
                [(r["target"], "×".join(map(str, r["page_size"])), str(r["tokens_per_page"]),
                  r["description"]) for r in rows], title="vision targets",
                right=("tokens/page",))


def _stdin_image() -> bytes:
    """The image piped to stdin (``decode -``)."""
    if sys.stdin.isatty():
        raise click.UsageError("decode -: pipe an image into stdin (e.g. `< page.png`)")
    data = sys.stdin.buffer.read()
    if not data:
        raise click.ClickException("decode -: stdin is empty (expected a PNG or JPEG image)")
    return data
