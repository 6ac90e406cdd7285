"""Memory commands (add, search, decode-page, context, stats, compact, tiers, demo;
``delete`` and ``update`` are in :mod:`optical_memory.cli.edit`).

A thin layer over :class:`optical_memory.memory.OpticalMemory`: every command
opens the memory at ``--store`` (default: the SQLite file in
``$OPTICAL_MEMORY_HOME`` or the platform data folder), runs one API call and
prints a rich table, or JSON with ``--json``. Progress goes to stderr.
"""
from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from optical_memory.cli._group import main, read_text_arg
from optical_memory.cli.common import (
    emit_json,
    metadata_option,
    model_options,
    open_memory,
    resolve_id,
    scope_kwargs,
    scope_options,
)
from optical_memory.cli.files import write_private
from optical_memory.cli.output import console, out_folder, print_table, progress
from optical_memory.config import DEFAULT_DECODER

_BATCH = 256  # messages per add() call when ingesting with a progress bar
#: Where the demo plants its fact: old enough to be on a page, young enough
#: (~7% of the session back) that its page is still in the first age tier.
NEEDLE_DEPTH = 0.93

if TYPE_CHECKING:  # pragma: no cover
    from optical_memory.scope import ScopeKwargs

_scope_options, _model_options, _scope = scope_options, model_options, scope_kwargs
_emit_json = emit_json


def _open(store: str | None, *args: Any, **kw: Any):
    """The memory at ``store`` (see :func:`~optical_memory.cli.common.open_memory`)."""
    return open_memory(store, *args, **kw)


def _read_chat_log(text: str, source: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The messages of a JSONL chat log, and a ``file:line`` name for each
    (the library's parser, :func:`optical_memory.ingest.read_chat_log`)."""
    from optical_memory.errors import InputError
    from optical_memory.ingest import read_chat_log

    try:
        return read_chat_log(text, source)
    except InputError as exc:
        raise click.ClickException(str(exc)) from exc


def _batches(messages: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """At most :data:`_BATCH` messages and ``MAX_ADD_CHARS`` characters of
    content per batch (content length bounds the stored text closely; a
    message that alone exceeds it was rejected by ``check_messages``)."""
    from optical_memory.config import MAX_ADD_CHARS

    budget = MAX_ADD_CHARS // 2  # room for tool-call lines and labels
    out: list[list[dict[str, Any]]] = [[]]
    chars = 0
    for msg in messages:
        size = len(json.dumps(msg, ensure_ascii=False))  # covers content, tool calls and names
        if out[-1] and (len(out[-1]) >= _BATCH or chars + size > budget):
            out.append([])
            chars = 0
        out[-1].append(msg)
        chars += size
    return out


def _ingest(mem, messages: list[dict[str, Any]], scope: ScopeKwargs, label: str,
            names: list[str] | None = None,
            metadata: dict[str, Any] | None = None) -> tuple[list[str], int, int]:
    """Add messages in batches (a tool call and its result may straddle two
    batches; they are stored in order either way) with a progress bar.
    Check them all first (``check_messages``) so a bad message stores nothing."""
    mem.check_messages(messages, names=names)
    item_ids: list[str] = []
    pages = tokens = 0
    with progress(label, len(messages)) as bar:
        for chunk in _batches(messages):
            res = mem.add(chunk, metadata=metadata, **scope)
            item_ids += res.item_ids
            pages += res.pages
            tokens += res.text_tokens
            bar.update(len(chunk))
    return item_ids, pages, tokens


def _print_accounting(acc, title: str) -> None:
    caption = (f"tokenizer {acc.tokenizer} · target {acc.target} · decoder {acc.decoder} · "
               f"budget {acc.budget_tokens} · paged part "
               + (f"{acc.page_ratio:.1f}x" if acc.page_vision_tokens else "- (no pages)")
               + f" · whole context {acc.ratio:.1f}x"
               + (f" · {acc.dropped_text_tokens} text tokens of history dropped "
                  f"for the budget" if acc.dropped_pages else "")
               + (f" · calibrated: shipped figures of the CPU reader {acc.decoder}, not of a "
                  "served model (`optical-memory calibrate` measures yours)"
                  if any(r.readback_source == "calibrated" for r in acc.per_tier.values())
                  else ""))
    cols = ("part", "pages", "text tokens", "context tokens", "ratio",
            f"read-back ({acc.decoder})")
    print_table(cols, acc.rows(), title=title, caption=caption, right=cols[1:])


def _found(answer: str, text: str) -> bool:
    """``answer`` in ``text``, ignoring case and how whitespace was read."""
    return " ".join(answer.split()).casefold() in " ".join(text.split()).casefold()


def _write_pages(ctx, folder: Path) -> list[str]:
    """Write the context's page images into ``folder`` (files 0600)."""
    written = []
    for i, page in enumerate(ctx.pages):
        name = f"page-{i:04d}-{page.tier}-{page.page_id or 'pending'}.png"
        write_private(folder / name, base64.b64decode(page.png_b64))
        written.append(str(folder / name))
    return written


# --------------------------------------------------------------------------


@main.command()
@click.argument("source", type=click.Path(allow_dash=True, dir_okay=False))
@click.option("--chat", is_flag=True,
              help="SOURCE is a chat log: JSONL (one message object per line), a JSON array "
                   "of messages, or {\"messages\": [...]}; messages as OpenAI-style "
                   "{\"role\", \"content\"} or LangChain's serialisation "
                   "({\"type\": \"human\", \"data\": {...}}, or flat).")
@click.option("--title", default=None, help="Document title (without --chat).")
@click.option("--metadata", default=None, metavar="JSON", callback=metadata_option,
              help='A JSON object stored on every item added, e.g. \'{"project": "atlas"}\' '
                   "(search --metadata filters on it).")
@_scope_options
@_model_options
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def add(source, chat, title, metadata, store, user_id, agent_id, session_id, target, decoder,
        tokenizer, as_json):
    """Add a document FILE (or - for stdin), or a chat log with --chat.

    The only command (with `demo`) that creates the store when it is missing.
    """
    text = read_text_arg(source)
    name = "<stdin>" if source == "-" else source
    scope = _scope(user_id, agent_id, session_id)
    log = _read_chat_log(text, name) if chat else None
    with _open(store, target, decoder, tokenizer, create=True) as mem:
        if log is not None:
            ids, pages, tokens = _ingest(mem, log[0], scope, "adding turns", names=log[1],
                                         metadata=metadata)
        else:
            res = mem.add_document(text,
                                   title=title or (Path(name).name if source != "-" else None),
                                   metadata=metadata, **scope)
            ids, pages, tokens = list(res.item_ids), res.pages, res.text_tokens
    if as_json:
        _emit_json({"item_ids": ids, "pages": pages, "text_tokens": tokens})
    else:
        click.echo(f"stored {len(ids)} item(s), {tokens} text tokens, {pages} new page(s)")


@main.command()
@click.argument("query")
@click.option("-k", "k", default=5, show_default=True, type=click.IntRange(1, 1000),
              help="How many hits.")
@_scope_options
@click.option("--semantic", is_flag=True,
              help="Also search by meaning (all-MiniLM-L6-v2, English; extra 'semantic'): "
                   "finds a fact from words it does not contain.")
@click.option("--metadata", default=None, metavar="JSON", callback=metadata_option,
              help='Only items whose metadata has each key with this value, e.g. '
                   '\'{"project": "atlas"}\'.')
@click.option("--json", "as_json", is_flag=True, help="Print the hits as JSON.")
def search(query, k, store, user_id, agent_id, session_id, semantic, metadata, as_json):
    """Search the memory for QUERY (BM25 keyword search; --semantic: fused with meaning)."""
    ranker = None
    if semantic:
        from optical_memory.retrieve import MiniLMRanker

        ranker = MiniLMRanker()
    with _open(store, ranker=ranker) as mem:
        hits = mem.retrieve(query, k=k, metadata=metadata,
                            **_scope(user_id, agent_id, session_id))
    rows = [{"item_id": h.item_id, "page_id": h.page_id, "tier": h.tier,
             "score": round(h.score, 4), "span": list(h.span) if h.span else None,
             "snippet": h.snippet} for h in hits]
    if as_json:
        _emit_json(rows)
        return
    if not rows:
        click.echo("no matches")
        return
    print_table(("score", "item", "page", "tier", "snippet"),
                [(f"{r['score']:.2f}", r["item_id"] or "-", r["page_id"] or "(text)",
                  r["tier"] or "-", r["snippet"]) for r in rows],
                title=f"{len(rows)} hit(s) for {query!r}")


@main.command("decode-page")
@click.argument("page_id")
@click.option("--tier", default=None,
              help="Read this tier's image (default: the page's current tier).")
@click.option("--decoder", default=DEFAULT_DECODER, show_default=True, help="Read-back decoder.")
@_scope_options
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def decode_page(page_id, tier, decoder, store, user_id, agent_id, session_id, as_json):
    """Read stored page PAGE_ID (or a unique prefix of it) back to text."""
    scope = _scope(user_id, agent_id, session_id)
    with _open(store, decoder=decoder) as mem:
        _, page_id = resolve_id(mem, page_id, scope, kinds=("page",))
        d = mem.decode(page_id, tier=tier, **scope)
    if as_json:
        _emit_json({"page_id": d.page_id, "tier": d.tier, "width": d.width, "height": d.height,
                    "decoder": d.decoder, "precision": d.precision, "seconds": round(d.seconds, 3),
                    "text": d.text})
        return
    prec = "n/a (text not kept)" if d.precision is None else f"{d.precision:.3f}"
    click.echo(f"page {d.page_id} · tier {d.tier} ({d.width}x{d.height}) · {d.decoder} · "
               f"precision {prec} · {d.seconds:.1f} s", err=True)
    click.echo(d.text)


def _markdown(ctx, files: list[str]) -> str:
    """The context's messages as markdown: a heading per message, text parts
    as they are, each page image named (id, tier, size) and linked to its
    file when --out wrote one."""
    out: list[str] = []
    image = 0
    for msg in ctx.messages:
        out.append(f"## {msg.get('role', '?')}")
        content = msg.get("content")
        parts = content if isinstance(content, list) else [{"type": "text", "text": content}]
        for part in parts:
            if part.get("type") == "text":
                if part.get("text"):  # (a turn that only calls tools has no text)
                    out.append(str(part["text"]))
            elif part.get("type") == "image":
                page = ctx.pages[image] if image < len(ctx.pages) else None
                label = (f"page {image + 1}: {page.page_id or 'pending'}, {page.tier}, "
                         f"{page.width}x{page.height}" if page else f"image {image + 1}")
                out.append(f"![{label}]({files[image]})" if image < len(files)
                           else f"[{label}; --out writes the image]")
                image += 1
        out += [_tool_call_line(call) for call in msg.get("tool_calls") or []]
    return "\n\n".join(out)


def _tool_call_line(call: Any) -> str:
    """A stored tool call (OpenAI or LangChain shape, as it was given) as one line."""
    from optical_memory.errors import InputError
    from optical_memory.ingest import tool_call

    try:
        call_id, name, args = tool_call(call, "tool call")
    except InputError:
        return f"tool call: `{json.dumps(call, ensure_ascii=False, default=str)}`"
    return f"tool call `{name}` ({call_id}): `{args}`"


@main.command()
@click.option("--budget", type=click.IntRange(1), required=True,
              help="Token budget of the context.")
@click.option("--keep-last", type=click.IntRange(0), default=None,
              help="Recent turns kept as text (default 8).")
@click.option("--system", default=None, help="System message text.")
@click.option("--query", default=None,
              help="A question: the passages matching it that sit on aged or dropped pages "
                   "come too, re-drawn at full resolution or as exact text (whichever costs "
                   "less; the accounting's query row).")
@click.option("--exact-spans", type=click.Choice(["auto", "always", "off"]), default="off",
              show_default=True,
              help="IDs and numbers on the pages that read back poorly from pixels, given again "
                   "as exact text inside the budget (auto: where it pays per recalled value; "
                   "the accounting's exact-values row).")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Write the page images here (a new or empty folder).")
@click.option("--force", is_flag=True,
              help="Reuse a non-empty --out (its old page-*.png files are removed first).")
@click.option("--print", "print_as", type=click.Choice(["json", "markdown"]), default=None,
              help="Print the context's messages (json: the messages as the model gets them, "
                   "images inline as base64; markdown: readable, images linked to --out).")
@_scope_options
@_model_options
@click.option("--json", "as_json", is_flag=True, help="Print the accounting as JSON.")
def context(budget, keep_last, system, query, exact_spans, out, force, print_as, store, user_id,
            agent_id, session_id, target, decoder, tokenizer, as_json):
    """Build a context within --budget tokens and print its accounting (or,
    with --print, its messages)."""
    if print_as and as_json:
        raise click.UsageError("--print and --json both print to stdout; choose one")
    with _open(store, target, decoder, tokenizer) as mem:
        folder = out_folder(out, force) if out else None
        ctx = mem.context(budget, target=target, keep_last=keep_last, system=system,
                          query=query, exact_spans=exact_spans,
                          **_scope(user_id, agent_id, session_id))
    written = _write_pages(ctx, folder) if folder is not None else []
    if print_as == "json":
        click.echo(json.dumps(ctx.messages, ensure_ascii=False, indent=2))
    elif print_as == "markdown":
        click.echo(_markdown(ctx, written))
    elif as_json:
        data = ctx.accounting.to_dict()
        data["page_files"] = written
        data["messages"] = len(ctx.messages)
        _emit_json(data)
        return
    else:
        _print_accounting(ctx.accounting, f"context within {budget} tokens")
    if written and not as_json:
        click.echo(f"wrote {len(written)} page image(s) to {out}", err=bool(print_as))


@main.command()
@_scope_options
@click.option("--json", "as_json", is_flag=True, help="Print the totals as JSON.")
def stats(store, user_id, agent_id, session_id, as_json):
    """Totals under the scope: items, pages per tier, tokens, bytes."""
    with _open(store) as mem:
        st = mem.stats(**_scope(user_id, agent_id, session_id))
    data = {"items": st.items, "pages": st.pages, "renditions": st.renditions,
            "text_tokens": st.text_tokens, "page_png_bytes": st.page_png_bytes,
            "rendition_bytes": st.rendition_bytes, "tiers": st.tiers}
    if as_json:
        _emit_json(data)
        return
    print_table(("what", "value"),
                [(key, ", ".join(f"{k}: {v}" for k, v in value.items())
                  if isinstance(value, dict) else str(value)) for key, value in data.items()],
                title="memory stats", right=("value",))


@main.command()
@click.option("--force", is_flag=True, help="Also page waiting turns that do not fill a page.")
@_scope_options
@_model_options
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def compact(force, store, user_id, agent_id, session_id, target, decoder, tokenizer, as_json):
    """Page old turns and move aged pages down their tiers."""
    with _open(store, target, decoder, tokenizer) as mem:
        res = mem.compact(force=force, **_scope(user_id, agent_id, session_id))
    if as_json:
        _emit_json({"page_ids": list(res.page_ids), "items_paged": res.items_paged,
                    "moved": res.moved})
    else:
        moved = ", ".join(f"{n} → {t}" for t, n in res.moved.items()) or "none"
        click.echo(f"{len(res.page_ids)} new page(s) from {res.items_paged} turn(s); "
                   f"moved: {moved}")


@main.command()
@click.option("--no-decode", is_flag=True, help="Skip the read-back (sizes and ratios only).")
@_model_options
@click.option("--json", "as_json", is_flag=True, help="Print the tiers as JSON.")
def tiers(no_decode, target, decoder, tokenizer, as_json):
    """Each age tier: size, vision tokens, ratio and read-back on a sample page.

    Which tiers count as legible is judged, as the memory judges its pages,
    on the calibrated read-back; with --verify on what this page read back.
    """
    from optical_memory.fit import layout_origin

    with _open(":memory:", target, decoder, tokenizer) as mem:
        if mem.aging.verify and no_decode:
            raise click.UsageError("--verify judges the tiers by reading the sample page "
                                   "back; it cannot go with --no-decode")
        reports = mem.measure_tiers(decode=not no_decode)
        unit, floor, mode = mem.aging.unit, mem.aging.min_readback, mem.aging.mode
        font_px = mem.render_config.font_size
        origin = layout_origin(mem.calibration, decoder, target)
        by = _calibrated_by(mem.calibration, decoder, reports)
        measured = mem.aging.verify
    rows = [{"tier": r.tier, "max_age": r.max_age, "unit": unit, "width": r.width,
             "height": r.height, "vision_tokens": r.vision_tokens, "text_tokens": r.text_tokens,
             "ratio": round(r.ratio, 2), "method": r.method,
             "precision": None if r.precision is None else round(r.precision, 4),
             "calibrated": r.calibrated, "calibrated_source": r.calibrated_source,
             "calibrated_by": by, "legible_from": "measured" if measured else "calibrated",
             "legible": _legible(r.precision if measured else r.calibrated, floor)}
            for r in reports]
    if as_json:
        _emit_json(rows)
        return

    def verdict(value: float | None, judged: bool) -> str:
        if value is None:
            return "-"
        return f"{value:.3f}" + (f" ({'legible' if value >= floor else 'faded'})"
                                 if judged else "")

    cols = ("tier", f"age ≤ ({unit})", "size", "vision tokens", "text tokens", "ratio",
            f"read-back ({decoder}, this page)", f"calibrated read-back ({by})", "image")
    print_table(cols, [(r["tier"], "∞" if r["max_age"] is None else str(r["max_age"]),
                        f"{r['width']}x{r['height']}", str(r["vision_tokens"]),
                        str(r["text_tokens"]), f"{r['ratio']:.1f}x",
                        verdict(r["precision"], measured),
                        verdict(r["calibrated"], not measured), r["method"])
                       for r in rows],
                title=f"age tiers for {target} (sample page: synthetic agent conversation)",
                caption=(f"tokenizer {tokenizer} · layout {font_px:g} px from {origin} · "
                         f"age mode {mode}: "
                         + (f"pages shrink only to tiers reading back ≥ {floor:g}"
                            + (" (--verify: as measured on each page)" if measured else "")
                            if mode == "legible"
                            else "pages shrink with age regardless of read-back")
                         + (" · shipped figures: held-out pages, benchmarks/tier_methods.py; "
                            "a served model may read otherwise: `optical-memory calibrate` "
                            "measures yours" if mem.calibration is None else "")),
                right=cols[1:])


def _legible(readback: float | None, floor: float) -> bool | None:
    """Whether a tier reading back ``readback`` stays legible (``None``: unknown)."""
    return None if readback is None else readback >= floor


def _calibrated_by(calibration, decoder: str, reports) -> str:
    """Who measured the calibrated column: the user's calibration, or the
    shipped one (CPU readers), or nobody for this decoder."""
    from optical_memory.fit import CPU_READERS

    if any(r.calibrated_source == "user-calibrated" for r in reports):
        return calibration.label
    if all(r.calibrated is None for r in reports):
        return f"none for {decoder}: run `optical-memory calibrate`"
    kind = "CPU reader" if decoder in CPU_READERS else "reader"
    return f"shipped, {kind} {decoder}"


def _demo_out() -> Path:
    """The demo's default page folder: ``demo/`` under the data home."""
    from optical_memory.store.paths import data_dir

    return data_dir() / "demo"


#: How to install tesseract, per platform (printed by `demo` when it is missing).
TESSERACT_INSTALL = ("Debian/Ubuntu: sudo apt-get install tesseract-ocr tesseract-ocr-eng · "
                     "Fedora: sudo dnf install tesseract · macOS: brew install tesseract · "
                     "Windows: the UB Mannheim installer (github.com/UB-Mannheim/tesseract/wiki)")


def _demo_decoder(decoder: str) -> tuple[str | None, str | None]:
    """(decoder to read the needle's page with, why ``decoder`` cannot run).
    When ``decoder`` cannot run here, the bundled native reader (numpy only)
    stands in; ``None`` when neither can."""
    from optical_memory.decode import available_decoders

    avail = available_decoders()
    if avail.get(decoder) is True:
        return decoder, None
    why = str(avail.get(decoder, "unknown decoder"))
    return ("native" if avail.get("native") is True else None), why


@main.command()
@click.option("--turns", type=click.IntRange(20), default=2000, show_default=True,
              help="Messages in the synthetic conversation.")
@click.option("--budget", type=click.IntRange(1), default=32000, show_default=True,
              help="Context budget (tokens).")
@click.option("--seed", type=int, default=0, show_default=True, help="Conversation seed.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Folder for the page images, new or empty (or --force).  [default: demo/ "
                   "in the data folder: $OPTICAL_MEMORY_HOME, else the platform's; "
                   "replaced on each run]")
@click.option("--force", is_flag=True,
              help="Reuse a non-empty --out (its old page-*.png files are removed first).")
@click.option("--store", default=None, metavar="PATH|URL",
              help="Store (default: the embedded one).")
@_model_options
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def demo(turns, budget, seed, out, force, store, target, decoder, tokenizer, as_json):
    """The main job: ingest a long agent conversation, build a context, show the savings.

    Generates a realistic agent session (tool calls, code, numbers; no
    download), stores it under a fresh session, builds a context for
    --target within --budget, prints the savings table, writes the pages to
    --out, and reads the page holding a planted fact back with the decoder.
    When --decoder cannot run here (e.g. tesseract not installed) it says
    why and reads the page with the bundled native reader (the default) instead.
    """
    from optical_memory.conversation import generate_conversation

    if out is None:
        out, force = str(_demo_out()), True  # the demo's own folder: last run's pages go
    folder = out_folder(out, force)
    read_with, missing = _demo_decoder(decoder)
    if missing is not None:
        hint = f"  install tesseract: {TESSERACT_INSTALL}\n" if decoder == "tesseract" else ""
        click.echo(f"note: decoder {decoder!r} cannot run here: {missing}.\n"
                   + hint +
                   "  without it the demo still stores the conversation, builds the context, "
                   "writes the pages and finds the fact; "
                   + (f"the read-back uses the bundled {read_with!r} reader instead."
                      if read_with else "the read-back is skipped."), err=True)
    conv = generate_conversation(turns=turns, seed=seed, needle_depth=NEEDLE_DEPTH)
    assert conv.needle is not None
    scope = _scope("demo", None, f"demo-{uuid.uuid4().hex[:12]}")
    system = "You are a helpful engineering assistant. Earlier turns are given as page images."
    with _open(store, target, decoder, tokenizer, create=True) as mem:
        _, _pages, _tokens = _ingest(mem, conv.messages, scope, "ingesting")
        # end of the session: every turn older than the recent window goes onto
        # stored pages (also a last, partly filled one), so all of it is retrievable
        mem.compact(force=True, **scope)
        ctx = mem.context(budget, target=target, system=system, **scope)
        written = _write_pages(ctx, folder)
        hits = mem.retrieve(conv.needle.keywords, k=1, **scope)
        needle: dict[str, Any] = {"fact": conv.needle.fact, "retrieved": bool(hits),
                                  "decoder": read_with}
        if missing is not None:
            needle["decoder_missing"] = missing
        if hits and hits[0].page_id and read_with:
            d = mem.decode(hits[0], decoder=read_with, **scope)
            needle.update(page_id=d.page_id, tier=d.tier, size=f"{d.width}x{d.height}",
                          precision=d.precision, read_back=_found(conv.needle.answer, d.text))
            if not needle["read_back"] and d.tier != mem.aging.names[0]:
                m = mem.decode(hits[0], tier=mem.aging.names[0], decoder=read_with, **scope)
                needle.update(master_precision=m.precision,
                              read_back_master=_found(conv.needle.answer, m.text))
    acc = ctx.accounting
    if as_json:
        _emit_json({"messages": len(conv.messages), "user": scope["user_id"],
                    "session": scope["session_id"],
                    "accounting": acc.to_dict(), "page_files": len(written), "out": out,
                    "needle": needle})
        return
    con = console()
    con.print(f"conversation: {len(conv.messages)} messages, {conv.text_tokens} text tokens "
              f"({tokenizer}); stored under user {scope['user_id']}, session {scope['session_id']}")
    _print_accounting(acc, f"context for {target} within {budget} tokens")
    con.print(f"{len(written)} page image(s) written to {out}/")
    line = f"needle: {needle['fact']!r} retrieved={needle['retrieved']}"
    if "tier" in needle:
        line += (f"; its page ({needle['tier']}, {needle['size']}) read back by {read_with}: "
                 f"precision {needle['precision']:.3f}, "
                 f"fact {'found' if needle['read_back'] else 'NOT found'}")
    elif hits and not hits[0].page_id:
        line += "; it is in the recent turns, kept as text"
    elif missing is not None:
        line += f"; not read back ({decoder} missing: see the note above)"
    if "read_back_master" in needle:
        line += (f"; at the master resolution: precision {needle['master_precision']:.3f}, fact "
                 f"{'found' if needle['read_back_master'] else 'NOT found'}")
    con.print(line)
