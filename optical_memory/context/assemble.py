"""Gathering a scope's context: the recent turns as text, every page visible
under the scope at its age tier (oldest first), and the turns still waiting to
be paged as *pending* pages rendered on the fly (cached, never stored), then
the budget cut of :func:`~optical_memory.context.budget.build_context`.

Reads tolerate other processes: a page deleted between listing and reading
is skipped, not an error.
"""
from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from optical_memory.age.sweep import age_pages
from optical_memory.cache import LRUCache
from optical_memory.config import MAX_KEEP_LAST, check_count
from optical_memory.context.budget import (
    MESSAGE_OVERHEAD,
    Context,
    ContextPage,
    KeptTurn,
    build_context,
    text_message_tokens,
)
from optical_memory.context.routing import (
    ExactBlock,
    ExactSpanPolicy,
    candidates,
    make_block,
    page_candidates,
    shipped_table,
)
from optical_memory.errors import ConfigError, InputError
from optical_memory.render.paging import (
    PageInfo,
    page_holding,
    page_order,
    recent_window,
    render_item,
)
from optical_memory.scope import Scope
from optical_memory.store import ItemRecord, NotFoundError, PageRecord
from optical_memory.tokens import get_target
from optical_memory.tokens.billing import image_tokens

if TYPE_CHECKING:  # pragma: no cover
    from optical_memory.age.policy import AgePolicy
    from optical_memory.age.renditions import Renditions
    from optical_memory.encoder.page_tokens import PageTokens
    from optical_memory.render import Renderer
    from optical_memory.retrieve import Ranker
    from optical_memory.store import Store, StoreStats
    from optical_memory.tokens import TextCounter, VisionTarget


_OFF = ExactSpanPolicy("off")


def turn_message(item: ItemRecord) -> dict[str, Any]:
    """The chat message a stored turn came from (tool-call dicts as given)."""
    text = item.text or ""
    n = item.meta.get("content_len", len(text))
    msg: dict[str, Any] = {"role": item.role, "content": text[:n]}
    if item.name:
        msg["name"] = item.name
    if item.meta.get("tool_calls"):
        msg["tool_calls"] = item.meta["tool_calls"]
    if item.role == "tool" and item.tool_call_ids:
        msg["tool_call_id"] = item.tool_call_ids[0]
    return msg


class ContextBuilder:
    """Builds :class:`~optical_memory.context.budget.Context` for a scope."""

    def __init__(self, store: Store, renderer: Renderer, counter: TextCounter, aging: AgePolicy,
                 renditions: Renditions, cache: LRUCache, *, target: VisionTarget,
                 keep_last: int, keep_text: bool, decoder: str,
                 tokens: PageTokens | None = None, ranker: Ranker | None = None,
                 exact_spans: str | ExactSpanPolicy = "off") -> None:
        self.store = store
        self.target = target
        self.keep_last = keep_last
        self.renderer = renderer
        self.counter = counter
        self.aging = aging
        self.renditions = renditions
        self.cache = cache
        self.keep_text = keep_text
        self.decoder = decoder
        self.tokens = tokens
        self.ranker = ranker
        self.exact_spans = ExactSpanPolicy.of(exact_spans)
        # the tiers shrunk below the fresh one: the page header names them
        self.low_tiers = tuple(t.name for t in aging.tiers if t.scale < aging.tiers[0].scale)

    def build(self, budget_tokens: int, *, target: str | None, keep_last: int | None,
              system: str | None, scope: Scope, vision_tokens: bool = False,
              query: str | None = None,
              exact_spans: str | ExactSpanPolicy | None = None) -> Context:
        """See :meth:`optical_memory.OpticalMemory.context`; ``None`` target /
        keep_last / exact_spans are the memory's."""
        policy = self.exact_spans if exact_spans is None else ExactSpanPolicy.of(exact_spans)
        keep_last = check_count("keep_last", self.keep_last if keep_last is None else keep_last,
                                MAX_KEEP_LAST)
        if system is not None and not isinstance(system, str):
            raise InputError(f"system must be a string (got {type(system).__name__})")
        if query is not None and (not isinstance(query, str) or not query.strip()):
            raise InputError(f"query must be a non-empty string (got {query!r})")
        tgt = self.target if target is None else get_target(target)
        if vision_tokens:
            if self.tokens is None:
                raise ConfigError("vision_tokens=True needs an encoder "
                                  "(OpticalMemory(encoder=DeepEncoder.from_pretrained(...)))")
            from optical_memory.encoder.page_tokens import check_token_target

            check_token_target(tgt)
        return self._build(budget_tokens, tgt, keep_last, system, scope, vision_tokens, query,
                           policy)

    def _build(self, budget_tokens: int, target: VisionTarget, keep_last: int,
               system: str | None, scope: Scope, vision_tokens: bool,
               query: str | None = None,
               policy: ExactSpanPolicy = _OFF) -> Context:
        window = recent_window(self.store, scope, keep_last) if self.keep_text else []
        window = [t for t in window if t.text is not None]
        in_window = {t.id for t in window}
        turns = [KeptTurn(t.id, turn_message(t), text_message_tokens(t.text_tokens))
                 for t in window]

        totals: dict[Scope, StoreStats] = {}
        records, _ = age_pages(self.store, self.aging, self.renditions, scope, totals)
        records.sort(key=page_order)  # re-rendered pages keep their place in the history
        pages: list[ContextPage] = []
        overlap: dict[str, ItemRecord] = {}
        for rec in records:
            if rec.item_ids and any(i in in_window for i in rec.item_ids):
                # some of its turns are in the text window (keep_last above the
                # memory's, or recent turns deleted): the page's other items are
                # laid out afresh below, so no turn reaches the model twice
                for item_id in rec.item_ids:
                    if item_id not in in_window and item_id not in overlap:
                        item = self.store.get_item(item_id, rec.scope)
                        if item is not None and item.text is not None:
                            overlap[item_id] = item
                continue
            page = self._stored_page(rec, target, scope)
            if page is not None:
                pages.append(page)
        cut = window[0].seq if window else None
        waiting = [t for t in self.store.list_items(scope, kinds=["turn"], on_page=False)
                   if t.text is not None and (cut is None or t.seq < cut)]
        waiting = sorted([*waiting, *overlap.values()], key=lambda t: t.seq)
        if waiting:
            pages += self._pending_pages(waiting, target)

        st = totals.get(scope) or self.store.stats(scope)
        system_tokens = self.counter.count(system) if system else 0
        history = st.text_tokens + text_message_tokens(0) * st.items
        history += text_message_tokens(system_tokens) if system else 0
        args: dict[str, Any] = dict(
            budget_tokens=budget_tokens, system=system, system_tokens=system_tokens,
            turns=turns, pages=pages, count_tokens=self.counter.count,
            history_text_tokens=history, tokenizer=self.counter.name, target=target.name,
            decoder=self.decoder, low_tiers=self.low_tiers,
            min_readback=self.aging.min_readback,
        )
        ctx = (build_context(**args) if query is None
               else self._with_query(query, args, target, scope))
        block = self._exact_block(ctx, policy, budget_tokens, scope)
        if block is not None:  # billed before the pages, which give way to it
            args["exact"] = block
            ctx = (build_context(**args) if query is None
                   else self._with_query(query, args, target, scope))
        if not vision_tokens:
            return ctx
        assert self.tokens is not None
        found = self.tokens.for_context(ctx.pages, target, scope)
        return replace(ctx, vision_tokens=tuple(t for t, _ in found),
                       token_layouts=tuple(layout for _, layout in found))

    def _with_query(self, query: str, args: dict[str, Any], target: VisionTarget,
                    scope: Scope) -> Context:
        """The context with the passages matching ``query`` that it does not
        show on a fresh-tier page (:mod:`optical_memory.context.query`); the
        pages are cut again until the passages brought are those off the
        fresh pages kept (they only grow, so this ends)."""
        from optical_memory.context.query import QUERY_K, QueryPassage, QueryView, make_view
        from optical_memory.retrieve import search

        hits = search(self.store, query, scope, k=4 * QUERY_K, keep_text=self.keep_text,
                      ranker=self.ranker)
        found = [QueryPassage(h.page_id, h.tier, h.item_id, h.text) for h in hits
                 if h.page_id and h.text and h.text.strip()][:QUERY_K]
        fresh = self.aging.tiers[0].name
        view = QueryView(query, "none")
        ctx = build_context(**args, query=view)
        room = args["budget_tokens"] - ctx.accounting.text_tokens_kept
        need: list[QueryPassage] = []
        for _ in range(len(found) + 1):
            shown = {p.page_id for p in ctx.pages if p.tier == fresh}
            want = [p for p in found if p in need or p.page_id not in shown]
            if want == need:
                break
            need = want
            view = make_view(query, need, renderer=self.renderer, target=target,
                             count=self.counter.count, room=room)
            ctx = build_context(**args, query=view)
        return ctx

    def _exact_block(self, ctx: Context, policy: ExactSpanPolicy, budget: int, scope: Scope
                     ) -> ExactBlock | None:
        """The exact values of ``ctx``'s pages worth giving as text
        (:mod:`optical_memory.context.routing`); ``None`` when off, without
        the exact text (``keep_text=False``) or when nothing pays."""
        if policy.mode == "off" or not self.keep_text or not ctx.pages:
            return None
        acc, cfg, table = ctx.accounting, self.renderer.config, shipped_table()
        items: dict[str, ItemRecord | None] = {}

        def item_of(item_id: str) -> ItemRecord | None:
            # read on every call, never cached across calls: a value deleted
            # (here or by another process) must not come back as text
            if item_id not in items:
                items[item_id] = self.store.get_item(item_id, scope)
            return items[item_id]

        found = candidates([page_candidates(p, item_of, table=table, font_size=cfg.font_size,
                                            master_width=cfg.width, count=self.counter.count)
                            for p in ctx.pages])
        return make_block(found, ctx.pages, policy=policy, budget=budget,
                          used=acc.context_tokens, fixed=acc.text_tokens_kept + acc.query_tokens,
                          count=self.counter.count, overhead=MESSAGE_OVERHEAD)

    def _stored_page(self, rec: PageRecord, target: VisionTarget, scope: Scope
                     ) -> ContextPage | None:
        """A stored page as a context page; ``None`` when another process
        deleted it after it was listed."""
        info = PageInfo.of(rec)
        w, h = self.aging.size(rec.tier, (rec.width, rec.height))
        try:
            png_b64 = self.renditions.b64(rec, scope)
        except NotFoundError:
            return None
        return ContextPage(
            page_id=rec.id, tier=rec.tier, width=w, height=h,
            vision_tokens=image_tokens(target, w, h),
            text_tokens=info.text_tokens if info else 0,
            item_ids=rec.item_ids,
            calls=info.calls if info else (), results=info.results if info else (),
            png_b64=png_b64, spans=rec.spans, **self._readback(rec.meta, rec.tier),
        )

    def _readback(self, meta: Mapping[str, Any] | None, tier: str) -> dict[str, Any]:
        """A page's read-back at ``tier`` and its source (ContextPage fields)."""
        leg = self.renditions.legibility
        if leg is None:
            return {}
        rb = leg.readback(meta, tier)
        return {"readback": rb.value, "readback_source": rb.source if rb.value is not None else ""}

    def _pending_pages(self, waiting: Sequence[ItemRecord], target: VisionTarget
                       ) -> list[ContextPage]:
        """Waiting turns laid onto fresh-tier pages, not stored (cached)."""
        key = ("pending", tuple(t.id for t in waiting), target.name)
        return self.cache.get_or_make(key, lambda: self._render_pending(waiting, target),
                                      lambda pages: sum(len(p.png_b64) for p in pages))

    def _render_pending(self, waiting: Sequence[ItemRecord], target: VisionTarget
                        ) -> list[ContextPage]:
        from optical_memory.age.renditions import resample_png

        fresh = self.aging.tiers[0]
        roles = {t.id: (t.role, t.tool_call_ids) for t in waiting}
        texts = {t.id: t.text or "" for t in waiting}
        out = []
        for page in self.renderer.render_items([render_item(t) for t in waiting]):
            hold = page_holding(page.spans, texts, roles, self.counter)
            png = page.to_png()
            w, h = self.aging.size(fresh, (page.width, page.height))
            if (w, h) != (page.width, page.height):
                png = resample_png(png, (w, h))
            out.append(ContextPage(
                page_id=None, tier=fresh.name, width=w, height=h,
                vision_tokens=image_tokens(target, w, h), text_tokens=hold.text_tokens,
                item_ids=hold.item_ids, calls=hold.calls, results=hold.results,
                png_b64=base64.b64encode(png).decode("ascii"), spans=page.spans,
                **self._readback(page.meta, fresh.name),
            ))
        return out

    def forget_pending(self) -> None:
        """Drop cached pending pages (after a delete changed what waits)."""
        self.cache.discard(lambda k: isinstance(k, tuple) and bool(k) and k[0] == "pending")


__all__ = ["ContextBuilder", "turn_message"]
