"""Matched-budget comparison: at one token budget, which needles does each
kind of context still hold, and how much of the history does it carry?

For a :class:`~optical_memory.niah.baselines.History` (needles at spread
ages) and each budget B, contexts are built by

==================  ========================================================
``truncation``      the most recent messages that fit B (text)
``extractive``      query-free TF-IDF sentence selection (text)
``summary``         a model's summary (only with an endpoint)
``optical-fresh``   ``OpticalMemory.context(B)`` with one tier: every page
                    at the fresh tier
``optical-tiered``  the same with the default age tiers
``optical-recall``  tiered, plus the recall tool's answer for the needle's
                    question (its call and result billed inside B)
``optical-query``   tiered, ``context(B, query=question)``
==================  ========================================================

A needle counts as recalled when its value is in the context's text, or
read back by a CPU decoder (``native`` by default) from a page image of
the context that holds it (pages not holding a needle cannot show its
unique value, so only those are read). Read-backs are cached by page image
and tier. This measures what the context *holds*.

With an answer endpoint (``MatchedConfig.answer``), what a model makes of
it is measured too: the context's messages as the method hands them (page
and query images as OpenAI ``image_url`` parts; for ``optical-recall`` the
tool call and its result after the question) are sent with the needle's
question, and the reply is scored with RULER's ``string_match_all``
(``answer_score``). ``answer_sample`` limits this to that many needles per
history, spread evenly over their ages, the same needles in every cell.
Identical requests (a text context is the same for every target) are sent
once.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from optical_memory.errors import InputError
from optical_memory.niah.answer import Answer, AnswerEndpoint, context_request, post
from optical_memory.niah.baselines import (
    HISTORY_KINDS,
    History,
    Planted,
    TextContext,
    build_history,
    extractive,
    message_cost,
    message_text,
    summarize,
    truncate,
)
from optical_memory.tokens import DEFAULT_TOKENIZER

logger = logging.getLogger(__name__)

METHODS = ("truncation", "extractive", "summary", "optical-fresh", "optical-tiered",
           "optical-recall", "optical-query")
TEXT_METHODS = ("truncation", "extractive", "summary")
_USER = "matched"
RECALL_K = 4
RECALL_MAX_CHARS = 2000


@dataclass(frozen=True)
class MatchedConfig:
    """What to run. ``crosscheck``: budgets at which the first kind, seed
    and target's ``optical-fresh`` / ``optical-tiered`` / ``optical-query``
    contexts are also read with ``crosscheck_decoder`` (column ``recalled_check``).
    ``answer``: ask a model each needle's question over each context (None:
    not run); ``answer_sample``: only that many needles per history (None: all)."""

    kinds: tuple[str, ...] = HISTORY_KINDS
    history_tokens: int = 256_000
    budgets: tuple[int, ...] = (4000, 8000, 16000, 32000)
    targets: tuple[str, ...] = ("deepseek-ocr:base", "openai:gpt-4o")
    seeds: tuple[int, ...] = (1,)
    methods: tuple[str, ...] = tuple(m for m in METHODS if m != "summary")
    decoder: str = "native"
    keep_last: int = 8
    tokenizer: str = DEFAULT_TOKENIZER
    summary: AnswerEndpoint | None = None
    crosscheck: tuple[int, ...] = ()
    crosscheck_decoder: str = "tesseract"
    answer: AnswerEndpoint | None = None
    answer_sample: int | None = None

    def __post_init__(self) -> None:
        n = self.answer_sample
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise InputError(f"answer_sample must be an int >= 1 or None (got {n!r})")
        if not self.seeds:
            raise InputError("seeds must not be empty")
        bad = [m for m in self.methods if m not in METHODS]
        if bad:
            raise InputError(f"unknown methods {bad} (known: {list(METHODS)})")
        if "summary" in self.methods and self.summary is None:
            raise InputError("the summary method needs an endpoint (summary=AnswerEndpoint(...))")
        if not self.budgets or min(self.budgets) < 256:
            raise InputError(f"budgets must be >= 256 tokens (got {list(self.budgets)})")
        for k in self.kinds:
            if k not in HISTORY_KINDS:
                raise InputError(f"history kind must be one of {HISTORY_KINDS} (got {k!r})")


class _Reader:
    """Read-backs of page images, cached by (image, tier, decoder)."""

    def __init__(self) -> None:
        self.cache: dict[tuple[str, str, str], str] = {}
        self.seconds = 0.0
        self.reads = 0

    def page(self, mem, page_id: str, tier: str, decoder: str) -> str:
        rec = mem.get_page(page_id, user_id=_USER)
        key = (hashlib.sha256(rec.png).hexdigest() if rec else page_id, tier, decoder)
        if key not in self.cache:
            t0 = time.perf_counter()
            self.cache[key] = mem.decode(page_id, tier=tier, decoder=decoder, user_id=_USER).text
            self.seconds += time.perf_counter() - t0
            self.reads += 1
        return self.cache[key]

    def png(self, png: bytes, layout: dict[str, Any], decoder: str) -> str:
        """A query image read with the layout it was drawn with (as stored
        pages are read)."""
        import numpy as np
        from PIL import Image

        from optical_memory.decode import get_decoder
        from optical_memory.types import Page

        key = (hashlib.sha256(png).hexdigest(), "png", decoder)
        if key not in self.cache:
            t0 = time.perf_counter()
            import io

            pixels = np.asarray(Image.open(io.BytesIO(png)).convert("L"))
            page = Page(pixels, "", (), float(layout.get("font_size", 0)), meta=dict(layout))
            self.cache[key] = get_decoder(decoder).decode(page).text
            self.seconds += time.perf_counter() - t0
            self.reads += 1
        return self.cache[key]


class _Asker:
    """The answer stage: one request per distinct body (cached), scored."""

    def __init__(self, endpoint: AnswerEndpoint | None, sample: int | None) -> None:
        self.endpoint = endpoint
        self.sample = sample
        self.cache: dict[str, Answer] = {}
        self.seconds = 0.0

    def keys(self, history: History) -> set[str]:
        """The needles asked about: all, or ``sample`` spread evenly by age."""
        if self.endpoint is None:
            return set()
        ns = sorted(history.needles, key=lambda n: n.age_tokens)
        if self.sample is None or self.sample >= len(ns):
            return {n.key for n in ns}
        if self.sample == 1:
            return {ns[len(ns) // 2].key}
        step = (len(ns) - 1) / (self.sample - 1)
        return {ns[round(i * step)].key for i in range(self.sample)}

    def __call__(self, messages: Sequence[dict[str, Any]], needle: Planted,
                 after: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
        """Row fields: the reply (first 200 characters) and its score."""
        assert self.endpoint is not None
        body = context_request(self.endpoint, messages, needle.question, after=after)
        key = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        if key not in self.cache:
            self.cache[key] = post(self.endpoint, body)
            self.seconds += self.cache[key].seconds
        ans = self.cache[key]
        return {"answer_score": _score(ans.text, needle.value),
                "answer_response": ans.text[:200], "answer_model": ans.model}


def _score(text: str, value: str) -> float:
    from optical_memory.niah.scoring import string_match_all

    return string_match_all(text, [value]) if text else 0.0


def _found(value: str, text: str) -> bool:
    from optical_memory.niah.scoring import string_match_all

    return bool(text) and string_match_all(text, [value]) == 1.0


def _ingest(history: History, target: str, tiered: bool, keep_last: int, tokenizer: str):
    """A fresh in-memory :class:`OpticalMemory` holding the history, all
    old turns paged; the needles' holding pages: key → page ids."""
    from optical_memory.age import AgePolicy, Tier
    from optical_memory.memory import OpticalMemory

    # tiered: pages shrink with age as DeepSeek-OCR proposed ("fade"); what
    # still reads back is what this benchmark measures
    aging = AgePolicy(mode="fade") if tiered else AgePolicy((Tier("base", None, 1.0),))
    mem = OpticalMemory(":memory:", target=target, tokenizer=tokenizer, keep_last=keep_last,
                        aging=aging)
    ids: list[str] = []
    for i in range(0, len(history.messages), 500):
        ids += mem.add(list(history.messages[i:i + 500]), user_id=_USER).item_ids
    mem.compact(user_id=_USER, force=True)
    pages = mem.list_pages(user_id=_USER)
    holding: dict[str, set[str]] = {}
    for n in history.needles:
        item = mem.get_item(ids[n.index], user_id=_USER)
        text = (item.text or "") if item else ""
        at = text.find(n.text)
        if at < 0:
            raise RuntimeError(f"needle {n.key} not in its stored item")
        holding[n.key] = {p.id for p in pages for s in p.spans if s.item_id == ids[n.index]
                          and s.start < at + len(n.text) and s.end > at}
    return mem, holding


def recall_answer(mem, question: str) -> str:
    """What the recall tool answers for ``question`` (the LangChain tool's
    shape: passages on pages first, ``[n] page <id> (tier <t>): <text>``)."""
    hits = mem.retrieve(question, k=2 * RECALL_K, user_id=_USER)
    hits = [h for h in hits if h.page_id] + [h for h in hits if not h.page_id]
    blocks = []
    for n, h in enumerate(hits[:RECALL_K], 1):
        where = f"page {h.page_id} (tier {h.tier})" if h.page_id else "recent turn"
        blocks.append(f"[{n}] {where}: {(h.text or h.snippet).strip()[:RECALL_MAX_CHARS]}")
    return "\n\n".join(blocks) or f"No stored passage matches {question!r}."


def recall_messages(question: str, answer: str) -> list[dict[str, Any]]:
    """The recall tool's round trip as chat messages: the model's call with
    ``question``, then the tool's ``answer`` (billed as the memory bills turns)."""
    call = {"id": "call_recall", "type": "function",
            "function": {"name": "recall_memory", "arguments": json.dumps({"query": question})}}
    return [{"role": "assistant", "content": "", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_recall", "content": answer}]


def where_held(ctx, history: History, holding: dict[str, set[str]]) -> dict[str, str]:
    """Needle key → where the context has it: ``"text"`` or ``"page:<tier>"``
    (the tier of the first context page holding it), whether it reads or not;
    needles it does not have are left out."""
    text = "\n".join(str(m["content"]) for m in ctx.messages if isinstance(m.get("content"), str))
    out: dict[str, str] = {}
    for n in history.needles:
        if _found(n.value, text):
            out[n.key] = "text"
            continue
        tiers = [p.tier for p in ctx.pages if p.page_id in holding[n.key]]
        if tiers:
            out[n.key] = f"page:{tiers[0]}"
    return out


def _held(ctx, history: History, holding: dict[str, set[str]], reader: _Reader, mem,
          decoder: str, extra_text: str = "") -> dict[str, str]:
    """Needle key → how the context holds it (``text``, ``page:<tier>``,
    ``query``, ``recall``) for the needles it holds."""
    text = "\n".join(str(m["content"]) for m in ctx.messages if isinstance(m.get("content"), str))
    out: dict[str, str] = {}
    query = getattr(ctx, "query", None)
    query_text = ""
    if query is not None and query.mode == "text":
        query_text = query.text
    elif query is not None and query.mode == "image":
        import base64

        query_text = "\n".join(reader.png(base64.b64decode(b), m, decoder)
                               for b, m in zip(query.images, query.layouts))
    for n in history.needles:
        if _found(n.value, text):
            out[n.key] = "text"
            continue
        for p in ctx.pages:
            if p.page_id in holding[n.key] and _found(
                    n.value, reader.page(mem, p.page_id, p.tier, decoder)):
                out[n.key] = f"page:{p.tier}"
                break
        else:
            if _found(n.value, query_text):
                out[n.key] = "query"
            elif _found(n.value, extra_text):
                out[n.key] = "recall"
    return out


def _row(history: History, needle: Planted, target: str, budget: int, method: str,
         tokens: int, carried: int, how: str | None, **extra: Any) -> dict[str, Any]:
    return {"kind": history.kind, "seed": history.seed, "target": target, "budget": budget,
            "method": method, "key": needle.key, "age_tokens": needle.age_tokens,
            "age_share": round(needle.age_tokens / history.tokens, 4),
            "history_tokens": history.tokens, "context_tokens": tokens,
            "carried_tokens": carried, "carried_share": round(carried / history.tokens, 4),
            "recalled": how is not None, "how": how, **extra}


def keep_last_for(history: History, config: MatchedConfig, counter) -> int:
    """``config.keep_last``, or fewer when the last turns would take more than
    a quarter of the smallest budget (long messages, e.g. documents)."""
    from optical_memory.niah.baselines import message_cost

    k, cost = 0, 0
    for m in reversed(history.messages[-config.keep_last:] if config.keep_last else []):
        cost += message_cost(m, counter)
        if cost > min(config.budgets) // 4:
            break
        k += 1
    return k


def _text_rows(config: MatchedConfig, history: History, counter,
               asker: _Asker) -> list[dict[str, Any]]:
    rows = []
    asked = asker.keys(history)
    for budget in config.budgets:
        for method in (m for m in config.methods if m in TEXT_METHODS):
            ctx: TextContext
            if method == "truncation":
                ctx = truncate(history.messages, budget, counter)
            elif method == "extractive":
                ctx = extractive(history.messages, budget, counter,
                                 keep_last=keep_last_for(history, config, counter))
            else:
                assert config.summary is not None
                ctx = summarize(history.messages, budget, counter, config.summary)
            for target in config.targets:
                for n in history.needles:
                    extra = asker(ctx.chat, n) if n.key in asked else {}
                    rows.append(_row(history, n, target, budget, method, ctx.tokens,
                                     ctx.carried_tokens, "text" if _found(n.value, ctx.text)
                                     else None, **extra))
    return rows


def _optical_rows(config: MatchedConfig, history: History, target: str, reader: _Reader,
                  check: bool, asker: _Asker) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    asked = asker.keys(history)
    methods = [m for m in config.methods if m.startswith("optical-")]
    mems: dict[bool, Any] = {}
    from optical_memory.tokens import get_counter

    keep = keep_last_for(history, config, get_counter(config.tokenizer))
    try:
        for tiered in sorted({m != "optical-fresh" for m in methods}):
            mems[tiered] = _ingest(history, target, tiered, keep, config.tokenizer)
        for budget in config.budgets:
            for method in methods:
                mem, holding = mems[method != "optical-fresh"]
                if method in ("optical-fresh", "optical-tiered"):
                    ctx = mem.context(budget, user_id=_USER)
                    held = _held(ctx, history, holding, reader, mem, config.decoder)
                    checked = (_held(ctx, history, holding, reader, mem,
                                     config.crosscheck_decoder)
                               if check and budget in config.crosscheck else None)
                    acc = ctx.accounting
                    where = where_held(ctx, history, holding)
                    for n in history.needles:
                        extra: dict[str, Any] = ({} if checked is None
                                                 else {"recalled_check": n.key in checked})
                        extra["in_context"] = where.get(n.key)
                        if n.key in asked:
                            extra.update(asker(ctx.messages, n))
                        rows.append(_row(history, n, target, budget, method, acc.context_tokens,
                                         acc.carried_text_tokens, held.get(n.key), **extra,
                                         tiers={k: v.pages for k, v in acc.per_tier.items()}))
                    continue
                for n in history.needles:  # per needle: the question shapes the context
                    if method == "optical-recall":
                        answer = recall_answer(mem, n.question)
                        after = recall_messages(n.question, answer)
                        cost = sum(message_cost(m, mem.counter) for m in after)
                        ctx = mem.context(budget - cost, user_id=_USER)
                        held = _held(ctx, history, holding, reader, mem, config.decoder,
                                     extra_text=answer)
                        tokens, extra = ctx.accounting.context_tokens + cost, {"query_tokens": cost}
                        if n.key in asked:
                            extra.update(asker(ctx.messages, n, after))
                    else:
                        ctx = mem.context(budget, user_id=_USER, query=n.question)
                        held = _held(ctx, history, holding, reader, mem, config.decoder)
                        acc = ctx.accounting
                        tokens = acc.context_tokens
                        extra = {"query_tokens": acc.query_tokens, "query_mode": acc.query_mode}
                        if check and budget in config.crosscheck:
                            extra["recalled_check"] = n.key in _held(
                                ctx, history, holding, reader, mem, config.crosscheck_decoder)
                        if n.key in asked:
                            extra.update(asker(ctx.messages, n))
                    rows.append(_row(history, n, target, budget, method, tokens,
                                     ctx.accounting.carried_text_tokens, held.get(n.key),
                                     **extra))
    finally:
        for mem, _ in mems.values():
            mem.close()
    return rows


def run_matched(config: MatchedConfig, *, progress: Callable[[str], None] | None = None
                ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every (kind, seed, target, budget, method, needle) as one row; and
    run facts (seconds, read-backs made)."""
    from optical_memory.tokens import get_counter

    counter = get_counter(config.tokenizer)
    reader = _Reader()
    asker = _Asker(config.answer, config.answer_sample)
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    first = True
    for kind in config.kinds:
        for seed in config.seeds:
            history = build_history(kind, config.history_tokens, counter, seed=seed)
            rows += _text_rows(config, history, counter, asker)
            for target in config.targets:
                rows += _optical_rows(config, history, target, reader, first, asker)
                first = False
                if progress is not None:
                    progress(f"{kind} seed {seed} {target}: {time.perf_counter() - t0:.0f} s, "
                             f"{reader.reads} read-backs ({reader.seconds:.0f} s)")
    facts = {"seconds": round(time.perf_counter() - t0, 1), "reads": reader.reads,
             "read_seconds": round(reader.seconds, 1), "answers": len(asker.cache),
             "answer_seconds": round(asker.seconds, 1)}
    return rows, facts


AGE_BUCKETS = ((0, 4000, "< 4k"), (4000, 16000, "4k-16k"), (16000, 64000, "16k-64k"),
               (64000, 10**12, "≥ 64k"))


def seed_pct(rows: Sequence[dict[str, Any]], field: str = "recalled") -> str:
    """The mean of ``field`` over ``rows`` as a percentage; with rows of more
    than one seed, the range of the per-seed means after it, ``45% (40–50)``
    (every seed holds the same number of needles, so the mean is the mean of
    the seeds' means)."""
    if not rows:
        return "-"
    out = _pct([r[field] for r in rows])
    seeds = sorted({r["seed"] for r in rows})
    if len(seeds) > 1:
        per = [_mean([float(r[field]) for r in rows if r["seed"] == s]) for s in seeds]
        out += f" ({100 * min(per):.0f}–{100 * max(per):.0f})"
    return out


def summary_table(rows: Sequence[dict[str, Any]], target: str) -> str:
    """Markdown: per method and budget, what the context costs and carries,
    and the share of needles it holds, per history kind and by age (with
    several seeds: the mean and the seeds' range, :func:`seed_pct`)."""
    kinds = sorted({r["kind"] for r in rows})
    methods = [m for m in METHODS if any(r["method"] == m for r in rows)]
    budgets = sorted({r["budget"] for r in rows})
    head = (["method", "budget", "context tokens"] + [f"history carried, {k}" for k in kinds]
            + [f"recall, {k}" for k in kinds] + [f"recall, age {b[2]}" for b in AGE_BUCKETS])
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * 2 + "---:|" * (len(head) - 2)]
    for m in methods:
        for b in budgets:
            sel = [r for r in rows if r["target"] == target and r["method"] == m
                   and r["budget"] == b]
            if not sel:
                continue
            cells = [m, f"{b // 1000}k", f"{_mean([r['context_tokens'] for r in sel]):,.0f}"]
            for k in kinds:
                cells.append(_pct([r["carried_share"] for r in sel if r["kind"] == k]))
            for k in kinds:
                cells.append(seed_pct([r for r in sel if r["kind"] == k]))
            for lo, hi, _ in AGE_BUCKETS:
                cells.append(seed_pct([r for r in sel if lo <= r["age_tokens"] < hi]))
            out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def answer_table(rows: Sequence[dict[str, Any]], target: str) -> str:
    """Markdown: per method and budget, the share of the needles asked that
    the model answered right (RULER's ``string_match_all``), per history kind
    and by age, next to the share of the same needles the context holds;
    empty when the answer stage did not run."""
    asked = [r for r in rows if r["target"] == target and "answer_score" in r]
    if not asked:
        return ""
    kinds = sorted({r["kind"] for r in asked})
    head = (["method", "budget", "needles asked", "recall, same needles", "answer"]
            + [f"answer, {k}" for k in kinds] + [f"answer, age {b[2]}" for b in AGE_BUCKETS])
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * 2 + "---:|" * (len(head) - 2)]
    for m in METHODS:
        for b in sorted({r["budget"] for r in asked}):
            sel = [r for r in asked if r["method"] == m and r["budget"] == b]
            if not sel:
                continue
            cells = [m, f"{b // 1000}k", str(len(sel)), seed_pct(sel),
                     seed_pct(sel, "answer_score")]
            cells += [seed_pct([r for r in sel if r["kind"] == k], "answer_score") for k in kinds]
            cells += [seed_pct([r for r in sel if lo <= r["age_tokens"] < hi], "answer_score")
                      for lo, hi, _ in AGE_BUCKETS]
            out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def query_table(rows: Sequence[dict[str, Any]], target: str) -> str:
    """Markdown: needles grouped by where the tiered context (no query) has
    them, recalled without and with ``context(query=question)`` at the same
    budget, and what the query cost."""
    key = ("kind", "seed", "budget", "key")
    plain = {tuple(r[k] for k in key): r for r in rows
             if r["target"] == target and r["method"] == "optical-tiered"}
    groups: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {}
    for r in rows:
        if r["target"] != target or r["method"] != "optical-query":
            continue
        p = plain.get(tuple(r[k] for k in key))
        if p is not None:
            where = p.get("in_context") or "not in the context (dropped for the budget)"
            groups.setdefault(where, []).append((p, r))
    out = ["| where the tiered context has the needle | needles | recalled, tiered | recalled, "
           "tiered + query | query tokens (mean) | query mode | context tokens, tiered → with "
           "query (mean) |", "|---|---:|---:|---:|---:|---|---|"]
    for where in sorted(groups):
        pairs = groups[where]
        modes = Counter(str(q.get("query_mode")) for _, q in pairs)
        out.append(
            f"| {where} | {len(pairs)} | {_pct([p['recalled'] for p, _ in pairs])} | "
            f"{_pct([q['recalled'] for _, q in pairs])} | "
            f"{_mean([q.get('query_tokens', 0) for _, q in pairs]):.0f} | "
            + ", ".join(f"{m} {c}" for m, c in modes.most_common()) + " | "
            f"{_mean([p['context_tokens'] for p, _ in pairs]):,.0f} → "
            f"{_mean([q['context_tokens'] for _, q in pairs]):,.0f} |")
    return "\n".join(out)


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def _pct(xs: Sequence[float]) -> str:
    return f"{100 * _mean([float(x) for x in xs]):.0f}%" if xs else "-"


def age_counts(rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Needles per age bucket (one method, budget, target and seed's rows)."""
    r0 = rows[0]
    sel = [r for r in rows if (r["method"], r["budget"], r["target"], r["seed"])
           == (r0["method"], r0["budget"], r0["target"], r0["seed"])]
    return {label: sum(lo <= r["age_tokens"] < hi for r in sel) for lo, hi, label in AGE_BUCKETS}


__all__ = ["AGE_BUCKETS", "METHODS", "MatchedConfig", "age_counts", "answer_table",
           "message_text", "query_table", "recall_answer", "recall_messages", "run_matched",
           "seed_pct", "summary_table", "where_held"]
