"""Retrieval: BM25 keyword candidates from the store, with a ranker fused with
the passages nearest in meaning (:mod:`~optical_memory.retrieve.semantic`),
each hit placed on the page that holds its match.

Keyword search is the store's BM25 (SQLite FTS5 / PostgreSQL full text, user
queries escaped so no search syntax can be injected). With ``keep_text=False``
the pages' read-back is what is searched.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from optical_memory.errors import ConfigError, InputError
from optical_memory.retrieve.rerank import Ranker
from optical_memory.retrieve.semantic import (
    PASSAGES_PER_HIT,
    SemanticIndex,
    group,
    hybrid_search,
)
from optical_memory.scope import Scope
from optical_memory.store import PageRecord

if TYPE_CHECKING:  # pragma: no cover
    from optical_memory.store import Store


@dataclass(frozen=True)
class Hit:
    """One retrieved match: the best passage of an item on one page.

    item_id: the matching item (``None`` for a match in a page's read-back,
             the ``keep_text=False`` mode).
    page_id / page: the page holding the matching passage (``page.png`` is
             the master), ``None`` while the item is still a recent text turn.
    score:   higher is better, comparable within one result list.
    snippet: a short excerpt around the match.
    span:    ``(start, end)`` of the first matching word of the passage in the
             item's text (or in the page read-back for a page hit); ``None``
             if unknown.
    tier:    the page's current age tier.
    text:    the exact source text of the matching passage (what the page
             shows of the item, at most a page); ``None`` with
             ``keep_text=False``.
    passages: the exact texts of the page's best passages for the query,
             best first (``passages[0] == text``; at most
             :data:`~optical_memory.retrieve.semantic.PASSAGES_PER_HIT`); ``()``
             with ``keep_text=False``.
    """

    item_id: str | None
    page_id: str | None
    score: float
    snippet: str
    span: tuple[int, int] | None
    page: PageRecord | None = field(repr=False)  # holds the master PNG: kept out of repr
    tier: str | None
    text: str | None = None
    passages: tuple[str, ...] = field(default=(), repr=False)  # text is passages[0]

    def to_dict(self) -> dict[str, Any]:
        """The hit as plain JSON values (no image; the page's scope included)."""
        scope = self.page.scope.as_kwargs() if self.page is not None else None
        return {"item_id": self.item_id, "page_id": self.page_id, "score": self.score,
                "snippet": self.snippet, "span": list(self.span) if self.span else None,
                "tier": self.tier, "text": self.text, "passages": list(self.passages),
                "scope": scope}


def search(store: Store, query: str, scope: Scope, *, k: int, keep_text: bool,
           ranker: Ranker | SemanticIndex | None = None, semantic: bool | None = None,
           metadata: Mapping[str, Any] | None = None) -> list[Hit]:
    """Up to ``k`` hits for ``query`` under ``scope``, best first: the store
    ranks passages (what one page shows of one item, :mod:`~optical_memory.store.passages`),
    so each hit is on the page holding its best passage. With a ranker
    (``semantic`` defaults to "when one is configured"), passages nearest
    the query by meaning are candidates too, fused with the keyword ones
    (:func:`~optical_memory.retrieve.semantic.hybrid_search`): a question
    sharing no word with the fact finds it. ``ranker``: a
    :class:`~optical_memory.retrieve.rerank.Ranker`, or the memory's
    :class:`~optical_memory.retrieve.semantic.SemanticIndex`. ``metadata``:
    only items whose metadata equals each entry (:mod:`~optical_memory.store.metadata`)."""
    use_ranker = ranker is not None if semantic is None else semantic
    if use_ranker and ranker is None:
        raise ConfigError("semantic=True needs a ranker (OpticalMemory(ranker=MiniLMRanker()))")
    sources = ("item",) if keep_text else ("page",)
    if use_ranker:
        assert ranker is not None
        index = ranker if isinstance(ranker, SemanticIndex) else SemanticIndex(store, ranker)
        found = hybrid_search(store, index, query, scope, k=k, sources=sources,
                              metadata=metadata)
    else:
        found = group(store.search(query, scope, k=k * PASSAGES_PER_HIT, sources=sources,
                                   metadata=metadata, per_page=PASSAGES_PER_HIT), k)
    hits = []
    for score, passages in found[:k]:
        h = passages[0]
        span = h.offsets[0] if h.offsets else None
        page = store.get_page(h.page_id, scope) if h.page_id else None
        exact = h.source == "item" and keep_text
        texts = tuple(p.text or "" for p in passages) if exact else ()
        hits.append(Hit(h.item_id, page.id if page else None, score, h.snippet, span, page,
                        page.tier if page else None, h.text if exact else None, texts))
    return hits


def hit_page(hit: Hit, keep_last: int) -> tuple[str, Scope | None]:
    """The page id a hit points at and the exact scope it was found in
    (``None`` if unknown); :class:`InputError` for a hit not on a page yet."""
    if hit.page_id is None:
        raise InputError(
            f"hit for item {hit.item_id!r} is not on a page yet: its text is in hit.snippet. "
            f"The last keep_last={keep_last} turns stay text; older turns are paged once a "
            "page's worth has left that window (compact(force=True) pages those now)")
    return hit.page_id, hit.page.scope if hit.page is not None else None


__all__ = ["Hit", "hit_page", "search"]
