"""The context builder's pure parts: costs, atomic page groups, the budget cut,
the message layout and the accounting.

:mod:`optical_memory.context.assemble` gathers the inputs (kept turns, pages
with their tier images) and calls :func:`build_context`.

Cost model (every number in tokens of the named tokenizer / target):

- a text message costs the tokenizer count of its text plus
  :data:`MESSAGE_OVERHEAD` (4, the usual chat-format framing per message);
  a turn's text is its content plus its tool calls as drawn on pages
  (``name(arguments)`` lines), the same text whose tokens are stored;
- the page message costs :data:`MESSAGE_OVERHEAD` plus the tokens of the
  header text it is sent with (:func:`pages_header`: which pages are
  low-resolution and that their exact text can be recalled) plus each page's
  vision tokens at its tier (:mod:`optical_memory.tokens.billing`);
- ``history_text_tokens`` is what the whole history (system message, every
  stored item) would cost as text messages under the same rule.

So ``context_tokens == system + kept turns + page message (+ the query and
exact-value messages when present)`` exactly, and the
per-tier rows add up to the page totals.

Rules (Letta's): the system message and the recent turns stay text; a tool
result is never separated from its call (the text window is moved back to
include the call, and pages linked by a call/result pair are kept or dropped
together); when the budget is short the oldest pages are dropped first (they
stay stored and retrievable). An item split across pages binds them only
when it is on the newest page (a model must not get half of the message it
is answering): long messages split across every page boundary would chain
the whole history into one group, dropped whole for want of room, so the
oldest page kept may start inside an older item.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from optical_memory.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from optical_memory.context.query import QueryView
    from optical_memory.context.routing import ExactBlock
    from optical_memory.types import Span

MESSAGE_OVERHEAD = 4
PAGES_HEADER = "Earlier conversation, as page images (oldest first):"
#: What the header adds when some pages are low-resolution.
RECALL_NOTE = ("The exact text of any fact on them can be recalled with the memory's "
               "search/recall tool.")


def _runs(positions: Sequence[int]) -> str:
    """``[1, 2, 3, 5]`` → ``"1-3, 5"``."""
    out: list[str] = []
    start = prev = positions[0]
    for n in [*positions[1:], None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        out.append(str(start) if start == prev else f"{start}-{prev}")
        if n is not None:
            start = prev = n
    return ", ".join(out)


def pages_header(tiers: Sequence[str], low_tiers: Sequence[str] = ()) -> str:
    """The text opening the page message for pages at ``tiers`` (message
    order). With pages at any of ``low_tiers`` (the tiers shrunk below the
    fresh one, in the policy's order) it names them, by position (1 = the
    first image), and says their exact text can be recalled; otherwise it is
    :data:`PAGES_HEADER`."""
    parts = []
    for tier in low_tiers:
        at = [i for i, t in enumerate(tiers, 1) if t == tier]
        if at:
            parts.append(f"tier {tier}: page{'s' if len(at) > 1 else ''} {_runs(at)}")
    if not parts:
        return PAGES_HEADER
    return (f"{PAGES_HEADER[:-1]}. Low-resolution pages (shrunk with age), "
            f"{'; '.join(parts)}. {RECALL_NOTE}")


@dataclass(frozen=True)
class ContextPage:
    """One page offered to the context.

    page_id: the stored page, or ``None`` for a *pending* page (old turns not
             yet compacted, rendered on the fly and not stored).
    text_tokens: text tokens of the source characters the page holds.
    calls / results: ids of tool calls made / answered by items on the page.
    png_b64: the tier image, base64 PNG.
    readback: the page's read-back precision at its tier by the memory's
              decoder, ``readback_source`` "measured" (this page, at write
              time), "user-calibrated" (the user's own calibration of the
              decoder, ``optical-memory calibrate``) or "calibrated" (the
              shipped tier calibration, CPU readers); ``None``
              when neither is known.
    spans: the source spans the page holds (item coordinates), for the
              exact values of :mod:`optical_memory.context.routing`.
    """

    page_id: str | None
    tier: str
    width: int
    height: int
    vision_tokens: int
    text_tokens: int
    item_ids: tuple[str, ...]
    calls: tuple[str, ...] = ()
    results: tuple[str, ...] = ()
    png_b64: str = field(default="", repr=False)
    readback: float | None = None
    readback_source: str = ""
    spans: tuple[Span, ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class KeptTurn:
    """A recent turn given as text: its chat message and its token cost."""

    item_id: str
    message: Mapping[str, Any]
    tokens: int


@dataclass(frozen=True)
class TierRow:
    """Kept pages of one tier (or of the legible / faded split): their count,
    text tokens held, vision tokens, and mean read-back (text-token weighted;
    ``None`` when a page's is unknown) with its source ("measured",
    "user-calibrated", "calibrated" or "mixed")."""

    pages: int
    text_tokens: int
    vision_tokens: int
    readback: float | None = None
    readback_source: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"pages": self.pages, "text_tokens": self.text_tokens,
                "vision_tokens": self.vision_tokens,
                "readback": None if self.readback is None else round(self.readback, 4),
                "readback_source": self.readback_source}


def tier_row(pages: Sequence[ContextPage]) -> TierRow:
    """The :class:`TierRow` of ``pages``."""
    text = sum(p.text_tokens for p in pages)
    known = all(p.readback is not None for p in pages) and bool(pages)
    rb = None
    if known:
        weight = sum(max(1, p.text_tokens) for p in pages)
        rb = sum((p.readback or 0.0) * max(1, p.text_tokens) for p in pages) / weight
    sources = {p.readback_source for p in pages if p.readback_source}
    source = "" if not sources else sources.pop() if len(sources) == 1 else "mixed"
    return TierRow(len(pages), text, sum(p.vision_tokens for p in pages), rb, source)


@dataclass(frozen=True)
class Accounting:
    """What the context costs against what the history would cost as text.

    history_text_tokens: system message + every stored item, as text.
    context_tokens: what the returned messages cost (never above the budget).
    text_tokens_kept: system message + kept turns (text part of the context).
    page_vision_tokens: vision tokens of the pages in the context.
    page_text_tokens: text tokens those pages hold.
    page_message_tokens: the page message's framing (overhead + header).
    per_tier: tier → :class:`TierRow` (pages, text tokens held, vision
        tokens, read-back and its source), kept pages only.
    min_readback: the age policy's legibility floor; ``legible`` / ``faded``:
        the kept pages whose read-back is at or above it / below it or
        unknown (:class:`TierRow` each).
    dropped_pages: pages left out for the budget (still stored), holding
        dropped_text_tokens of dropped_items items (an item split across
        pages is kept or dropped whole).
    carried_text_tokens: the history the context carries, as text: the
        history less what the dropped items would cost as text messages.
    ratio: carried_text_tokens / context_tokens: the compression of what the
        context holds. History dropped for the budget is not counted as
        compressed (history_text_tokens / context_tokens would be).
    page_ratio: page_text_tokens / page_vision_tokens (the paged part).
    kept_image_tokens: vision tokens of images inside the turns kept as text
        (the LangChain compressor returns the original messages; included in
        context_tokens; 0 from the memory itself, which stores text).
    query_tokens / query_mode: what ``context(query=...)`` added (the query
        message, included in context_tokens) and how: ``"image"`` (passages
        re-drawn at full resolution), ``"text"`` (exact text), ``"none"``;
        ``""`` without a query (:mod:`optical_memory.context.query`).
    exact_span_tokens / exact_spans: the exact-value block (values on the
        pages that read back poorly from pixels, given again as text; included
        in context_tokens, not in page_vision_tokens) and how many values it
        holds (:mod:`optical_memory.context.routing`).
    """

    tokenizer: str
    target: str
    decoder: str
    budget_tokens: int
    history_text_tokens: int
    context_tokens: int
    text_tokens_kept: int
    kept_turns: int
    page_vision_tokens: int
    page_text_tokens: int
    page_message_tokens: int
    pages: int
    per_tier: dict[str, TierRow]
    dropped_pages: int
    dropped_text_tokens: int
    dropped_items: int = 0
    kept_image_tokens: int = 0
    min_readback: float | None = None
    legible: TierRow = TierRow(0, 0, 0)
    faded: TierRow = TierRow(0, 0, 0)
    query_tokens: int = 0
    query_mode: str = ""
    exact_span_tokens: int = 0
    exact_spans: int = 0

    @property
    def carried_text_tokens(self) -> int:
        return (self.history_text_tokens - self.dropped_text_tokens
                - MESSAGE_OVERHEAD * self.dropped_items)

    @property
    def ratio(self) -> float:
        return self.carried_text_tokens / self.context_tokens if self.context_tokens else 0.0

    @property
    def page_ratio(self) -> float:
        return self.page_text_tokens / self.page_vision_tokens if self.page_vision_tokens else 0.0

    def rows(self) -> list[tuple[str, str, str, str, str, str]]:
        """Table rows ``(part, pages, text tokens, context tokens, ratio,
        read-back)``; read-back "0.981 (calibrated)" / "(measured)", "?" unknown."""

        def r(text: int, cost: int) -> str:
            return f"{text / cost:.1f}x" if cost else "-"

        def rb(row: TierRow) -> str:
            if row.readback is None:
                return "?"
            return f"{row.readback:.3f}" + (f" ({row.readback_source})"
                                            if row.readback_source else "")

        out = [("system + recent turns (text)", "-", str(self.text_tokens_kept),
                str(self.text_tokens_kept), r(self.text_tokens_kept, self.text_tokens_kept),
                "exact")]
        for tier, row in self.per_tier.items():
            out.append((f"pages, tier {tier}", str(row.pages), str(row.text_tokens),
                        str(row.vision_tokens), r(row.text_tokens, row.vision_tokens), rb(row)))
        if self.kept_image_tokens:
            out.append(("images in recent turns", "-", "0", str(self.kept_image_tokens), "-",
                        "-"))
        if self.pages:
            out.append(("page message framing", "-", "0", str(self.page_message_tokens), "-",
                        "-"))
        if self.query_tokens:
            out.append((f"query: passages as {self.query_mode}", "-", "0",
                        str(self.query_tokens), "-", "-"))
        if self.exact_span_tokens:
            out.append((f"exact values from pages ({self.exact_spans}, text)", "-", "0",
                        str(self.exact_span_tokens), "-", "exact"))
        if self.dropped_pages:
            out.append(("dropped for budget (stored, retrievable)", str(self.dropped_pages),
                        str(self.dropped_text_tokens), "0", "-", "-"))
        label = ("total: history carried, as text → context" if self.dropped_pages
                 else "total: history as text → context")
        out.append((label, str(self.pages), str(self.carried_text_tokens),
                    str(self.context_tokens), r(self.carried_text_tokens, self.context_tokens),
                    "-"))
        if self.pages and self.min_readback is not None:
            floor = f"{self.min_readback:g}"
            for name, row in ((f"of which legible (read-back ≥ {floor})", self.legible),
                              (f"of which faded (read-back < {floor} or unknown)", self.faded)):
                out.append((name, str(row.pages), str(row.text_tokens), str(row.vision_tokens),
                            r(row.text_tokens, row.vision_tokens),
                            rb(row) if row.pages else "-"))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "tokenizer": self.tokenizer, "target": self.target, "decoder": self.decoder,
            "budget_tokens": self.budget_tokens,
            "history_text_tokens": self.history_text_tokens,
            "context_tokens": self.context_tokens, "text_tokens_kept": self.text_tokens_kept,
            "kept_turns": self.kept_turns,
            "page_vision_tokens": self.page_vision_tokens,
            "page_text_tokens": self.page_text_tokens,
            "page_message_tokens": self.page_message_tokens, "pages": self.pages,
            "per_tier": {k: v.to_dict() for k, v in self.per_tier.items()},
            "min_readback": self.min_readback, "legible": self.legible.to_dict(),
            "faded": self.faded.to_dict(),
            "dropped_pages": self.dropped_pages, "dropped_text_tokens": self.dropped_text_tokens,
            "dropped_items": self.dropped_items, "carried_text_tokens": self.carried_text_tokens,
            "kept_image_tokens": self.kept_image_tokens,
            "query_tokens": self.query_tokens, "query_mode": self.query_mode,
            "exact_span_tokens": self.exact_span_tokens, "exact_spans": self.exact_spans,
            "ratio": round(self.ratio, 3), "page_ratio": round(self.page_ratio, 3),
        }


@dataclass(frozen=True)
class Context:
    """messages: LangChain-style dicts (system, the page message with standard
    image blocks, then recent turns). pages: the pages in the page message,
    oldest first. header: the page message's text block (:func:`pages_header`;
    ``""`` without pages).

    vision_tokens / token_layouts: with ``context(vision_tokens=True)``, per
    page (the order of ``pages`` and of the image blocks) the DeepEncoder's
    token embeddings, a torch tensor [N, D] with N the page's billed
    ``vision_tokens``, and its :class:`~optical_memory.encoder.TokenLayout`;
    ``None`` otherwise.

    query: with ``context(query=...)``, what the query added
    (:class:`~optical_memory.context.query.QueryView`; its message follows
    the page message).

    exact: the exact-value block, when one was added
    (:class:`~optical_memory.context.routing.ExactBlock`; its message follows
    the page message).
    """

    messages: list[dict[str, Any]]
    accounting: Accounting
    pages: tuple[ContextPage, ...]
    vision_tokens: tuple[Any, ...] | None = field(default=None, repr=False)
    token_layouts: tuple[Any, ...] | None = field(default=None, repr=False)
    header: str = ""
    query: QueryView | None = None
    exact: ExactBlock | None = None


def text_message_tokens(text_tokens: int) -> int:
    """Cost of a text message whose text counts ``text_tokens``."""
    return text_tokens + MESSAGE_OVERHEAD


def extend_window(
    roles: Sequence[str | None], call_ids: Sequence[Sequence[str]], start: int
) -> int:
    """Move a window start back so no tool result in it loses its call.

    ``roles[i]`` / ``call_ids[i]`` describe turn ``i`` (for role ``"tool"``,
    the id it answers; otherwise the ids of calls it makes). Returns the new
    start ``<= start``: every tool result at or after it has its call at or
    after it too, when the call is among the turns given.
    """
    start = max(0, min(start, len(roles)))
    changed = True
    while changed:
        changed = False
        needed = {cid for i in range(start, len(roles))
                  if roles[i] == "tool" for cid in call_ids[i]}
        made = {cid for i in range(start, len(roles)) if roles[i] != "tool" for cid in call_ids[i]}
        missing = needed - made
        if missing:
            for i in range(start - 1, -1, -1):
                if roles[i] != "tool" and missing & set(call_ids[i]):
                    start, changed = i, True
                    break
    return start


def atomic_groups(pages: Sequence[ContextPage], *, split_items: bool = True
                  ) -> list[list[int]]:
    """Indices of ``pages`` grouped so a group is kept or dropped whole.

    Pages are linked when one holds a tool call another answers, and when
    they hold parts of the same item (without ``split_items``: only an item
    on the newest page, the last of ``pages``). Groups come ordered by their
    oldest page. The budget cut uses ``split_items=False``.
    """
    parent = list(range(len(pages)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(a: int, b: int) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    owner_item: dict[str, int] = {}
    owner_call: dict[str, int] = {}
    newest = set(pages[-1].item_ids) if pages else set()
    for i, p in enumerate(pages):
        for item_id in (x for x in p.item_ids if split_items or x in newest):
            if item_id in owner_item:
                union(owner_item[item_id], i)
            else:
                owner_item[item_id] = i
        for cid in p.calls:
            owner_call.setdefault(cid, i)
    for i, p in enumerate(pages):
        for cid in p.results:
            if cid in owner_call:
                union(owner_call[cid], i)
    groups: dict[int, list[int]] = {}
    for i in range(len(pages)):
        groups.setdefault(find(i), []).append(i)
    return sorted(groups.values(), key=lambda g: g[0])


def build_context(
    *,
    budget_tokens: int,
    system: str | None,
    system_tokens: int,
    turns: Sequence[KeptTurn],
    pages: Sequence[ContextPage],
    count_tokens: Callable[[str], int],
    history_text_tokens: int,
    tokenizer: str,
    target: str,
    decoder: str,
    low_tiers: Sequence[str] = (),
    min_readback: float | None = None,
    query: QueryView | None = None,
    exact: ExactBlock | None = None,
) -> Context:
    """Fit system + turns + pages into ``budget_tokens``.

    ``system_tokens`` is the tokenizer count of the system text;
    ``count_tokens`` counts the header the page message is sent with
    (:func:`pages_header` of the kept pages, ``low_tiers`` naming the
    low-resolution tiers; ``min_readback`` splits the kept pages into legible
    and faded by their ``readback``). ``query``'s message, when given, is billed
    before the pages, and so is ``exact``'s (the exact-value block; left out,
    not an error, when it does not fit beside the must-stay text). Raises
    :class:`InputError` when the system message and the kept turns (and the
    query message) alone exceed the budget.
    """
    if isinstance(budget_tokens, bool) or not isinstance(budget_tokens, int) or budget_tokens < 1:
        raise InputError(f"budget_tokens must be a positive int (got {budget_tokens!r})")
    system_cost = text_message_tokens(system_tokens) if system else 0
    text_cost = system_cost + sum(t.tokens for t in turns)
    query_cost = query.tokens if query is not None else 0
    if text_cost + query_cost > budget_tokens:
        err = InputError(
            f"budget {budget_tokens} tokens is below the text that must stay: system "
            f"{system_cost} + {len(turns)} recent turns {text_cost - system_cost} = {text_cost} "
            f"tokens{f' + query {query_cost}' if query_cost else ''}; raise the budget or "
            "lower keep_last"
        )
        err.params = ("keep_last",)
        raise err
    if exact is not None and (not exact.spans
                              or text_cost + query_cost + exact.tokens > budget_tokens):
        exact = None
    exact_cost = exact.tokens if exact is not None else 0
    groups = atomic_groups(pages, split_items=False)
    cost = [sum(pages[i].vision_tokens for i in g) for g in groups]

    def cut(frame: int) -> int:
        """Index of the first group kept when the page message's framing is ``frame``."""
        room = budget_tokens - text_cost - query_cost - exact_cost - frame
        total, first = sum(cost), 0
        while first < len(groups) and total > room:
            total -= cost[first]
            first += 1
        return first

    # the header depends on the pages kept and their count on the header: start
    # from the shortest header and grow it until the header sent is the one counted
    # (the kept pages only shrink, so this ends within len(groups) + 1 rounds)
    page_frame = text_message_tokens(count_tokens(PAGES_HEADER))
    while True:
        first_kept = cut(page_frame)
        kept = tuple(pages[i] for i in sorted(i for g in groups[first_kept:] for i in g))
        header = pages_header([p.tier for p in kept], low_tiers) if kept else ""
        sent = text_message_tokens(count_tokens(header)) if kept else 0
        if sent <= page_frame:
            page_frame = sent
            break
        page_frame = sent
    dropped_idx = [i for g in groups[:first_kept] for i in g]

    messages: list[dict[str, Any]] = []
    if system:
        messages.append({"role": "system", "content": system})
    if kept:
        blocks: list[dict[str, Any]] = [{"type": "text", "text": header}]
        blocks += [{"type": "image", "base64": p.png_b64, "mime_type": "image/png"} for p in kept]
        messages.append({"role": "user", "content": blocks})
    if exact is not None:
        messages.append(exact.message())
    if query is not None and query.mode != "none":
        messages.append(query.message())
    messages += [dict(t.message) for t in turns]

    per_tier: dict[str, list[ContextPage]] = {}
    for p in kept:
        per_tier.setdefault(p.tier, []).append(p)
    floor = -1.0 if min_readback is None else min_readback
    legible = [p for p in kept if p.readback is not None and p.readback >= floor]
    faded = [p for p in kept if p.readback is None or p.readback < floor]
    vision = sum(p.vision_tokens for p in kept)
    frame = page_frame
    accounting = Accounting(
        tokenizer=tokenizer,
        target=target,
        decoder=decoder,
        budget_tokens=budget_tokens,
        history_text_tokens=history_text_tokens,
        context_tokens=text_cost + frame + vision + query_cost + exact_cost,
        text_tokens_kept=text_cost,
        kept_turns=len(turns),
        page_vision_tokens=vision,
        page_text_tokens=sum(p.text_tokens for p in kept),
        page_message_tokens=frame,
        pages=len(kept),
        per_tier={k: tier_row(v) for k, v in per_tier.items()},
        dropped_pages=len(dropped_idx),
        dropped_text_tokens=sum(pages[i].text_tokens for i in dropped_idx),
        dropped_items=len({item for i in dropped_idx for item in pages[i].item_ids}),
        min_readback=min_readback, legible=tier_row(legible), faded=tier_row(faded),
        query_tokens=query_cost,
        query_mode="" if query is None else query.mode,
        exact_span_tokens=exact_cost,
        exact_spans=len(exact.spans) if exact is not None else 0,
    )
    return Context(messages=messages, accounting=accounting, pages=kept, header=header,
                   query=query, exact=exact)


__all__ = [
    "MESSAGE_OVERHEAD",
    "PAGES_HEADER",
    "RECALL_NOTE",
    "Accounting",
    "Context",
    "ContextPage",
    "KeptTurn",
    "TierRow",
    "atomic_groups",
    "build_context",
    "extend_window",
    "pages_header",
    "text_message_tokens",
    "tier_row",
]
