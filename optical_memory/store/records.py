"""The values a store takes and returns, and the helpers that make them.

- errors: :class:`StoreError`, :class:`ConflictError`, :class:`NotFoundError`;
- *drafts* a write takes (:class:`NewItem`, :class:`NewPage`, whose ids the
  caller may choose before rendering, since a page's spans name item ids);
- frozen *records* a read returns (:class:`ItemRecord`, :class:`PageRecord`,
  :class:`RenditionRecord`, :class:`SearchHit`, :class:`StoreStats`,
  :class:`ScopeCount`, :class:`Deleted`);
- ids, content hashes, timestamps and the JSON of stored columns
  (:func:`new_id`, :func:`text_hash`, :func:`utc_now`, :func:`dump_json`,
  :func:`spans_to_json`, :func:`spans_from_json`).

The protocol itself is :class:`optical_memory.store.base.Store`.
"""
from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from optical_memory.errors import InputError, OpticalMemoryError
from optical_memory.scope import Scope
from optical_memory.types import Page, Span

KINDS = ("turn", "document", "text")
SOURCES = ("item", "page")


class StoreError(OpticalMemoryError, RuntimeError):
    """The backend failed (I/O, corruption, a lock held past the timeout)."""


class ConflictError(StoreError):
    """A write lost a race to another writer (nothing was written): with
    ``add_items(..., exclusive=True)``, an item the pages hold was paged by
    another process meanwhile. Re-read and retry."""


class NotFoundError(InputError, KeyError):
    """An id that does not exist under the given scope. ``missing``: the item
    ids not found, where the call named several (else empty)."""

    missing: tuple[str, ...] = ()

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


def not_found(ids: Sequence[str], scope: Scope, outcome: str) -> NotFoundError:
    """The error for item ids not visible under ``scope`` (in its ``missing``);
    ``outcome`` says what the call did about it ("nothing changed")."""
    shown = ", ".join(repr(i) for i in ids[:5]) + (f" and {len(ids) - 5} more"
                                                   if len(ids) > 5 else "")
    err = NotFoundError(f"no item {shown} under {scope} ({outcome}); ids are scoped: pass "
                        "the user_id / agent_id / session_id the item was added with")
    err.missing = tuple(ids)
    return err


# --------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class NewItem:
    """An item to store.

    id:   uuid4 hex by default (:func:`new_id`); ids are random, not content
          hashes, because the same text ("ok") is legitimately said twice.
          ``content_hash`` is what to compare for duplicates.
    text: the source text, or ``None`` to keep no text (``keep_text=False``);
          then ``content_hash`` (sha256 hex of the text, :func:`text_hash`)
          must be given.
    tool_call_ids: ids of the tool calls this turn makes, or, for role
          ``"tool"``, the id of the call it answers.
    """

    kind: str
    text: str | None
    text_tokens: int
    role: str | None = None
    name: str | None = None
    time: str | None = None
    tool_call_ids: tuple[str, ...] = ()
    meta: Mapping[str, Any] = field(default_factory=dict)
    content_hash: str | None = None
    id: str = field(default_factory=lambda: new_id())


@dataclass(frozen=True)
class NewPage:
    """A page to store. ``spans`` must name items of the same write (or items
    already stored and visible under the write scope).

    text:     the laid-out page text, or ``None`` with ``keep_text=False``.
    readback: decoded text (OCR/VLM). When given it is indexed for search, so
              in ``keep_text=False`` mode pages stay findable; pass it only
              then, or search with ``sources=("item",)``, else a match shows
              once as an item hit and once as a page hit.
    """

    width: int
    height: int
    font_size: float
    png: bytes
    spans: tuple[Span, ...]
    tier: str
    text: str | None = None
    readback: str | None = None
    missing_glyphs: Mapping[str, int] = field(default_factory=dict)
    meta: Mapping[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: new_id())

    @classmethod
    def from_page(
        cls,
        page: Page,
        *,
        tier: str,
        keep_text: bool = True,
        readback: str | None = None,
        id: str | None = None,
    ) -> NewPage:
        """A draft from a rendered :class:`~optical_memory.types.Page`."""
        return cls(
            width=page.width,
            height=page.height,
            font_size=float(page.font_size),
            png=page.to_png(),
            spans=tuple(page.spans),
            tier=tier,
            text=page.text if keep_text else None,
            readback=readback,
            missing_glyphs=dict(page.missing_glyphs),
            meta=dict(page.meta),
            id=id or new_id(),
        )


@dataclass(frozen=True)
class ItemRecord:
    """A stored item. ``seq`` orders items store-wide (strictly increasing
    with insertion, never reused); ``created_at`` is ISO 8601 UTC."""

    id: str
    scope: Scope
    seq: int
    kind: str
    role: str | None
    name: str | None
    time: str | None
    text: str | None
    text_tokens: int
    tool_call_ids: tuple[str, ...]
    meta: dict[str, Any]
    content_hash: str
    created_at: str

    @property
    def metadata(self) -> dict[str, Any]:
        """The caller's metadata (``add(..., metadata=...)``), ``{}`` if none."""
        value = self.meta.get("metadata")
        return dict(value) if isinstance(value, dict) else {}


@dataclass(frozen=True)
class PageRecord:
    """A stored page. ``png`` is the master image; it is ``None`` only when
    listed with ``with_png=False``. ``tier`` is the page's current age tier."""

    id: str
    scope: Scope
    seq: int
    width: int
    height: int
    font_size: float
    png: bytes | None
    text: str | None
    readback: str | None
    spans: tuple[Span, ...]
    missing_glyphs: dict[str, int]
    meta: dict[str, Any]
    tier: str
    created_at: str

    @property
    def item_ids(self) -> tuple[str, ...]:
        """Ids of the items this page holds, in reading order, deduplicated."""
        return tuple(dict.fromkeys(s.item_id for s in self.spans))


@dataclass(frozen=True)
class RenditionRecord:
    """A page resampled for one tier; ``vision_tokens`` is an opaque
    safetensors blob (never pickle), ``encoder`` names what produced it."""

    page_id: str
    tier: str
    width: int
    height: int
    png: bytes
    vision_tokens: bytes | None = None
    encoder: str | None = None


@dataclass(frozen=True)
class SearchHit:
    """One keyword match: the best passage of one item on one page
    (:mod:`~optical_memory.store.passages`).

    source:  ``"item"`` (matched the item's text; ``item_id`` set, and
             ``page_id`` the page showing the passage, ``None`` while the
             item is on no page visible here) or ``"page"`` (matched a page's
             readback; ``page_id`` set).
    score:   BM25 relevance, higher is better; comparable within one result
             list only (not across queries or backends).
    offsets: ``(start, end)`` character ranges of query words in the matched
             text (``item.text`` or ``page.readback``), in order.
    snippet: a short excerpt around the first match, "…" where cut.
    passage: ``(start, end)`` of the matching passage in that text.
    text:    the passage's exact text (``text[passage[0]:passage[1]]``).
    """

    source: str
    item_id: str | None
    page_id: str | None
    score: float
    snippet: str
    offsets: tuple[tuple[int, int], ...]
    passage: tuple[int, int] | None = None
    text: str | None = None


@dataclass(frozen=True)
class StoreStats:
    """Totals under one scope. ``page_png_bytes`` counts master PNGs;
    ``rendition_bytes`` counts rendition PNGs plus vision-token blobs."""

    items: int
    pages: int
    renditions: int
    text_tokens: int
    page_png_bytes: int
    rendition_bytes: int
    tiers: dict[str, int]


@dataclass(frozen=True)
class ScopeCount:
    """One exact scope that holds rows, with its item and page counts
    (:meth:`Store.scopes <optical_memory.store.base.Store.scopes>`)."""

    scope: Scope
    items: int
    pages: int


@dataclass(frozen=True)
class Deleted:
    """What :meth:`Store.delete` removed.

    partial_pages: pages kept because they still hold other items, although
    their pixels (and readback) still show a deleted item; the caller should
    re-render them if the deleted text must disappear from images too
    (:meth:`OpticalMemory.delete <optical_memory.memory.OpticalMemory.delete>`
    does, and lists the new pages in ``repaged``).
    replaced: the pages that re-rendering took the place of: the partial
    pages and any page linked to them by an item split across pages, laid
    out again together (they are gone from the store).
    warnings: follow-up work that failed after the delete committed (e.g.
    re-rendering); the delete itself stands and is not to be repeated.
    missing: ids the call named that were not stored under its scope (only
    with ``missing_ok=True``; otherwise they raise :class:`NotFoundError`).
    """

    items: int
    pages: int
    partial_pages: tuple[str, ...] = ()
    repaged: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    replaced: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The result as plain JSON values."""
        return {"items": self.items, "pages": self.pages,
                "partial_pages": list(self.partial_pages), "repaged": list(self.repaged),
                "warnings": list(self.warnings), "missing": list(self.missing),
                "replaced": list(self.replaced)}


# --------------------------------------------------------------------------
# Ids, hashes, time, JSON
# --------------------------------------------------------------------------


def new_id() -> str:
    """A fresh random id (uuid4, 32 hex characters)."""
    return uuid.uuid4().hex


def text_hash(text: str) -> str:
    """sha256 hex of the UTF-8 text: an item's ``content_hash``.
    :class:`InputError` when the text is not valid Unicode (a lone surrogate)."""
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(f"text is not valid Unicode ({exc.reason} at {exc.start})") from None
    return hashlib.sha256(data).hexdigest()


def utc_now() -> str:
    """Current time, ISO 8601 UTC with microseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def dump_json(name: str, value: Any) -> str:
    """Strict JSON (no NaN) for a dict/list column; :class:`InputError` if
    the value is not JSON."""
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} must be JSON-serialisable ({exc})") from None


def spans_to_json(spans: Iterable[Span]) -> str:
    return json.dumps(
        [[s.item_id, s.start, s.end, s.page_start, s.page_end] for s in spans]
    )


def spans_from_json(raw: str) -> tuple[Span, ...]:
    return tuple(Span(str(a), int(b), int(c), int(d), int(e)) for a, b, c, d, e in json.loads(raw))
