"""Items one at a time: get, list (paginated, filtered), update (re-rendering
the pages that show the item), reset a scope. The records the facade returns
for them (:class:`MemoryItem`, :class:`ItemList`, :class:`UpdateResult`), all
with a compact ``repr`` and ``to_dict()``.

Rule for calls that name ids: an id not stored under the call's scope raises
:class:`~optical_memory.store.NotFoundError` (its ``missing`` lists the ids)
and nothing is changed: ``get``, ``update``, ``delete(item_ids=...)`` (unless
``missing_ok=True``, which deletes what is there and lists the rest in
``Deleted.missing``).
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from optical_memory.config import MAX_ADD_CHARS, MAX_PAGES_PER_ITEM
from optical_memory.errors import EmptyInputError, InputError
from optical_memory.render.paging import Repaged, render_item
from optical_memory.scope import Scope
from optical_memory.store import ItemRecord, NotFoundError, text_hash
from optical_memory.store.metadata import META_KEY, check_metadata
from optical_memory.store.records import not_found, utc_now

if TYPE_CHECKING:  # pragma: no cover
    from optical_memory.render import Renderer
    from optical_memory.render.paging import Pager
    from optical_memory.store import Store
    from optical_memory.tokens import TextCounter

#: Most items one ``get_all`` call returns.
MAX_LIST = 10_000


def _clip(text: str | None, n: int = 60) -> str | None:
    if text is None or len(text) <= n:
        return text
    return text[: n - 1] + "…"


@dataclass(frozen=True)
class MemoryItem:
    """A stored item: a chat turn, a document or a text.

    text:     what is stored (and drawn on pages): a turn's content followed
              by one ``→ name(arguments) [id]`` line per tool call it made;
              ``None`` with ``keep_text=False``.
    metadata: the caller's metadata (``add(..., metadata=...)``).
    page_ids: the pages that show it, oldest first; ``()`` while it is a
              recent turn kept as text.
    updated_at: when :meth:`~optical_memory.memory.OpticalMemory.update`
              last changed it (ISO 8601 UTC), else ``None``.
    """

    id: str
    scope: Scope
    kind: str
    role: str | None
    name: str | None
    text: str | None = field(repr=False)
    metadata: dict[str, Any]
    text_tokens: int
    page_ids: tuple[str, ...]
    created_at: str
    updated_at: str | None = None
    seq: int = field(default=0, repr=False)

    @classmethod
    def of(cls, rec: ItemRecord, page_ids: Sequence[str] = ()) -> MemoryItem:
        updated = rec.meta.get("updated_at")
        return cls(rec.id, rec.scope, rec.kind, rec.role, rec.name, rec.text, rec.metadata,
                   rec.text_tokens, tuple(page_ids), rec.created_at,
                   updated if isinstance(updated, str) else None, rec.seq)

    def __repr__(self) -> str:
        return (f"MemoryItem(id={self.id!r}, kind={self.kind!r}, role={self.role!r}, "
                f"text={_clip(self.text)!r}, metadata={self.metadata!r}, "
                f"pages={len(self.page_ids)}, scope={self.scope})")

    def to_dict(self) -> dict[str, Any]:
        """The item as plain JSON values."""
        return {"id": self.id, "scope": self.scope.as_kwargs(), "kind": self.kind,
                "role": self.role, "name": self.name, "text": self.text,
                "metadata": self.metadata, "text_tokens": self.text_tokens,
                "page_ids": list(self.page_ids), "created_at": self.created_at,
                "updated_at": self.updated_at}


@dataclass(frozen=True)
class ItemList:
    """One page of :meth:`~optical_memory.memory.OpticalMemory.get_all`:
    ``items`` in order, and ``next_cursor`` to pass as ``cursor`` for the next
    page (``None``: this was the last). Iterating it iterates the items."""

    items: tuple[MemoryItem, ...]
    next_cursor: str | None

    def __iter__(self) -> Iterator[MemoryItem]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> MemoryItem:
        return self.items[index]

    def __repr__(self) -> str:
        return f"ItemList({len(self.items)} items, next_cursor={self.next_cursor!r})"

    def to_dict(self) -> dict[str, Any]:
        return {"items": [i.to_dict() for i in self.items], "next_cursor": self.next_cursor}


@dataclass(frozen=True)
class UpdateResult:
    """What :meth:`~optical_memory.memory.OpticalMemory.update` changed.

    previous_text: the text before (the memory keeps no history of it).
    replaced / repaged: every page laid out again (those that showed the old
        text and the pages linked to them by an item split across both) and
        the new pages in their place; ``partial_pages``: pages that could not
        be re-rendered and still show the old text (``warnings`` says why; a
        later ``update`` of the item retries).
    """

    item_id: str
    text_tokens: int
    previous_text: str | None = field(repr=False)
    replaced: tuple[str, ...] = ()
    repaged: tuple[str, ...] = ()
    partial_pages: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"item_id": self.item_id, "text_tokens": self.text_tokens,
                "previous_text": self.previous_text, "replaced": list(self.replaced),
                "repaged": list(self.repaged), "partial_pages": list(self.partial_pages),
                "warnings": list(self.warnings)}


def get(store: Store, item_id: str, scope: Scope) -> MemoryItem:
    """The item with the pages it lies on; :class:`NotFoundError` if not under ``scope``."""
    rec = store.get_item(item_id, scope)
    if rec is None:
        raise not_found([item_id], scope, "nothing to read")
    return MemoryItem.of(rec, store.item_pages([item_id], scope).get(item_id, ()))


def _cursor(cursor: object, newest_first: bool) -> int | None:
    if cursor is None:
        return None
    want = "d" if newest_first else "a"
    if not isinstance(cursor, str) or cursor[:1] not in ("a", "d") or not cursor[1:].isdigit():
        raise InputError(f"cursor must be a next_cursor from get_all (got {cursor!r})")
    if cursor[0] != want:
        raise InputError("cursor comes from a get_all with the other newest_first; "
                         "page through with the same arguments")
    return int(cursor[1:])


def get_all(store: Store, scope: Scope, *, kinds: Sequence[str] | None,
            roles: Sequence[str] | None, metadata: Mapping[str, Any] | None, limit: int,
            cursor: str | None, newest_first: bool) -> ItemList:
    """One page of the items under ``scope`` (see :class:`ItemList`)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST:
        raise InputError(f"limit must be an int from 1 to {MAX_LIST} (got {limit!r})")
    seq = _cursor(cursor, newest_first)
    recs = store.list_items(scope, kinds=kinds, roles=roles, metadata=metadata,
                            limit=limit + 1, newest_first=newest_first,
                            since_seq=None if newest_first else seq,
                            before_seq=seq if newest_first else None)
    more = len(recs) > limit
    recs = recs[:limit]
    pages = store.item_pages([r.id for r in recs], scope) if recs else {}
    items = tuple(MemoryItem.of(r, pages.get(r.id, ())) for r in recs)
    nxt = f"{'d' if newest_first else 'a'}{recs[-1].seq}" if more else None
    return ItemList(items, nxt)


def _new_text(rec: ItemRecord, text: object) -> tuple[str, dict[str, Any]]:
    """The item's stored text and meta with ``text`` as its new content (a
    turn keeps its tool-call lines after it)."""
    if not isinstance(text, str):
        raise InputError(f"text must be a string (got {type(text).__name__})")
    if not text.strip():
        raise EmptyInputError("nothing to store: the new text is empty or whitespace only")
    meta = dict(rec.meta)
    full = text
    if rec.kind == "turn":
        old = rec.text or ""
        n = meta.get("content_len", len(old))
        full = text + (old[n:] if isinstance(n, int) else "")
        meta["content_len"] = len(text)
    if len(full) > MAX_ADD_CHARS:
        raise InputError(f"text too large: {len(full)} characters (limit {MAX_ADD_CHARS})")
    return full, meta


def update(store: Store, pager: Pager, counter: TextCounter, renderer: Renderer, item_id: str,
           scope: Scope, *, text: str | None, metadata: Mapping[str, Any] | None,
           keep_text: bool) -> UpdateResult:
    """Replace an item's text (and/or metadata) and re-render the pages that
    show it. Checks run first; :class:`NotFoundError` / :class:`InputError`
    change nothing."""
    if text is None and metadata is None:
        raise InputError("nothing to update: give text and/or metadata")
    rec = store.get_item(item_id, scope)
    if rec is None:
        raise not_found([item_id], scope, "nothing changed")
    full, meta = (rec.text, dict(rec.meta)) if text is None else _new_text(rec, text)
    if metadata is not None:
        meta[META_KEY] = check_metadata(metadata)
    meta["updated_at"] = utc_now()
    if text is None:
        store.update_item(item_id, scope, text=rec.text, text_tokens=rec.text_tokens,
                          content_hash=rec.content_hash, meta=meta, reindex=False)
        return UpdateResult(item_id, rec.text_tokens, rec.text)
    if not keep_text or rec.text is None:
        raise InputError("update(text=...) needs the item's stored text to re-render its "
                         "pages; this memory keeps no text (keep_text=False)")
    assert full is not None
    if len(full) > MAX_PAGES_PER_ITEM and \
            len(renderer.layout([render_item(replace(rec, text=full))])) > MAX_PAGES_PER_ITEM:
        raise InputError(f"the new text fills more than {MAX_PAGES_PER_ITEM} pages")
    tokens = counter.count(full)
    pages = store.update_item(item_id, scope, text=full, text_tokens=tokens,
                              content_hash=text_hash(full), meta=meta)
    done = pager.repage(pages, scope) if pages else Repaged()
    return UpdateResult(item_id, tokens, rec.text, done.replaced, done.made, done.kept,
                        done.warnings)


def reset_scope(user_id: str | None, agent_id: str | None, session_id: str | None,
                all_scopes: bool) -> Scope | None:
    """The scope a ``reset`` erases (``None``: every scope), refusing the
    ambiguous calls: no ``user_id`` without ``all_scopes=True``, or both."""
    if all_scopes:
        if user_id is not None or agent_id is not None or session_id is not None:
            raise InputError("reset(all_scopes=True) erases every scope; do not also name one")
        return None
    if user_id is None:
        raise InputError("reset needs user_id= (and optionally agent_id= / session_id=); "
                         "reset(all_scopes=True) erases every user's memory")
    return Scope(user_id, agent_id, session_id)


__all__ = ["MAX_LIST", "ItemList", "MemoryItem", "NotFoundError", "UpdateResult", "get",
           "get_all", "reset_scope", "update"]
