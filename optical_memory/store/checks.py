"""Argument checks shared by every backend, so all refuse bad input alike
(with :class:`~optical_memory.errors.InputError`, before anything is written):
drafts (:func:`check_item`, :func:`check_page`, :func:`check_write`),
renditions and their PNGs (:func:`check_rendition`, :func:`check_png`), and
the arguments of reads and deletes (scope, limits, kinds, tiers, sources, ids).
"""
from __future__ import annotations

import math
import re
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

from optical_memory.errors import EmptyInputError, InputError
from optical_memory.scope import Scope, check_id, check_text as _check_text
from optical_memory.store.records import (
    KINDS,
    SOURCES,
    NewItem,
    NewPage,
    RenditionRecord,
    text_hash,
)
from optical_memory.types import Span

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Most pixels a stored page or rendition PNG may declare in its header (a
#: decompression bomb is refused before anything decodes it).
MAX_PAGE_PIXELS = 50_000_000


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


def check_per_page(per_page: object) -> int:
    """``search``'s ``per_page``: an int >= 1."""
    _check_int("per_page", per_page, minimum=1)
    assert isinstance(per_page, int)
    return per_page


def check_kinds(kinds: Sequence[str] | None) -> tuple[str, ...] | None:
    if kinds is None:
        return None
    if isinstance(kinds, str):
        kinds = (kinds,)
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise InputError(f"unknown kinds {bad} (known: {KINDS})")
    return tuple(kinds)


def check_roles(roles: Sequence[str] | None) -> tuple[str, ...] | None:
    """A roles filter: None (any), or role names (one string is one role)."""
    if roles is None:
        return None
    if isinstance(roles, str):
        roles = (roles,)
    if not isinstance(roles, Iterable):
        raise InputError(f"roles must be a sequence of role names (got {type(roles).__name__})")
    roles = tuple(roles)
    for i, role in enumerate(roles):
        check_id(f"roles[{i}]", role)
    return roles


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
