"""The storage protocol every backend implements, and the records it returns.

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
:class:`RenditionRecord`). Everything that is not a backend detail lives here
(validation, query escaping, snippets) so every backend behaves the same and
one test suite runs against all of them.

Scope rule: a write stores the scope it is given; a read with
``Scope(user_id=u)`` sees all of ``u``'s rows, and an ``agent_id`` /
``session_id`` set on the read scope narrows it to rows stored with exactly
that value (rows stored with ``None`` there are then not seen). No read or
write ever crosses ``user_id``. An id that exists under another scope reads as
absent (``None`` / :class:`NotFoundError`), never as "forbidden".
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import struct
import unicodedata
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Protocol, runtime_checkable

from optical_memory.errors import EmptyInputError, InputError, OpticalMemoryError
from optical_memory.types import Page, Span

KINDS = ("turn", "document", "text")
SOURCES = ("item", "page")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Search limits: a query is cut to this many phrases, each to this many words,
# so a pasted novel cannot become a pathological FTS query.
MAX_QUERY_PHRASES = 32
MAX_PHRASE_WORDS = 16
MAX_OFFSETS = 64
SNIPPET_CONTEXT = 60
#: Most pixels a stored page or rendition PNG may declare in its header (a
#: decompression bomb is refused before anything decodes it).
MAX_PAGE_PIXELS = 50_000_000


class StoreError(OpticalMemoryError, RuntimeError):
    """The backend failed (I/O, corruption, a lock held past the timeout)."""


class ConflictError(StoreError):
    """A write lost a race to another writer (nothing was written): with
    ``add_items(..., exclusive=True)``, an item the pages hold was paged by
    another process meanwhile. Re-read and retry."""


class NotFoundError(InputError, KeyError):
    """An id that does not exist under the given scope."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


# --------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """Who a row belongs to. ``user_id`` is required; the others narrow."""

    user_id: str = "default"
    agent_id: str | None = None
    session_id: str | None = None

    def __post_init__(self) -> None:
        check_id("scope.user_id", self.user_id)
        if self.agent_id is not None:
            check_id("scope.agent_id", self.agent_id)
        if self.session_id is not None:
            check_id("scope.session_id", self.session_id)

    def sees(self, other: Scope) -> bool:
        """True when a read under ``self`` sees a row stored under ``other``."""
        return (
            self.user_id == other.user_id
            and (self.agent_id is None or self.agent_id == other.agent_id)
            and (self.session_id is None or self.session_id == other.session_id)
        )


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
    """One keyword match.

    source:  ``"item"`` (matched the item's text; ``item_id`` set) or
             ``"page"`` (matched a page's readback; ``page_id`` set).
    score:   BM25 relevance, higher is better; comparable within one result
             list only (not across queries or backends).
    offsets: ``(start, end)`` character ranges of query words in the matched
             text (``item.text`` or ``page.readback``), in order.
    snippet: a short excerpt around the first match, "…" where cut.
    """

    source: str
    item_id: str | None
    page_id: str | None
    score: float
    snippet: str
    offsets: tuple[tuple[int, int], ...]


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
class Deleted:
    """What :meth:`Store.delete` removed.

    partial_pages: pages kept because they still hold other items, although
    their pixels (and readback) still show a deleted item; the caller should
    re-render them if the deleted text must disappear from images too
    (:meth:`OpticalMemory.delete <optical_memory.memory.OpticalMemory.delete>`
    does, and lists the new pages in ``repaged``).
    """

    items: int
    pages: int
    partial_pages: tuple[str, ...] = ()
    repaged: tuple[str, ...] = ()


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
    ) -> list[ItemRecord]:
        """Items by ``seq`` (ascending, or descending with ``newest_first``);
        ``since_seq`` keeps ``seq > since_seq``; ``on_page`` True/False keeps
        items that some page holds / that no page holds yet."""
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
    ) -> list[SearchHit]:
        """Up to ``k`` best BM25 hits. The query is split into words and any
        word matches (OR); FTS syntax in it is never interpreted."""
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

    def delete(self, scope: Scope, *, item_ids: Sequence[str] | None = None) -> Deleted:
        """Delete the items visible under ``scope`` (all, or those of
        ``item_ids``), the pages left holding no item, their renditions and
        search rows."""
        ...

    def stats(self, scope: Scope) -> StoreStats: ...

    def close(self) -> None: ...

    def __enter__(self) -> Store: ...

    def __exit__(self, *exc: object) -> None: ...


# --------------------------------------------------------------------------
# Helpers shared by backends
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


def _check_text(name: str, value: object, *, optional: bool = True) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str):
        raise InputError(f"{name} must be a string (got {type(value).__name__})")
    if "\x00" in value:
        raise InputError(f"{name} contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(f"{name} is not valid Unicode ({exc.reason} at {exc.start})") from None


def check_id(name: str, value: object) -> None:
    """A non-empty, NUL-free, valid-Unicode string of at most 256 characters."""
    _check_text(name, value, optional=False)
    assert isinstance(value, str)
    if not value.strip():
        raise InputError(f"{name} must be a non-empty string (got {value!r})")
    if len(value) > 256:
        raise InputError(f"{name} is longer than 256 characters (got {len(value)})")


def _check_int(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum} (got {value!r})")


def check_scope(scope: object) -> Scope:
    if not isinstance(scope, Scope):
        raise InputError(f"scope must be a Scope (got {type(scope).__name__})")
    return scope


def check_item(item: object, index: int) -> NewItem:
    """Validate a draft item; returns it with ``content_hash`` filled in."""
    where = f"items[{index}]"
    if not isinstance(item, NewItem):
        raise InputError(f"{where} must be a NewItem (got {type(item).__name__})")
    check_id(f"{where}.id", item.id)
    if item.kind not in KINDS:
        raise InputError(f"{where}.kind must be one of {KINDS} (got {item.kind!r})")
    if item.kind == "document" and item.role is not None:
        raise InputError(f"{where}: a document has no role (got {item.role!r})")
    if item.kind == "turn" and item.role is None:
        raise InputError(f"{where}: a turn needs a role")
    if item.role is not None:
        check_id(f"{where}.role", item.role)
    _check_text(f"{where}.name", item.name)
    _check_text(f"{where}.time", item.time)
    _check_text(f"{where}.text", item.text)
    _check_int(f"{where}.text_tokens", item.text_tokens, minimum=0)
    if isinstance(item.tool_call_ids, str) or not isinstance(item.tool_call_ids, tuple | list):
        raise InputError(f"{where}.tool_call_ids must be a tuple of strings")
    for j, call_id in enumerate(item.tool_call_ids):
        check_id(f"{where}.tool_call_ids[{j}]", call_id)
    if not isinstance(item.meta, Mapping):
        raise InputError(f"{where}.meta must be a mapping (got {type(item.meta).__name__})")
    if item.text is not None:
        digest = text_hash(item.text)
        if item.content_hash is not None and item.content_hash != digest:
            raise InputError(f"{where}.content_hash does not match its text")
        return replace(item, content_hash=digest)
    if item.content_hash is None or not re.fullmatch(r"[0-9a-f]{64}", str(item.content_hash)):
        raise InputError(
            f"{where}: an item without text needs content_hash, the sha256 hex of "
            f"its text (got {item.content_hash!r})"
        )
    return item


def check_page(page: object, index: int) -> NewPage:
    where = f"pages[{index}]"
    if not isinstance(page, NewPage):
        raise InputError(f"{where} must be a NewPage (got {type(page).__name__})")
    check_id(f"{where}.id", page.id)
    _check_int(f"{where}.width", page.width, minimum=1)
    _check_int(f"{where}.height", page.height, minimum=1)
    check_png(f"{where}.png", page.png, size=(page.width, page.height))
    if isinstance(page.font_size, bool) or not isinstance(page.font_size, int | float) or not (
        math.isfinite(page.font_size) and page.font_size > 0
    ):
        raise InputError(f"{where}.font_size must be a positive number (got {page.font_size!r})")
    check_id(f"{where}.tier", page.tier)
    _check_text(f"{where}.text", page.text)
    _check_text(f"{where}.readback", page.readback)
    if not isinstance(page.spans, tuple | list) or not page.spans:
        raise EmptyInputError(f"{where} holds no spans; a page must hold at least one item")
    for j, span in enumerate(page.spans):
        if not isinstance(span, Span):
            raise InputError(f"{where}.spans[{j}] must be a Span (got {type(span).__name__})")
        check_id(f"{where}.spans[{j}].item_id", span.item_id)
        for attr in ("start", "end", "page_start", "page_end"):
            _check_int(f"{where}.spans[{j}].{attr}", getattr(span, attr), minimum=0)
        if span.end < span.start or span.page_end < span.page_start:
            raise InputError(f"{where}.spans[{j}] ends before it starts ({span})")
        if page.text is not None and span.page_end > len(page.text):
            raise InputError(
                f"{where}.spans[{j}].page_end is {span.page_end}, past the end of the "
                f"page text ({len(page.text)} characters)"
            )
    for name, value in (("missing_glyphs", page.missing_glyphs), ("meta", page.meta)):
        if not isinstance(value, Mapping):
            raise InputError(f"{where}.{name} must be a mapping (got {type(value).__name__})")
    return page


def check_write(
    items: Sequence[object], pages: Sequence[object], scope: object
) -> tuple[Scope, list[NewItem], list[NewPage]]:
    """Check one ``add_items`` call: the scope, every item and page, at least
    one of them, and no id twice within the call."""
    checked_scope = check_scope(scope)
    checked_items = [check_item(item, i) for i, item in enumerate(items)]
    checked_pages = [check_page(page, i) for i, page in enumerate(pages)]
    if not checked_items and not checked_pages:
        raise InputError("add_items needs at least one item or page")
    for name, records in (("item", checked_items), ("page", checked_pages)):
        ids = [r.id for r in records]
        if len(set(ids)) != len(ids):
            raise InputError(f"duplicate {name} ids in one write")
    return checked_scope, checked_items, checked_pages


def check_item_ids(item_ids: object) -> list[str] | None:
    """``delete``'s ``item_ids``: None (all in scope) or ids, checked, each once."""
    if item_ids is None:
        return None
    if isinstance(item_ids, str):
        raise InputError("item_ids must be a sequence of ids, not one string")
    if isinstance(item_ids, bytes) or not isinstance(item_ids, Iterable):
        raise InputError(f"item_ids must be a sequence of ids (got {type(item_ids).__name__})")
    ids = list(item_ids)
    for i, item_id in enumerate(ids):
        check_id(f"item_ids[{i}]", item_id)
    return list(dict.fromkeys(ids))


def check_png(name: str, png: object, *, size: tuple[int, int] | None = None) -> None:
    """PNG signature and IHDR header: non-zero dimensions, at most
    :data:`MAX_PAGE_PIXELS`, equal to ``size`` (the record's width, height)."""
    if not isinstance(png, bytes | bytearray | memoryview):
        raise InputError(f"{name} must be bytes (got {type(png).__name__})")
    head = bytes(png[:24])
    if head[:8] != PNG_SIGNATURE:
        raise InputError(f"{name} is not a PNG (bad signature)")
    if len(head) < 24 or head[12:16] != b"IHDR":
        raise InputError(f"{name} is not a PNG (no IHDR header; {len(png)} bytes)")
    width, height = struct.unpack(">II", head[16:24])
    if width == 0 or height == 0 or width * height > MAX_PAGE_PIXELS:
        raise InputError(f"{name} is {width}x{height} = {width * height} pixels "
                         f"(must be 1 to {MAX_PAGE_PIXELS})")
    if size is not None and (width, height) != tuple(size):
        raise InputError(f"{name} is {width}x{height} but the record says {size[0]}x{size[1]}")


def check_rendition(rendition: object) -> RenditionRecord:
    if not isinstance(rendition, RenditionRecord):
        raise InputError(f"rendition must be a RenditionRecord (got {type(rendition).__name__})")
    check_id("rendition.page_id", rendition.page_id)
    check_id("rendition.tier", rendition.tier)
    _check_int("rendition.width", rendition.width, minimum=1)
    _check_int("rendition.height", rendition.height, minimum=1)
    check_png("rendition.png", rendition.png, size=(rendition.width, rendition.height))
    if rendition.vision_tokens is not None and not isinstance(
        rendition.vision_tokens, bytes | bytearray | memoryview
    ):
        raise InputError("rendition.vision_tokens must be bytes or None")
    _check_text("rendition.encoder", rendition.encoder)
    return rendition


def check_limit(name: str, value: object) -> None:
    if value is not None:
        _check_int(name, value, minimum=0)


def check_kinds(kinds: Sequence[str] | None) -> tuple[str, ...] | None:
    if kinds is None:
        return None
    if isinstance(kinds, str):
        kinds = (kinds,)
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise InputError(f"unknown kinds {bad} (known: {KINDS})")
    return tuple(kinds)


def check_tiers(tiers: Sequence[str] | None) -> tuple[str, ...] | None:
    if tiers is None:
        return None
    if isinstance(tiers, str):
        tiers = (tiers,)
    for i, tier in enumerate(tiers):
        check_id(f"tiers[{i}]", tier)
    return tuple(tiers)


def check_sources(sources: Sequence[str]) -> tuple[str, ...]:
    if isinstance(sources, str):
        sources = (sources,)
    bad = [s for s in sources if s not in SOURCES]
    if bad:
        raise InputError(f"unknown search sources {bad} (known: {SOURCES})")
    return tuple(sources)


# --------------------------------------------------------------------------
# Query escaping, offsets, snippets (backend-neutral)
# --------------------------------------------------------------------------

_WORD = re.compile(r"[^\W_]+")


def query_phrases(query: str) -> tuple[tuple[str, ...], ...]:
    """Split a user query into phrases of plain words.

    Whitespace separates phrases; inside one, every run of letters/digits is
    a word and everything else (quotes, ``*``, ``:``, ``^``, ``-``, brackets,
    NUL, emoji) is dropped. Only letters, digits and spaces ever reach the
    backend's query parser, so no FTS syntax can be injected; ``OR``,
    ``NEAR`` etc. become ordinary words. Returns () when nothing is left.
    """
    if not isinstance(query, str):
        raise InputError(f"query must be a string (got {type(query).__name__})")
    query = unicodedata.normalize("NFC", query)
    phrases: list[tuple[str, ...]] = []
    for chunk in query.split():
        words = tuple(_WORD.findall(chunk))[:MAX_PHRASE_WORDS]
        if words and words not in phrases:
            phrases.append(words)
        if len(phrases) == MAX_QUERY_PHRASES:
            break
    return tuple(phrases)


def fts5_match_expression(phrases: Sequence[Sequence[str]]) -> str:
    """SQLite FTS5 MATCH string: each phrase an FTS5 string literal
    (``"a b"``, quotes doubled), phrases joined by OR (ranked by bm25, so
    rows matching more and rarer words come first)."""
    return " OR ".join('"' + " ".join(p).replace('"', '""') + '"' for p in phrases)


def match_offsets(text: str, phrases: Sequence[Sequence[str]]) -> tuple[tuple[int, int], ...]:
    """Character ranges of the query words in ``text`` (case-insensitive,
    whole words), sorted, at most :data:`MAX_OFFSETS`."""
    words = sorted({w.casefold() for p in phrases for w in p}, key=len, reverse=True)
    if not words or not text:
        return ()
    pattern = re.compile(
        r"(?<![^\W_])(?:" + "|".join(map(re.escape, words)) + r")(?![^\W_])", re.IGNORECASE
    )
    return tuple(m.span() for m in pattern.finditer(text))[:MAX_OFFSETS]


def make_snippet(text: str, offsets: Sequence[tuple[int, int]]) -> str:
    """About ``2 * SNIPPET_CONTEXT`` characters around the first match."""
    if not text:
        return ""
    start, end = offsets[0] if offsets else (0, 0)
    lo = max(0, start - SNIPPET_CONTEXT)
    hi = min(len(text), end + SNIPPET_CONTEXT)
    core = " ".join(text[lo:hi].split())
    return ("…" if lo > 0 else "") + core + ("…" if hi < len(text) else "")
