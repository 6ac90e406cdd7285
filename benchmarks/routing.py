"""Text or pixels per span: exact read-back of IDs and numbers per tier, and
needle recall with the exact-value block off and on.

1. **Read-back table** (``--write-table`` stores it in the package as
   ``optical_memory/data/exact_spans.json``, the table the context builder
   uses): values of each span kind (UUIDs, hex hashes, API-key-like
   tokens, long numbers, symbol-dense tokens, and plain words as a control)
   in tool-result lines, laid out at the memory's default layout for
   DeepSeek-OCR base (1024² master), read back by the ``native`` reader at
   every age tier; a value counts when its exact characters come back
   (case-sensitive, whitespace ignored).
2. **Haystacks** with many IDs and numbers (``ids-chat``: an agent session
   whose tool results carry order numbers, UUIDs, commit hashes, amounts and
   keys, the threshold's tuning set; ``ids-docs``: documentation paragraphs
   with ID tables, a different generator, held out), needles asked by their
   key at spread ages, budgets 4k/8k/16k on deepseek-ocr:base, pages aged in
   ``fade`` mode, ``context(B, exact_spans=...)`` off / auto / always: a
   needle counts when its value is in the context's text or read back exactly
   (native reader) from a page of the context that holds it.

Writes ``benchmarks/results/routing.md``; rows go to ``benchmarks/routing/``
(not in git). Run: ``python benchmarks/routing.py [--write-table] [--quick]``
(``--table-only``: just the table). Refresh the table after new reader
weights: ``python benchmarks/routing.py --write-table --table-only``.
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import platform
import random
import re
import string
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optical_memory import OpticalMemory
from optical_memory.age import AgePolicy
from optical_memory.context.routing import TABLE_FILE, find_spans

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "routing.md"
RUN = HERE / "routing"
TABLE = HERE.parent / "optical_memory" / "data" / TABLE_FILE
TARGET = "deepseek-ocr:base"
DECODER = "native"
KINDS = ("uuid", "hex", "key", "digits", "symbols", "words")
_USER = "routing"
_WORDS = ("amber", "river", "silent", "granite", "meadow", "copper", "lantern", "harbor",
          "willow", "quartz", "falcon", "orchard", "summit", "velvet", "ember", "cobalt")
_NAMES = ("Bergström", "Okafor", "Nakamura", "Dubois", "Kowalski", "Haddad", "Ferreira",
          "Lindqvist", "Moreau", "Petrov", "Castillo", "Nguyen", "Schäfer", "Oyelaran",
          "Tanaka", "Novak", "Rossi", "Ivanova", "Mbeki", "Larsen", "Quinn", "Varga", "Ortiz",
          "Sato", "Keller", "Abiodun", "Horvath", "Jensen", "Marchetti", "Yilmaz")


def make_value(kind: str, rng: random.Random) -> str:
    """A random value of ``kind`` (what the detector calls it, or ``words``)."""
    b62 = string.ascii_letters + string.digits
    if kind == "uuid":
        return str(uuid.UUID(int=rng.getrandbits(128)))
    if kind == "hex":
        n = rng.choice((12, 16, 40))
        while True:
            v = f"{rng.getrandbits(4 * n):0{n}x}"
            if re.search(r"[a-f]", v) and re.search(r"\d", v):
                return v
    if kind == "key":
        while True:
            v = rng.choice(("sk-", "pk_live_", "ghp_", "")) + "".join(
                rng.choice(b62) for _ in range(rng.choice((20, 24, 32))))
            if find_spans(v, ("key",)):
                return v
    if kind == "digits":
        d = lambda n: "".join(rng.choice(string.digits) for _ in range(n))  # noqa: E731
        return rng.choice((
            lambda: f"{rng.randint(1, 9)}{d(rng.randint(6, 10))}",
            lambda: f"{d(4)}-{d(4)}-{d(3)}",
            lambda: f"{rng.randint(1, 999)},{d(3)},{d(3)}.{d(2)}",
            lambda: f"+{rng.randint(1, 49)} {d(3)} {d(3)} {d(4)}",
        ))()
    if kind == "symbols":
        sym = "{}[]<>|\\^~$@#%&*=;!?"
        while True:
            v = "".join(rng.choice(sym) if rng.random() < 0.45 else rng.choice(b62)
                        for _ in range(rng.randint(10, 16)))
            spans = find_spans(v)
            if spans and spans[0].kind == "symbols" and spans[0].text == v:
                return v
    if kind == "words":
        return " ".join(rng.sample(_WORDS, 2))
    raise ValueError(kind)


def exact_in(value: str, text: str) -> bool:
    """``value`` occurs in ``text``, case-sensitive, whitespace ignored (a
    line break where the page wrapped is not a different value)."""
    return bool(text) and re.sub(r"\s+", "", value) in re.sub(r"\s+", "", text)


# --------------------------------------------------------------------------- table


def _memory(keep_last: int) -> OpticalMemory:
    """The benchmark's memory: DeepSeek base, default layout, pages aged by
    age alone (``fade``: what they still read back is what is measured)."""
    return OpticalMemory(":memory:", target=TARGET, keep_last=keep_last,
                         aging=AgePolicy(mode="fade"))


def _weights_id() -> str:
    from optical_memory.reader.infer import default_weights

    p = default_weights()
    npz = p.parent / json.loads(p.read_text(encoding="utf-8"))["weights"]
    return hashlib.sha256(npz.read_bytes()).hexdigest()[:16]


def measure_table(per_kind: int, seed: int) -> dict[str, Any]:
    """Exact read-back of each kind at each tier (the JSON stored in the package)."""
    rng = random.Random(seed)
    values = [(k, make_value(k, rng)) for k in KINDS for _ in range(per_kind)]
    rng.shuffle(values)
    msgs = []
    for i in range(0, len(values), 4):
        parts = [f"{rng.choice(_WORDS)}_{k if k != 'words' else 'note'}: {v}"
                 for k, v in values[i:i + 4]]
        msgs.append({"role": "user", "content": "tool result: " + "; ".join(parts) + "."})
    t0 = time.perf_counter()
    mem = _memory(keep_last=0)
    ids = mem.add(msgs, user_id=_USER).item_ids
    mem.compact(user_id=_USER, force=True)
    where: dict[str, list[tuple[str, int, int]]] = {}  # item → its values' (kind, start, end)
    for n, item_id in enumerate(ids):
        text = str(msgs[n]["content"])
        for k, v in values[4 * n:4 * n + 4]:
            at = text.find(v)
            where.setdefault(item_id, []).append((k, at, at + len(v)))
    tiers = mem.aging.tiers
    hits = {(k, t.name): [0, 0] for k in KINDS for t in tiers}
    reads = 0
    for page in mem.list_pages(user_id=_USER):
        for t in tiers:
            got = mem.decode(page.id, tier=t.name, decoder=DECODER, user_id=_USER).text
            reads += 1
            for s in page.spans:
                item = mem.get_item(s.item_id, user_id=_USER)
                for k, a, b in where.get(s.item_id, ()):
                    if s.start <= a and b <= s.end and item is not None:
                        hits[(k, t.name)][0] += exact_in((item.text or "")[a:b], got)
                        hits[(k, t.name)][1] += 1
    font = mem.render_config.font_size
    table = {k: [{"tier": t.name, "side": round(mem.master_size[0] * t.scale),
                  "glyph_px": round(font * t.scale, 3),
                  "exact": round(hits[(k, t.name)][0] / max(1, hits[(k, t.name)][1]), 4),
                  "n": hits[(k, t.name)][1]} for t in tiers] for k in KINDS}
    cfg = mem.render_config
    meta = {
        "generated_by": "python benchmarks/routing.py --write-table",
        "date": datetime.date.today().isoformat(),
        "decoder": DECODER, "reader_weights_sha256_16": _weights_id(),
        "target": TARGET,
        "layout": {"width": cfg.width, "height": cfg.height, "font_size": font,
                   "line_spacing": cfg.line_spacing, "newline_mode": cfg.newline_mode},
        "tiers": {t.name: t.scale for t in tiers},
        "values_per_kind": per_kind, "seed": seed, "pages": len(mem.list_pages(user_id=_USER)),
        "reads": reads, "seconds": round(time.perf_counter() - t0, 1),
        "scoring": "value's exact characters in the page's read-back, case-sensitive, "
                   "whitespace ignored; values in tool-result lines, 4 per line",
        "glyph_px": "layout font size x tier scale; the rule interpolates between rows",
    }
    mem.close()
    return {"version": 1, "meta": meta, "table": table}


def table_markdown(data: dict[str, Any]) -> list[str]:
    tiers = [r["tier"] for r in next(iter(data["table"].values()))]
    sides = [r["side"] for r in next(iter(data["table"].values()))]
    head = "| kind | " + " | ".join(f"{t} ({s}²)" for t, s in zip(tiers, sides)) + " | n per cell |"
    out = [head, "|---|" + "---:|" * (len(tiers) + 1)]
    for k, rows in data["table"].items():
        out.append(f"| {k} | " + " | ".join(f"{100 * r['exact']:.0f}%" for r in rows)
                   + f" | {rows[0]['n']} |")
    return out


# --------------------------------------------------------------------------- haystacks


@dataclass(frozen=True)
class Needle:
    """A value asked by its key, planted in message ``index``."""

    key: str
    kind: str
    value: str
    index: int
    age_tokens: int = 0


_FIELDS = (("order number", "digits"), ("customer id", "uuid"), ("commit", "hex"),
           ("amount", "digits"), ("api key", "key"), ("phone", "digits"))


def _filler(tokens: int, seed: int) -> list[dict[str, Any]]:
    from optical_memory.conversation import generate_conversation

    return [dict(m) for m in generate_conversation(tokens=tokens, seed=seed).messages]


def ids_chat(tokens: int, seed: int) -> tuple[list[dict[str, Any]], list[Needle]]:
    """An agent session: ordinary turns, and every few turns a lookup whose
    tool result carries an order's IDs and numbers (one record per customer)."""
    rng = random.Random(seed)
    base = _filler(tokens * 2 // 3, seed)
    out: list[dict[str, Any]] = []
    needles: list[Needle] = []
    n_rec = 0
    for i, m in enumerate(base):
        out.append(m)
        if i % 6 != 5 or m.get("tool_calls"):
            continue
        name = f"{rng.choice(_NAMES)}-{n_rec}"
        call = f"call_r{n_rec}"
        rec = {f: make_value(k, rng) for f, k in _FIELDS}
        out.append({"role": "assistant", "content": "",
                    "tool_calls": [{"id": call, "type": "function", "function": {
                        "name": "lookup_order", "arguments": json.dumps({"customer": name})}}]})
        out.append({"role": "tool", "tool_call_id": call, "content": json.dumps(
            {"customer": name, **{f.replace(" ", "_"): v for f, v in rec.items()},
             "status": rng.choice(("shipped", "pending", "refunded"))})})
        out.append({"role": "assistant", "content": f"Found the order for {name}; "
                    f"status noted."})
        for f, k in _FIELDS:
            needles.append(Needle(f"the {f} of {name}", k, rec[f], len(out) - 2))
        n_rec += 1
    return out, needles


def ids_docs(tokens: int, seed: int) -> tuple[list[dict[str, Any]], list[Needle]]:
    """Documentation read by an agent: prose paragraphs, and release notes
    with a table of services and their build hashes, ports, release ids and
    keys (a different generator from ``ids_chat``; not tuned on)."""
    from optical_memory.niah.haystack import corpus_text

    rng = random.Random(seed + 1000)
    paras = [p.strip() for p in corpus_text("pydoc").split("\n\n") if p.strip()]
    out: list[dict[str, Any]] = []
    needles: list[Needle] = []
    total, i, n_tab = 0, rng.randrange(len(paras)), 0
    while total < tokens * 4:  # chars
        body = "\n\n".join(paras[(i + j) % len(paras)] for j in range(3))
        i += 3
        if len(out) % 3 == 2:
            rows = []
            for _ in range(3):
                svc = f"{rng.choice(_WORDS)}-{rng.choice(_WORDS)}-{n_tab}"
                vals = {"build": make_value("hex", rng), "release": make_value("uuid", rng),
                        "ticket": make_value("digits", rng), "token": make_value("key", rng)}
                rows.append(f"| {svc} | {vals['build']} | {vals['release']} | "
                            f"{vals['ticket']} | {vals['token']} |")
                for f, v in vals.items():
                    kind = "hex" if f == "build" else "uuid" if f == "release" else (
                        "digits" if f == "ticket" else "key")
                    needles.append(Needle(f"the {f} of service {svc}", kind, v, len(out)))
                n_tab += 1
            body += ("\n\nRelease notes:\n| service | build | release id | ticket | token |\n"
                     "|---|---|---|---|---|\n" + "\n".join(rows))
        out.append({"role": "user", "content": body})
        total += len(body)
    return out, needles


HAYSTACKS = {"ids-chat": ids_chat, "ids-docs": ids_docs}
#: Recent turns kept as text: fewer for the documents, whose messages are long.
KEEP_LAST = {"ids-chat": 8, "ids-docs": 2}


def pick_needles(needles: Sequence[Needle], msgs: Sequence[dict[str, Any]], counter, count: int,
                 rng: random.Random) -> list[Needle]:
    """``count`` needles spread over the history's age (stratified), with
    their age in tokens (the messages after them, as text)."""
    from optical_memory.niah.baselines import message_cost

    after, acc = [0] * len(msgs), 0
    for i in range(len(msgs) - 1, -1, -1):
        after[i] = acc
        acc += message_cost(msgs[i], counter)
    ordered = sorted(needles, key=lambda n: n.index)
    step = max(1, len(ordered) // count)
    picked = [rng.choice(ordered[j:j + step]) for j in range(0, len(ordered) - step + 1, step)]
    return [Needle(n.key, n.kind, n.value, n.index, after[n.index]) for n in picked[:count]]


def run_haystack(name: str, tokens: int, seed: int, budgets: Sequence[int],
                 modes: Sequence[str], needles_n: int, reads: dict[Any, str]
                 ) -> list[dict[str, Any]]:
    """Rows (one per budget, mode and needle)."""
    msgs, pool = HAYSTACKS[name](tokens, seed)
    mem = _memory(keep_last=KEEP_LAST[name])
    needles = pick_needles(pool, msgs, mem.counter, needles_n, random.Random(seed))
    ids: list[str] = []
    for i in range(0, len(msgs), 500):
        ids += mem.add(msgs[i:i + 500], user_id=_USER).item_ids
    mem.compact(user_id=_USER, force=True)
    pages = mem.list_pages(user_id=_USER)
    holding: dict[str, set[str]] = {}
    for n in needles:
        item = mem.get_item(ids[n.index], user_id=_USER)
        at = (item.text or "").find(n.value) if item else -1
        holding[n.key] = {p.id for p in pages for s in p.spans if s.item_id == ids[n.index]
                          and s.start <= at and at + len(n.value) <= s.end}
    rows = []
    for budget in budgets:
        for mode in modes:
            mem.context(budget, user_id=_USER, exact_spans=mode)  # warm the image cache
            t0 = time.perf_counter()
            ctx = mem.context(budget, user_id=_USER, exact_spans=mode)
            build_s = time.perf_counter() - t0
            acc = ctx.accounting
            text = "\n".join(_texts(ctx.messages))
            for n in needles:
                how = None
                if exact_in(n.value, text):
                    how = "text"
                else:
                    for p in ctx.pages:
                        if p.page_id in holding[n.key]:
                            rec = mem.get_page(p.page_id, user_id=_USER)
                            key = (hashlib.sha256(rec.png).hexdigest() if rec else p.page_id,
                                   p.tier)
                            if key not in reads:
                                reads[key] = mem.decode(p.page_id, tier=p.tier, decoder=DECODER,
                                                        user_id=_USER).text
                            if exact_in(n.value, reads[key]):
                                how = f"page:{p.tier}"
                                break
                tier = next((p.tier for p in ctx.pages if p.page_id in holding[n.key]), None)
                rows.append({"haystack": name, "seed": seed, "budget": budget, "mode": mode,
                             "key": n.key, "kind": n.kind, "age_tokens": n.age_tokens,
                             "tier": tier or ("text" if how == "text" else "dropped"),
                             "recalled": how is not None, "how": how,
                             "context_tokens": acc.context_tokens,
                             "exact_span_tokens": acc.exact_span_tokens,
                             "exact_spans": acc.exact_spans,
                             "pixel_tokens": acc.page_vision_tokens,
                             "text_tokens": acc.context_tokens - acc.page_vision_tokens,
                             "pages": acc.pages, "history_tokens": acc.history_text_tokens,
                             "build_s": round(build_s, 3)})
    mem.close()
    return rows


def _texts(messages: Sequence[dict[str, Any]]) -> list[str]:
    out = []
    for m in messages:
        c = m.get("content")
        if isinstance(c, str):
            out.append(c)
        elif isinstance(c, list):
            out += [b.get("text", "") for b in c if b.get("type") == "text"]
    return out


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def summary(rows: Sequence[dict[str, Any]], modes: Sequence[str]) -> list[str]:
    out = ["| haystack | budget | mode | recall | context tokens (mean per seed) | of which text / pixels | "
           "exact block tokens (spans) | recalled per 1k tokens | recalled by where `off` has "
           "it: text / base / small / tiny / dropped |", "|---|---:|---|---:|---:|---:|---:|---:|---|"]
    for hs in dict.fromkeys(r["haystack"] for r in rows):
        for b in sorted({r["budget"] for r in rows}):
            for m in modes:
                sel = [r for r in rows if (r["haystack"], r["budget"], r["mode"]) == (hs, b, m)]
                if not sel:
                    continue
                ctxs = list({r["seed"]: r for r in sel}.values())  # one context per seed

                def avg(field: str, ctxs: list[dict[str, Any]] = ctxs) -> float:
                    return _mean([c[field] for c in ctxs])

                got = sum(r["recalled"] for r in sel)
                # where the context without the block has each needle
                off = {(r["seed"], r["key"]): r["tier"] for r in rows
                       if (r["haystack"], r["budget"], r["mode"]) == (hs, b, "off")}
                by = []
                for t in ("text", "base", "small", "tiny", "dropped"):
                    s = [r for r in sel if off.get((r["seed"], r["key"])) == t]
                    by.append(f"{sum(r['recalled'] for r in s)}/{len(s)}" if s else "-")
                out.append(
                    f"| {hs} | {b // 1000}k | {m} | {got}/{len(sel)} ({100 * got / len(sel):.0f}%)"
                    f" | {avg('context_tokens'):,.0f} | {avg('text_tokens'):,.0f} / "
                    f"{avg('pixel_tokens'):,.0f} | {avg('exact_span_tokens'):,.0f} "
                    f"({avg('exact_spans'):.0f}) | "
                    f"{1000 * got / len(ctxs) / avg('context_tokens'):.2f} | {' / '.join(by)} |")
    return out


def by_kind(rows: Sequence[dict[str, Any]], modes: Sequence[str]) -> list[str]:
    kinds = sorted({r["kind"] for r in rows})
    out = ["| haystack | mode | " + " | ".join(kinds) + " |", "|---|---|" + "---:|" * len(kinds)]
    for hs in dict.fromkeys(r["haystack"] for r in rows):
        for m in modes:
            cells = []
            for k in kinds:
                s = [r for r in rows if (r["haystack"], r["mode"], r["kind"]) == (hs, m, k)]
                cells.append(f"{sum(r['recalled'] for r in s)}/{len(s)}" if s else "-")
            out.append(f"| {hs} | {m} | " + " | ".join(cells) + " |")
    return out


def findings(rows: Sequence[dict[str, Any]]) -> list[str]:
    """One line per haystack and mode: recall and tokens against ``off``, over all budgets."""
    out = []
    for hs in dict.fromkeys(r["haystack"] for r in rows):
        base = [r for r in rows if r["haystack"] == hs and r["mode"] == "off"]
        b_rec = sum(r["recalled"] for r in base)
        b_tok = sum({(r["seed"], r["budget"]): r["context_tokens"] for r in base}.values())
        for m in ("auto", "always"):
            sel = [r for r in rows if r["haystack"] == hs and r["mode"] == m]
            if not sel:
                continue
            rec = sum(r["recalled"] for r in sel)
            tok = sum({(r["seed"], r["budget"]): r["context_tokens"] for r in sel}.values())
            out.append(f"- {hs}, {m} vs off, all budgets together: needles recalled {rec} vs "
                       f"{b_rec} of {len(sel)}, context tokens {tok:,} vs {b_tok:,} "
                       f"({100 * (tok - b_tok) / b_tok:+.0f}%), recalled per 1k tokens "
                       f"{1000 * rec / tok:.2f} vs {1000 * b_rec / b_tok:.2f}.")
    for m in ("off", "auto", "always"):
        sel = {(r["haystack"], r["seed"], r["budget"]): r["build_s"] for r in rows
               if r["mode"] == m}
        if sel:
            out.append(f"- `context()` time, {m}: {_mean(list(sel.values())):.2f} s on average "
                       f"(max {max(sel.values()):.2f} s; pages' images cached).")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write-table", action="store_true",
                    help=f"measure the read-back table and store it as {TABLE.name} in the package")
    ap.add_argument("--table-only", action="store_true")
    ap.add_argument("--per-kind", type=int, default=120, help="values per kind in the table")
    ap.add_argument("--history", type=int, default=240_000, help="history tokens per haystack")
    ap.add_argument("--budgets", default="4000,8000,16000")
    ap.add_argument("--needles", type=int, default=36)
    ap.add_argument("--seeds", default="3,4", help="haystack seeds")
    ap.add_argument("--quick", action="store_true", help="small table, 20k histories, 2 budgets")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    t0 = time.perf_counter()
    if args.quick:
        args.per_kind, args.history, args.needles = 12, 20_000, 12
        args.budgets = "2000,4000"
    if args.write_table or args.table_only:
        data = measure_table(args.per_kind, seed=11)
        print("\n".join(table_markdown(data)), flush=True)
        if args.write_table:
            TABLE.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
            print(f"wrote {TABLE}")
        if args.table_only:
            return
    from optical_memory.context.routing import ReadbackTable

    table = json.loads(TABLE.read_text(encoding="utf-8"))
    ReadbackTable.load(TABLE)  # the rule reads it; a broken file fails here
    modes = ("off", "auto", "always")
    budgets = [int(b) for b in args.budgets.split(",")]
    seeds = [int(x) for x in args.seeds.split(",")]
    rows: list[dict[str, Any]] = []
    reads: dict[Any, str] = {}
    for name in HAYSTACKS:
        for seed in seeds:
            rows += run_haystack(name, args.history, seed, budgets, modes, args.needles, reads)
        print(f"{name}: {time.perf_counter() - t0:.0f} s, {len(reads)} read-backs", flush=True)
    RUN.mkdir(parents=True, exist_ok=True)
    with open(RUN / "rows.jsonl", "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    write_report(rows, table, modes, args, time.perf_counter() - t0, len(reads))


def write_report(rows, table, modes, args, seconds: float, reads: int) -> None:
    meta = table["meta"]
    lines = [
        "# Text or pixels per span: exact values next to the pages",
        "",
        f"Generated by `python benchmarks/routing.py{' --quick' if args.quick else ''}` in "
        f"{seconds:.0f} s on {platform.machine()}, Python {platform.python_version()} (2 busy "
        f"cores; {reads} page read-backs). Text tokenizer `o200k_base` (+ 4 tokens of framing "
        "per message); vision tokens by `deepseek-ocr:base`'s accounting (1024² page 273, "
        "640² → small mode 111, 512² → tiny mode 73); decoder that read pixels back: the "
        "package's `native` CPU reader; a value is *recalled* when its exact characters "
        "(case-sensitive, whitespace ignored) are in the context's text or in the read-back "
        "of a context page that holds it. This measures what the context holds, not what a "
        "model answers; the native reader stands in for how a VLM reads the page.",
        "",
        "## Read-back table (what the rule uses)",
        "",
        f"`optical_memory/data/exact_spans.json`, made by `{meta['generated_by']}` on "
        f"{meta['date']} (reader weights sha256 {meta['reader_weights_sha256_16']}…, "
        f"{meta['values_per_kind']} values per kind, {meta['pages']} pages, layout "
        f"{meta['layout']['font_size']} px on {meta['layout']['width']}², "
        f"{meta['seconds']:.0f} s). Exact read-back per kind and tier (`words`: two plain "
        "words, the control):",
        "",
        *table_markdown(table),
        "",
        "## Needle recall, exact-value block off / auto / always",
        "",
        f"Histories of ~{args.history // 1000}k text tokens (seeds {args.seeds}), "
        f"{args.needles} needles each (per seed) spread over the history's age, pages aged by age "
        "(`AgePolicy(mode=\"fade\")`, default tiers: base ≤ 200 items, small ≤ 1000, tiny "
        "older), keep_last 8 (2 for `ids-docs`, whose messages are long). `ids-chat` (an agent session; every sixth turn a "
        "`lookup_order` whose result holds an order number, customer UUID, commit hash, "
        "amount, API key and phone) was the development set (the threshold 0.9 and the "
        "cap, 10 % of the budget, were set before the runs and not changed after); `ids-docs` (Python documentation paragraphs with release-note "
        "tables of build hashes, release UUIDs, ticket numbers and tokens) was not tuned on. "
        "Modes: `off` (pages only; the default), `auto` (copies fill the budget the pages "
        "leave unused, and past it only when a copy adds more expected facts per token than "
        "the pixels it displaces), `always` (every span below the threshold, up to the cap; "
        "the pages give way). *Recalled by where `off` has it*: needles grouped by where "
        "the context without the block has them (recent text, the tier of their page, or "
        "dropped for the budget).",
        "",
        *summary(rows, modes),
        "",
        "By span kind (all budgets):",
        "",
        *by_kind(rows, modes),
        "",
        "## Findings",
        "",
        *findings(rows),
        "",
        "What this does not show: whether a model uses the block (the recall here is the "
        "value being present, not a model's answer; the block's locator names the speaker "
        "and the words before the value, and the association with e.g. a customer name still "
        "comes from the page); how a VLM reads these values (the native reader, a small CPU "
        "line reader, is the proxy: a stronger reader lowers what the block can add).",
        "",
    ]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines)
    out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
