"""The storage protocol every backend implements (:class:`Store`).

A backend (SQLite now, PostgreSQL later) stores three things, all scoped:

- **items**: chat turns, documents and plain texts, in insertion order
  (``seq``), with their source text unless the memory runs with
  ``keep_text=False`` (then only the text's sha256 and token count are kept);
- **pages**: the master PNG of a rendered page, its laid-out text, the
  source spans it holds and its current age tier;
- **renditions**: a page resampled for one tier (PNG), optionally with cached
  vision tokens (an opaque safetensors blob).

Writes take *drafts* (:class:`NewItem`, :class:`NewPage`, whose ids the caller
may choose before rendering, since a page's spans name item ids) and reads
return frozen *records* (:class:`ItemRecord`, :class:`PageRecord`,
:class:`RenditionRecord`). Everything that is not a backend detail is written
once, so every backend behaves the same and one test suite runs against all
of them: the values in :mod:`~optical_memory.store.records`, validation in
:mod:`~optical_memory.store.checks`, query escaping and snippets in
:mod:`~optical_memory.store.query`.

Scope rule: a write stores the scope it is given; a read with
``Scope(user_id=u)`` sees all of ``u``'s rows, and an ``agent_id`` /
``session_id`` set on the read scope narrows it to rows stored with exactly
that value (rows stored with ``None`` there are then not seen). No read or
write ever crosses ``user_id``. An id that exists under another scope reads as
absent (``None`` / :class:`NotFoundError`), never as "forbidden".

This module also re-exports the names that lived here before the split, so
``from optical_memory.store.base import X`` keeps working for all of them.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from optical_memory.scope import (
    Scope,
    check_id,
    check_text as _check_text,  # noqa: F401  (re-export)
)
from optical_memory.store.checks import (
    MAX_PAGE_PIXELS,
    PNG_SIGNATURE,
    _check_int,  # noqa: F401  (re-export)
    check_item,
    check_item_ids,
    check_kinds,
    check_limit,
    check_page,
    check_per_page,
    check_png,
    check_rendition,
    check_scope,
    check_sources,
    check_tiers,
    check_write,
)
from optical_memory.store.query import (
    _WORD,  # noqa: F401  (re-export)
    MAX_OFFSETS,
    MAX_PHRASE_WORDS,
    MAX_QUERY_PHRASES,
    SNIPPET_CONTEXT,
    fts5_match_expression,
    make_snippet,
    match_offsets,
    query_phrases,
)
from optical_memory.store.records import (
    KINDS,
    SOURCES,
    ConflictError,
    Deleted,
    ItemRecord,
    NewItem,
    NewPage,
    NotFoundError,
    PageRecord,
    RenditionRecord,
    ScopeCount,
    SearchHit,
    StoreError,
    StoreStats,
    dump_json,
    new_id,
    spans_from_json,
    spans_to_json,
    text_hash,
    utc_now,
)

__all__ = [
    "KINDS",
    "MAX_OFFSETS",
    "MAX_PAGE_PIXELS",
    "MAX_PHRASE_WORDS",
    "MAX_QUERY_PHRASES",
    "PNG_SIGNATURE",
    "SNIPPET_CONTEXT",
    "SOURCES",
    "ConflictError",
    "Deleted",
    "ItemRecord",
    "NewItem",
    "NewPage",
    "NotFoundError",
    "PageRecord",
    "RenditionRecord",
    "Scope",
    "ScopeCount",
    "SearchHit",
    "Store",
    "StoreError",
    "StoreStats",
    "check_id",
    "check_item",
    "check_item_ids",
    "check_kinds",
    "check_limit",
    "check_page",
    "check_per_page",
    "check_png",
    "check_rendition",
    "check_scope",
    "check_sources",
    "check_tiers",
    "check_write",
    "dump_json",
    "fts5_match_expression",
    "make_snippet",
    "match_offsets",
    "new_id",
    "query_phrases",
    "spans_from_json",
    "spans_to_json",
    "text_hash",
    "utc_now",
]


# --------------------------------------------------------------------------
# The protocol
# --------------------------------------------------------------------------


@runtime_checkable
class Store(Protocol):
    """Storage backend. Every method is scoped; every write is one
    transaction (all or nothing). Backends are context managers."""

    def add_items(
        self,
        items: Sequence[NewItem],
        pages: Sequence[NewPage] = (),
        *,
        scope: Scope,
        exclusive: bool = False,
        replaces: Sequence[str] = (),
    ) -> tuple[list[str], list[str]]:
        """Store items and the pages holding them together; returns their ids
        in input order. Raises :class:`InputError` (nothing written) on bad
        input, a duplicate id, or a span naming an item not visible here.
        ``replaces``: stored pages (visible under ``scope``, else
        :class:`NotFoundError`) deleted in the same transaction, first (a
        re-render swaps pages atomically). With ``exclusive``, no item the
        pages hold may be on a page stored before this call, apart from
        those replaced (checked inside the write's transaction, so two
        processes paging the same turns cannot both succeed); else
        :class:`ConflictError`, nothing written."""
        ...

    def get_item(self, item_id: str, scope: Scope) -> ItemRecord | None: ...

    def get_page(self, page_id: str, scope: Scope) -> PageRecord | None: ...

    def list_items(
        self,
        scope: Scope,
        *,
        since_seq: int | None = None,
        limit: int | None = None,
        kinds: Sequence[str] | None = None,
        on_page: bool | None = None,
        newest_first: bool = False,
        before_seq: int | None = None,
        roles: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> list[ItemRecord]:
        """Items by ``seq`` (ascending, or descending with ``newest_first``);
        ``since_seq`` / ``before_seq`` keep ``seq >`` / ``<`` them; ``on_page``
        True/False keeps items that some page holds / that no page holds yet;
        ``roles`` keeps turns of those roles; ``metadata`` keeps items whose
        metadata matches the filter (:mod:`~optical_memory.store.metadata`)."""
        ...

    def item_pages(self, item_ids: Sequence[str], scope: Scope) -> dict[str, tuple[str, ...]]:
        """``{item id: pages holding it, by seq}`` for the visible items of
        ``item_ids`` (``()``: on no page); invisible items are left out."""
        ...

    def list_pages(
        self,
        scope: Scope,
        *,
        since_seq: int | None = None,
        limit: int | None = None,
        tiers: Sequence[str] | None = None,
        with_png: bool = True,
        newest_first: bool = False,
    ) -> list[PageRecord]: ...

    def pages_for_item(self, item_id: str, scope: Scope) -> list[PageRecord]:
        """Pages holding the item, by ``seq``; [] when the item is not visible."""
        ...

    def search(
        self,
        query: str,
        scope: Scope,
        k: int = 10,
        *,
        sources: Sequence[str] = SOURCES,
        metadata: Mapping[str, Any] | None = None,
        per_page: int = 1,
    ) -> list[SearchHit]:
        """Up to ``k`` best passages (what one page shows of one item, or an
        item on no page yet, or a page's read-back; the best ``per_page`` per
        item and page): :mod:`~optical_memory.store.passages`. The query is split into
        terms (:mod:`~optical_memory.store.terms`: folded words, CJK bigrams)
        and any term matches (OR), ranked by the idf of the terms a passage
        holds; FTS syntax in it is never interpreted. ``metadata``: only
        passages of items whose metadata matches the filter (read-back
        passages: of pages holding such an item)."""
        ...

    def set_tier(self, page_id: str, tier: str, scope: Scope) -> None:
        """Move a page to ``tier``; :class:`NotFoundError` if not visible."""
        ...

    def put_rendition(self, rendition: RenditionRecord, scope: Scope) -> None:
        """Insert or replace the page's rendition for ``rendition.tier``."""
        ...

    def get_rendition(
        self, page_id: str, tier: str, scope: Scope
    ) -> RenditionRecord | None: ...

    def delete(self, scope: Scope, *, item_ids: Sequence[str] | None = None,
               missing_ok: bool = True) -> Deleted:
        """Delete the items visible under ``scope`` (all, or those of
        ``item_ids``), the pages left holding no item, their renditions and
        search rows. Ids of ``item_ids`` not visible under ``scope`` are listed
        in ``Deleted.missing``; with ``missing_ok=False`` they raise
        :class:`NotFoundError` (its ``missing``) and nothing is deleted."""
        ...

    def update_item(self, item_id: str, scope: Scope, *, text: str | None, text_tokens: int,
                    content_hash: str, meta: Mapping[str, Any], reindex: bool = True
                    ) -> list[str]:
        """Replace one item's text, token count, hash and ``meta`` (one
        transaction; :class:`NotFoundError` if not visible under ``scope``);
        with ``reindex`` its passages are made again from the new text as for
        an item on no page, until its pages are re-rendered. Returns the ids of
        the pages holding it (they still show the old text)."""
        ...

    def clear(self) -> Deleted:
        """Delete every item and page of every scope."""
        ...

    def stats(self, scope: Scope) -> StoreStats: ...

    def scopes(self) -> list[ScopeCount]:
        """Every exact scope holding items or pages, with their counts, by
        ``user_id``, ``agent_id``, ``session_id`` (store-wide: the one read
        that crosses users, for admin tools such as ``optical-memory serve``)."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Store: ...

    def __exit__(self, *exc: object) -> None: ...
