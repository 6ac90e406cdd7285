"""Paging: which stored items go onto which pages, and when.

- The **recent window**: the last ``keep_last`` chat turns of a scope stay
  text (moved back so a tool result never loses its call).
- **Paging** (``compact``): turns older than the window that no page holds
  yet are laid onto pages once they fill one, contiguous turns packed
  continuously, rendered once at the master size. Several processes may page
  one scope: the store's exclusive write makes the loser retry on fresh rows.
- **Documents and texts** are paged at ``add`` time, in the same transaction.
- **Re-paging** after a delete: the other items of a page that showed
  deleted text are laid out again, and the new pages take the old ones'
  place in the history and at least their age tier.

What a page holds is recorded in its :class:`PageInfo` (the page's
``meta["memory"]`` on disk): where its newest item ranks in its scope (from
which its age follows), the text tokens it shows, and the tool calls and
results on it.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from optical_memory.config import PAGING_ATTEMPTS
from optical_memory.context.budget import extend_window
from optical_memory.errors import InputError, after_commit
from optical_memory.render.config import RenderItem, Turn
from optical_memory.scope import Scope
from optical_memory.store import ConflictError, ItemRecord, NewPage, NotFoundError, PageRecord

if TYPE_CHECKING:  # pragma: no cover
    from optical_memory.age.policy import AgePolicy
    from optical_memory.age.renditions import Renditions
    from optical_memory.render import Renderer
    from optical_memory.store import Store
    from optical_memory.tokens import TextCounter
    from optical_memory.types import Page, Span

logger = logging.getLogger(__name__)

#: Key of the memory's bookkeeping in a page's ``meta`` (JSON on disk).
META_KEY = "memory"


@dataclass(frozen=True)
class PageInfo:
    """The memory's bookkeeping for one page.

    item_rank / token_rank: items / text tokens of the page's exact scope up
        to and including its newest item (its age is the scope's total
        minus these).
    text_tokens: text tokens of what the page shows.
    calls / results: tool-call ids made / answered on the page.
    slot: for a re-rendered page, the place in the history of the pages it
        replaced (``None``: its own ``seq``).
    """

    item_rank: int
    token_rank: int
    text_tokens: int
    calls: tuple[str, ...] = ()
    results: tuple[str, ...] = ()
    slot: int | None = None

    @classmethod
    def of(cls, page: PageRecord | NewPage) -> PageInfo | None:
        """The page's info, or ``None`` for a page the memory did not make."""
        raw = page.meta.get(META_KEY)
        if not isinstance(raw, Mapping):
            return None
        slot = raw.get("slot")
        return cls(int(raw.get("item_rank", 0)), int(raw.get("token_rank", 0)),
                   int(raw.get("text_tokens", 0)), tuple(raw.get("calls", ())),
                   tuple(raw.get("results", ())), slot if isinstance(slot, int) else None)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"item_rank": self.item_rank, "token_rank": self.token_rank,
                               "text_tokens": self.text_tokens, "calls": list(self.calls),
                               "results": list(self.results)}
        if self.slot is not None:
            out["slot"] = self.slot
        return out


@dataclass(frozen=True)
class CompactResult:
    """page_ids: pages made from waiting turns; items_paged: turns laid onto
    them; moved: tier → pages that moved down into it."""

    page_ids: tuple[str, ...]
    items_paged: int
    moved: dict[str, int]


@dataclass(frozen=True)
class Repaged:
    """What :meth:`Pager.repage` did: ``made``, the new pages; ``replaced``,
    every page they took the place of (the ones asked for and the pages
    linked to them by a split item, re-laid together); ``kept``, pages left
    as they were (see ``repage``); ``warnings`` for the failures."""

    made: tuple[str, ...] = ()
    replaced: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Holding:
    """What one laid-out page shows: items in order, text tokens, tool
    calls made and results given on it."""

    item_ids: tuple[str, ...]
    text_tokens: int
    calls: tuple[str, ...]
    results: tuple[str, ...]


def page_holding(spans: Sequence[Span], texts: Mapping[str, str],
                 roles: Mapping[str, tuple[str | None, Sequence[str]]],
                 counter: TextCounter) -> Holding:
    """What a page with ``spans`` holds; ``texts`` / ``roles`` by item id
    (``roles[id] = (role, tool_call_ids)``). Text tokens are counted per
    span slice, the rule every ratio of the memory uses."""
    held = sum(counter.count(texts[s.item_id][s.start:s.end]) for s in spans)
    items = tuple(dict.fromkeys(s.item_id for s in spans))
    calls: list[str] = []
    results: list[str] = []
    for item_id in items:
        role, ids = roles.get(item_id, (None, ()))
        (results if role == "tool" else calls).extend(ids)
    return Holding(items, held, tuple(calls), tuple(results))


def render_item(item: ItemRecord) -> RenderItem:
    """How a stored item is laid out (turns with their speaker label)."""
    text = item.text or ""
    if item.kind == "turn":
        return RenderItem(item.id, "turn", text, Turn(item.id, item.role or "user", text,
                                                      item.name, item.time).label)
    label = f"[{item.name}]" if item.name else None
    return RenderItem(item.id, "document" if item.kind == "document" else "text", text, label)


def page_order(page: PageRecord) -> tuple[int, int]:
    """Where a page sits in the history: its ``seq``, or for a re-rendered
    page the place (``slot``) of the pages it replaced."""
    info = PageInfo.of(page)
    slot = info.slot if info is not None else None
    return (slot if slot is not None else page.seq, page.seq)


def cumsum(values: Sequence[int]) -> list[int]:
    out, total = [], 0
    for v in values:
        total += v
        out.append(total)
    return out


def with_spans(pages: Sequence[Page]) -> list[Page]:
    """The pages that show source text: a page holding only a label (which
    input limits make impossible on any target's page) is dropped, not stored
    as a page no item can be found on."""
    kept = [p for p in pages if p.spans]
    if len(kept) < len(pages):
        logger.warning("dropped %d page(s) that hold no source text", len(pages) - len(kept))
    return kept


def recent_window(store: Store, scope: Scope, keep_last: int) -> list[ItemRecord]:
    """The last ``keep_last`` turns under ``scope``, moved back so no tool
    result is separated from its call."""
    if keep_last == 0:
        return []
    fetch = keep_last + 32
    while True:
        recent = store.list_items(scope, kinds=["turn"], newest_first=True, limit=fetch)
        recent.reverse()
        start = max(0, len(recent) - keep_last)
        start = extend_window([t.role for t in recent], [t.tool_call_ids for t in recent], start)
        if start > 0 or len(recent) < fetch:
            return recent[start:]
        fetch *= 4


class Pager:
    """Lays items onto pages and stores them (with their tier renditions).

    ``read``: with ``keep_text=False``, reads a rendered page back to text
    (what search then indexes); ``None`` otherwise. ``on_write``: called
    with the scope after the pager's writes (the memory embeds the new
    passages there); returns a warning or ``None``, never raises.
    """

    def __init__(self, store: Store, renderer: Renderer, counter: TextCounter,
                 aging: AgePolicy, renditions: Renditions, *, keep_text: bool, keep_last: int,
                 read: Callable[[Page], str] | None = None,
                 on_write: Callable[[Scope], str | None] | None = None) -> None:
        self.store = store
        self.renderer = renderer
        self.counter = counter
        self.aging = aging
        self.renditions = renditions
        self.keep_text = keep_text
        self.keep_last = keep_last
        self.read = read
        self.on_write = on_write

    def age(self, turns: int, tokens: int) -> int:
        """A page's age in the policy's unit."""
        return turns if self.aging.unit == "turns" else tokens

    def new_page(self, page: Page, texts: Mapping[str, str],
                 roles: Mapping[str, tuple[str | None, Sequence[str]]],
                 item_rank: int, token_rank: int, *, age: int) -> NewPage:
        """The draft of a rendered page, tiered for ``age``, with its info."""
        hold = page_holding(page.spans, texts, roles, self.counter)
        readback = None
        if not self.keep_text:
            assert self.read is not None
            readback = self.read(page)
        tier = self.aging.tier_for_age(age).name
        draft = NewPage.from_page(page, tier=tier, keep_text=self.keep_text, readback=readback)
        info = PageInfo(item_rank, token_rank, hold.text_tokens, hold.calls, hold.results)
        meta = {**draft.meta, META_KEY: info.to_json()}
        legibility = self.renditions.legibility
        if legibility is not None:  # the legibility gate: measure (verify), then cap the tier
            if self.aging.verify:
                from optical_memory.age.legibility import READBACK_KEY

                meta[READBACK_KEY] = legibility.measure(page)
            tier = legibility.allowed(meta, self.aging.names[0], tier)
        return replace(draft, meta=meta, tier=tier)

    def store_renditions(self, pages: Iterable[NewPage], scope: Scope) -> None:
        self.renditions.ensure([(p.id, p.tier, (p.width, p.height), p.png) for p in pages], scope)

    def page_new_items(self, items: Sequence[Any], renders: Sequence[RenderItem],
                       texts: Sequence[str], scope: Scope
                       ) -> tuple[list[str], list[str], tuple[str, ...]]:
        """Store ``items`` (drafts) and the pages ``renders`` fill, in one
        transaction (documents, texts, and every item with ``keep_text=False``).
        Returns (item ids, page ids, warnings of follow-up work that failed
        after the commit: tier images are then made when first needed)."""
        before = self.store.stats(scope)
        pages = self.renderer.render_items(list(renders))
        index = {it.id: i for i, it in enumerate(items)}
        cum = cumsum([it.text_tokens for it in items])
        by_id = {it.id: text for it, text in zip(items, texts)}
        roles = {it.id: (it.role, it.tool_call_ids) for it in items}
        total_after = before.items + len(items)
        new_pages = []
        for page in with_spans(pages):
            last = max(index[s.item_id] for s in page.spans)
            rank, tok_rank = before.items + last + 1, before.text_tokens + cum[last]
            new_pages.append(self.new_page(
                page, by_id, roles, rank, tok_rank,
                age=self.age(total_after - rank, before.text_tokens + cum[-1] - tok_rank)))
        ids, page_ids = self.store.add_items(list(items), new_pages, scope=scope)
        warnings = self.written(scope)
        try:
            self.store_renditions(new_pages, scope)
        except Exception as exc:  # committed: report, never fail the write
            warnings += (after_commit("making tier images", exc),)
        return list(ids), list(page_ids), warnings

    def written(self, scope: Scope) -> tuple[str, ...]:
        """Run ``on_write`` for ``scope``; its warning, if any."""
        warning = self.on_write(scope) if self.on_write is not None else None
        return (warning,) if warning else ()

    def page_waiting(self, scope: Scope, *, force: bool = False) -> tuple[list[str], int]:
        """Page the waiting turns of every exact scope under ``scope``;
        returns (new page ids, turns paged)."""
        by_scope: dict[Scope, list[ItemRecord]] = {}
        for item in self.store.list_items(scope, kinds=["turn"], on_page=False):
            if item.text is not None:
                by_scope.setdefault(item.scope, []).append(item)
        made: list[str] = []
        paged = 0
        for exact, items in by_scope.items():
            for attempt in range(PAGING_ATTEMPTS):
                try:
                    ids, n = self.page_turns(exact, items, force=force)
                    break
                except (ConflictError, NotFoundError, InputError):
                    # the turns were read from the store, so a turn or page that
                    # is gone or taken now means another process paged or
                    # deleted some of them meanwhile: re-read and retry
                    if attempt + 1 == PAGING_ATTEMPTS:
                        raise
                    logger.info("paging under %s raced another writer; re-reading", exact)
                    items = [t for t in self.store.list_items(exact, kinds=["turn"], on_page=False)
                             if t.scope == exact and t.text is not None]
            made += ids
            paged += n
        self.written(scope)  # (a failure is logged; the next search embeds what is missing)
        return made, paged

    def page_turns(self, exact: Scope, waiting: list[ItemRecord], *, force: bool,
                   replaces: Sequence[str] = (), slot: int | None = None,
                   tier_floor: str | None = None) -> tuple[list[str], int]:
        """Lay ``waiting`` (items of scope ``exact``, by seq) onto new pages.
        Without ``replaces``: turns in the recent window stay text, and
        unless ``force`` a last partial page waits. With ``replaces`` (a
        re-render): all of ``waiting`` is paged, swapping out those pages;
        the new pages take their place in the history (``slot``, see
        :func:`page_order`) and are no younger than ``tier_floor``."""
        if not replaces:
            window = recent_window(self.store, exact, self.keep_last)
            if window:
                cut = window[0].seq
                waiting = [t for t in waiting if t.seq < cut]
        if not waiting:
            return [], 0
        items = [render_item(t) for t in waiting]
        layouts = self.renderer.layout(items)
        if len(layouts) < 2 and not force:
            return [], 0
        if not force:
            on_last = {s.item_id for s in layouts[-1].spans}
            waiting = [t for t in waiting if t.id not in on_last] or waiting[:1]
            items = [render_item(t) for t in waiting]
        pages = self.renderer.render_items(items)
        # ranks: how many items / tokens of this exact scope precede-and-include
        # each page's newest item; ages follow from the scope's totals later.
        stats = self.store.stats(exact)
        after = self.store.list_items(exact, since_seq=waiting[-1].seq)
        pos = {t.id: i for i, t in enumerate(waiting)}
        n_after, tok_after = len(after), sum(t.text_tokens for t in after)
        suffix_tok = cumsum([t.text_tokens for t in reversed(waiting)])[::-1]  # tokens from i on
        texts = {t.id: t.text or "" for t in waiting}
        roles = {t.id: (t.role, t.tool_call_ids) for t in waiting}
        new_pages = []
        for page in with_spans(pages):
            last = max(pos[s.item_id] for s in page.spans)
            items_after = n_after + (len(waiting) - 1 - last)
            tokens_after = tok_after + (suffix_tok[last + 1] if last + 1 < len(waiting) else 0)
            new_pages.append(self.new_page(
                page, texts, roles, stats.items - items_after, stats.text_tokens - tokens_after,
                age=self.age(items_after, tokens_after)))
        if slot is not None or tier_floor is not None:
            new_pages = [self._replacement(p, slot, tier_floor) for p in new_pages]
        # exclusive: fails (ConflictError, nothing written) if another process
        # paged any of these turns since they were read
        _, page_ids = self.store.add_items([], new_pages, scope=exact, exclusive=True,
                                           replaces=replaces)
        self.store_renditions(new_pages, exact)
        logger.info("compacted %d turns onto %d pages under %s", len(waiting), len(page_ids), exact)
        return list(page_ids), len(waiting)

    def _replacement(self, page: NewPage, slot: int | None, tier_floor: str | None) -> NewPage:
        """``page`` placed at ``slot`` in the page order, and aged at least to
        ``tier_floor`` (re-rendering never makes pages younger)."""
        meta = dict(page.meta)
        if slot is not None:
            meta[META_KEY] = dict(meta[META_KEY], slot=slot)
        tier = page.tier
        if (tier_floor is not None and tier_floor in self.aging.names and tier in self.aging.names
                and self.aging.rank(tier_floor) > self.aging.rank(tier)):
            tier = tier_floor
        return replace(page, meta=meta, tier=tier)

    def repage(self, page_ids: Sequence[str], scope: Scope) -> Repaged:
        """Re-render the items of ``page_ids``. Pages linked by an item split
        across them move together (a component); each component is laid out
        on its own, takes the place of the pages it replaces and keeps their
        oldest tier. Pages are left as they were when their items keep no
        text, they span scopes, or re-rendering them failed (a warning)."""
        seen: set[str] = set()
        made: list[str] = []
        replaced: list[str] = []
        kept: list[str] = []
        warnings: list[str] = []
        for start in page_ids:
            if start in seen:
                continue
            pages, items = self._component(start, scope)
            seen.update(pages)
            scopes = {p.scope for p in pages.values()}
            if not items or len(scopes) > 1 or any(r.text is None for r in items.values()):
                kept += list(pages)
                continue
            recs = sorted(items.values(), key=lambda r: r.seq)
            tiers = [p.tier for p in pages.values() if p.tier in self.aging.names]
            floor = max(tiers, key=self.aging.rank) if tiers else None
            try:
                ids, _ = self.page_turns(
                    scopes.pop(), recs, force=True, replaces=list(pages),
                    slot=min(page_order(p)[0] for p in pages.values()), tier_floor=floor)
            except Exception as exc:  # the delete committed: report, never fail it
                kept += list(pages)
                warnings.append(after_commit(f"re-rendering {len(pages)} page(s)", exc))
                continue
            made += ids
            replaced += list(pages)
            logger.info("re-rendered %d item(s) of %d page(s) onto %d", len(recs), len(pages),
                        len(ids))
        return Repaged(tuple(made), tuple(replaced), tuple(kept),
                       tuple(warnings) + (self.written(scope) if made else ()))

    def _component(self, start: str, scope: Scope
                   ) -> tuple[dict[str, PageRecord], dict[str, ItemRecord]]:
        """The pages linked to ``start`` by items split across them, and their items."""
        pages: dict[str, PageRecord] = {}
        items: dict[str, ItemRecord] = {}
        todo = [start]
        while todo:
            page = self.store.get_page(todo.pop(), scope)
            if page is None or page.id in pages:  # (gone: removed by another writer)
                continue
            pages[page.id] = page
            for item_id in page.item_ids:
                rec = items.get(item_id) or self.store.get_item(item_id, page.scope)
                if rec is None or item_id in items:
                    continue
                items[item_id] = rec
                todo += [p.id for p in self.store.pages_for_item(item_id, page.scope)
                         if p.id not in pages]
        return pages, items


__all__ = ["META_KEY", "CompactResult", "Holding", "PageInfo", "Pager", "Repaged", "page_holding",
           "page_order", "recent_window", "render_item"]
