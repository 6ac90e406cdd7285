"""The write half of the Store protocol's SQL, written once for both SQL
backends: the INSERT rows and statements, the checks an ``add_items`` runs in
its transaction (spans, ``exclusive``, ``replaces``), the whole ``add_items``
insert (:func:`insert_write`) and ``delete`` (:func:`delete_items`) sequences,
and the :class:`SqlWrites` mixin (``set_tier``, ``put_rendition``). Every
value is a bound parameter; transactions and locking stay with each backend.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from optical_memory.errors import InputError
from optical_memory.scope import Scope, check_id
from optical_memory.store.checks import check_rendition, check_scope, check_write
from optical_memory.store.passages import (
    index_write,
    insert_passage_sql,
    items_of_pages,
    passage_rows,
)
from optical_memory.store.records import (
    ConflictError,
    Deleted,
    NewItem,
    NewPage,
    NotFoundError,
    RenditionRecord,
    dump_json,
    not_found,
    spans_to_json,
    utc_now,
)
from optical_memory.store.sql_dialect import ITEM_FIELDS, PAGE_FIELDS, Dialect

# --------------------------------------------------------------------------
# Writes: statements and rows (each backend runs them in its own transaction)
# --------------------------------------------------------------------------

#: Inserted columns, in row order (``seq`` is assigned by the database).
ITEM_INSERT = tuple(c for c in ITEM_FIELDS if c != "seq")
PAGE_INSERT = tuple(c for c in PAGE_FIELDS if c != "seq")


def insert_sql(d: Dialect, table: str, columns: Sequence[str]) -> str:
    return (f"INSERT INTO {table} ({', '.join(columns)}) "
            f"VALUES ({', '.join([d.mark] * len(columns))})")


def item_rows(items: Sequence[NewItem], scope: Scope, now: str) -> list[tuple[Any, ...]]:
    """Rows for :data:`ITEM_INSERT` (items already checked)."""
    return [
        (
            item.id, scope.user_id, scope.agent_id, scope.session_id, item.kind,
            item.role, item.name, item.time, item.text, item.text_tokens,
            dump_json(f"items[{i}].tool_call_ids", list(item.tool_call_ids)),
            dump_json(f"items[{i}].meta", dict(item.meta)),
            item.content_hash, now,
        )
        for i, item in enumerate(items)
    ]


def page_rows(pages: Sequence[NewPage], scope: Scope, now: str) -> list[tuple[Any, ...]]:
    """Rows for :data:`PAGE_INSERT` (pages already checked)."""
    return [
        (
            page.id, scope.user_id, scope.agent_id, scope.session_id, page.width,
            page.height, float(page.font_size), bytes(page.png), page.text,
            page.readback, spans_to_json(page.spans),
            dump_json(f"pages[{i}].missing_glyphs", dict(page.missing_glyphs)),
            dump_json(f"pages[{i}].meta", dict(page.meta)),
            page.tier, now,
        )
        for i, page in enumerate(pages)
    ]


def page_item_rows(page: NewPage) -> list[tuple[str, str]]:
    """``(page_id, item_id)`` once per item the page holds, in span order."""
    return [(page.id, item_id) for item_id in dict.fromkeys(s.item_id for s in page.spans)]


#: Ids per list-membership condition (well under SQLite's bound-variable limit).
CHUNK = 500


def chunks(values: Sequence[Any], size: int = CHUNK) -> list[Sequence[Any]]:
    return [values[i : i + size] for i in range(0, len(values), size)]


def span_items_query(d: Dialect, item_ids: Sequence[str]) -> tuple[str, list[Any]]:
    """Scope and text length of the items ``item_ids`` (share-locked)."""
    cond, params = d.in_list("i.id", item_ids)
    return (
        "SELECT i.id AS id, i.user_id AS user_id, i.agent_id AS agent_id, "
        f"i.session_id AS session_id, length(i.text) AS length FROM {d.items} i "
        f"WHERE {cond}{d.lock_shared}",
        params,
    )


def check_page_spans(
    d: Dialect,
    fetch: Callable[[str, list[Any]], Sequence[Mapping[str, Any]]],
    index: int,
    page: NewPage,
    scope: Scope,
) -> None:
    """Every span of ``pages[index]`` names an item visible under the write
    scope and ends within its text; ``fetch(sql, params)`` runs a query in the
    write's transaction and returns its rows."""
    wanted = list(dict.fromkeys(s.item_id for s in page.spans))
    found = {r["id"]: r for chunk in chunks(wanted) for r in fetch(*span_items_query(d, chunk))}
    for item_id in wanted:
        row = found.get(item_id)
        if row is None or not scope.sees(Scope(row["user_id"], row["agent_id"], row["session_id"])):
            raise InputError(
                f"pages[{index}] holds item {item_id!r}, which is not stored under {scope}"
            )
    for j, span in enumerate(page.spans):
        length = found[span.item_id]["length"]
        if length is not None and span.end > length:
            raise InputError(
                f"pages[{index}].spans[{j}] ends at {span.end}, past the end of item "
                f"{span.item_id!r} ({length} characters)"
            )


def paged_items_query(d: Dialect, item_ids: Sequence[str]) -> tuple[str, list[Any]]:
    """Which of ``item_ids`` some stored page already holds."""
    cond, params = d.in_list("pi.item_id", item_ids)
    return f"SELECT DISTINCT pi.item_id AS item_id FROM {d.page_items} pi WHERE {cond}", params


def check_unpaged(
    d: Dialect,
    fetch: Callable[[str, list[Any]], Sequence[Mapping[str, Any]]],
    pages: Sequence[NewPage],
) -> None:
    """``add_items(exclusive=True)``: no item ``pages`` hold is on a stored page."""
    wanted = list(dict.fromkeys(s.item_id for page in pages for s in page.spans))
    for chunk in chunks(wanted):
        taken = [r["item_id"] for r in fetch(*paged_items_query(d, chunk))]
        if taken:
            raise ConflictError(
                f"{len(taken)} of the items these pages hold are already on a page "
                f"(e.g. {taken[0]!r}); another writer paged them first"
            )


def check_replaced(
    d: Dialect,
    fetch: Callable[[str, list[Any]], Sequence[Mapping[str, Any]]],
    page_ids: Sequence[str],
    scope: Scope,
) -> list[str]:
    """``add_items(replaces=...)``: the ids, each once, all of pages visible
    under ``scope`` (else :class:`NotFoundError`)."""
    if isinstance(page_ids, str):
        raise InputError("replaces must be a sequence of page ids, not one string")
    wanted = list(dict.fromkeys(page_ids))
    for i, page_id in enumerate(wanted):
        check_id(f"replaces[{i}]", page_id)
    where, params = d.scope_where(scope, "p")
    found: set[str] = set()
    for chunk in chunks(wanted):
        cond, ids = d.in_list("p.id", chunk)
        found.update(r["id"] for r in fetch(
            f"SELECT p.id AS id FROM {d.pages} p WHERE {cond} AND {where}{d.lock_shared}",
            [*ids, *params]))
    missing = [p for p in wanted if p not in found]
    if missing:
        raise NotFoundError(f"no page {missing[0]!r} under {scope} (replaces)")
    return wanted


def delete_pages_query(d: Dialect, page_ids: Sequence[str]) -> tuple[str, list[Any]]:
    """DELETE of pages by id (their page_items, renditions and passages cascade)."""
    cond, params = d.in_list("id", page_ids)
    return f"DELETE FROM {d.pages} WHERE {cond}", params


Fetch = Callable[[str, list[Any]], Sequence[Mapping[str, Any]]]


def before_inserts(
    d: Dialect,
    fetch: Fetch,
    run: Callable[[str, list[Any]], Any],
    scope: Scope,
    pages: Sequence[NewPage],
    *,
    replaces: Sequence[str],
    exclusive: bool,
) -> list[str]:
    """``add_items``' steps before its INSERTs, in its transaction: delete the
    pages it ``replaces``, then (``exclusive``) check no item of ``pages`` is
    on another page. ``fetch`` runs a query and returns its rows, ``run`` a
    statement. Returns the items the replaced pages held."""
    released: list[str] = []
    if replaces:
        wanted = check_replaced(d, fetch, replaces, scope)
        released = items_of_pages(d, fetch, wanted)
        for chunk in chunks(wanted):
            run(*delete_pages_query(d, chunk))
    if exclusive:
        check_unpaged(d, fetch, pages)
    return released


def set_tier_query(d: Dialect, page_id: str, tier: str, scope: Scope) -> tuple[str, list[Any]]:
    """UPDATE of one page's tier; it touches no row when the page is not under ``scope``."""
    scope = check_scope(scope)
    check_id("page_id", page_id)
    check_id("tier", tier)
    where, params = d.scope_where(scope, "p")
    return (
        f"UPDATE {d.pages} AS p SET tier = {d.mark} WHERE p.id = {d.mark} AND {where}",
        [tier, page_id, *params],
    )


def page_visible_query(d: Dialect, page_id: str, scope: Scope) -> tuple[str, list[Any]]:
    """One row if the page is under ``scope`` (share-locked, so it stays until commit)."""
    where, params = d.scope_where(scope, "p")
    return (
        f"SELECT 1 FROM {d.pages} p WHERE p.id = {d.mark} AND {where}{d.lock_shared}",
        [page_id, *params],
    )


RENDITION_INSERT = (
    "page_id", "tier", "width", "height", "png", "vision_tokens", "encoder", "created_at",
)


def upsert_rendition(d: Dialect, r: RenditionRecord, now: str) -> tuple[str, list[Any]]:
    """INSERT of a (checked) rendition that replaces the page's one of that tier."""
    updated = ", ".join(f"{c} = excluded.{c}" for c in RENDITION_INSERT[2:])
    return (
        f"{insert_sql(d, d.renditions, RENDITION_INSERT)} "
        f"ON CONFLICT (page_id, tier) DO UPDATE SET {updated}",
        [
            r.page_id, r.tier, r.width, r.height, bytes(r.png),
            bytes(r.vision_tokens) if r.vision_tokens is not None else None,
            r.encoder, now,
        ],
    )


# --------------------------------------------------------------------------
# add_items and delete, once for both backends (each runs them on its own
# connection or cursor, inside its own transaction and locks)
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Write:
    """One checked ``add_items`` call and its INSERT rows."""

    scope: Scope
    items: list[NewItem]
    pages: list[NewPage]
    rows_items: list[tuple[Any, ...]]
    rows_pages: list[tuple[Any, ...]]

    @property
    def ids(self) -> tuple[list[str], list[str]]:
        """What ``add_items`` returns: the item ids and page ids, in input order."""
        return [item.id for item in self.items], [page.id for page in self.pages]


def prepare_write(items: Sequence[object], pages: Sequence[object], scope: object) -> Write:
    """Check an ``add_items`` call (:func:`check_write`) and build its rows;
    run it before the transaction, so bad input costs no lock."""
    scope, checked_items, checked_pages = check_write(items, pages, scope)
    now = utc_now()
    return Write(scope, checked_items, checked_pages,
                 item_rows(checked_items, scope, now), page_rows(checked_pages, scope, now))


def insert_write(
    d: Dialect,
    cur: Any,
    write: Write,
    *,
    replaces: Sequence[str],
    exclusive: bool,
) -> None:
    """``add_items``' statements on ``cur`` (a ``sqlite3.Connection`` or a
    psycopg cursor, in the write's transaction): :func:`before_inserts`, the
    items, each page after checking its spans, then their search passages
    (:func:`~optical_memory.store.passages.index_write`)."""

    def fetch(q: str, params: list[Any]) -> list[Any]:
        return cur.execute(q, params).fetchall()

    released = before_inserts(d, fetch, cur.execute, write.scope, write.pages,
                              replaces=replaces, exclusive=exclusive)
    if write.rows_items:
        cur.executemany(insert_sql(d, d.items, ITEM_INSERT), write.rows_items)
    for i, (page, row) in enumerate(zip(write.pages, write.rows_pages)):
        check_page_spans(d, fetch, i, page, write.scope)
        cur.execute(insert_sql(d, d.pages, PAGE_INSERT), row)
        cur.executemany(insert_sql(d, d.page_items, ("page_id", "item_id")), page_item_rows(page))
    index_write(d, cur, write.items, write.pages, released)


def batches(d: Dialect, values: Sequence[Any]) -> list[Sequence[Any]]:
    """``values`` in lists for one membership condition each: all at once
    where the list is one array parameter, else :data:`CHUNK` at a time."""
    if d.any_array:
        return [values] if values else []
    return chunks(values)


def delete_items(d: Dialect, cur: Any, scope: Scope, wanted: Sequence[str] | None,
                 *, missing_ok: bool = True) -> Deleted:
    """``delete``'s statements on ``cur`` (in the write's transaction): the
    items visible under ``scope`` (all, or those of ``wanted``, already
    checked), then the pages left holding no item (their page_items,
    renditions and search rows cascade). Ids of ``wanted`` not visible under
    ``scope`` are returned in ``missing``; without ``missing_ok`` they raise
    :class:`NotFoundError` before anything is deleted."""
    where, params = d.scope_where(scope, "i")
    select = f"SELECT i.id AS id FROM {d.items} i WHERE"
    missing: tuple[str, ...] = ()
    if wanted is None:
        targets = [r["id"] for r in cur.execute(f"{select} {where}", params).fetchall()]
    else:
        targets = []
        for batch in batches(d, wanted):
            cond, ids = d.in_list("i.id", batch)
            targets += [r["id"] for r in cur.execute(
                f"{select} {cond} AND {where}", [*ids, *params]).fetchall()]
        found = set(targets)
        missing = tuple(i for i in wanted if i not in found)
        if missing and not missing_ok:
            raise not_found(missing, scope, "deleted nothing")
    affected: dict[str, None] = {}
    for batch in batches(d, targets):
        cond, ids = d.in_list("pi.item_id", batch)
        for r in cur.execute(f"SELECT DISTINCT pi.page_id AS page_id FROM {d.page_items} pi "
                             f"WHERE {cond} ORDER BY pi.page_id", ids).fetchall():
            affected[r["page_id"]] = None
        cond, ids = d.in_list("id", batch)
        cur.execute(f"DELETE FROM {d.items} WHERE {cond}", ids)
    pages = list(affected)
    still_held: set[str] = set()
    for batch in batches(d, pages):
        cond, ids = d.in_list("pi.page_id", batch)
        still_held.update(r["page_id"] for r in cur.execute(
            f"SELECT DISTINCT pi.page_id AS page_id FROM {d.page_items} pi WHERE {cond}",
            ids).fetchall())
    orphans = [p for p in pages if p not in still_held]
    for batch in batches(d, orphans):
        cur.execute(*delete_pages_query(d, batch))
    partial = tuple(p for p in pages if p in still_held)
    return Deleted(items=len(targets), pages=len(orphans), partial_pages=partial,
                   missing=missing)


def clear_all(d: Dialect, cur: Any) -> Deleted:
    """Every item and page of every scope (renditions, passages cascade)."""
    items = int(cur.execute(f"SELECT count(*) AS n FROM {d.items}").fetchone()["n"])
    pages = int(cur.execute(f"SELECT count(*) AS n FROM {d.pages}").fetchone()["n"])
    cur.execute(f"DELETE FROM {d.pages}")
    cur.execute(f"DELETE FROM {d.items}")
    return Deleted(items=items, pages=pages)


def update_item(d: Dialect, cur: Any, item_id: str, scope: Scope, *, text: str | None,
                text_tokens: int, content_hash: str, meta: Mapping[str, Any],
                reindex: bool) -> list[str]:
    """One item's text, token count, hash and meta replaced (in the write's
    transaction); with ``reindex`` its search passages are made again from the
    new text, as for an item on no page (re-rendering its pages replaces them
    with page passages). :class:`NotFoundError` when the item is not visible
    under ``scope``. Returns the ids of the pages that hold it, by seq."""
    scope = check_scope(scope)
    check_id("item_id", item_id)
    where, params = d.scope_where(scope, "i")
    m = d.mark
    updated = cur.execute(
        f"UPDATE {d.items} AS i SET text = {m}, text_tokens = {m}, content_hash = {m}, "
        f"meta = {m} WHERE i.id = {m} AND {where}",
        [text, text_tokens, content_hash, dump_json("meta", dict(meta)), item_id, *params])
    if updated.rowcount == 0:
        raise not_found([item_id], scope, "nothing changed")
    if reindex:
        cur.execute(f"DELETE FROM {d.passages} WHERE item_id = {m}", [item_id])
        if text:
            rows = passage_rows(d, text, 0, len(text), item_id=item_id, page_id=None)
            if rows:
                cur.executemany(insert_passage_sql(d), rows)
    return [r["page_id"] for r in cur.execute(
        f"SELECT pi.page_id AS page_id FROM {d.page_items} pi JOIN {d.pages} p "
        f"ON p.id = pi.page_id WHERE pi.item_id = {m} ORDER BY p.seq", [item_id]).fetchall()]


# --------------------------------------------------------------------------
# The single-row writes of the Store protocol, once for both backends
# --------------------------------------------------------------------------


class _Writer(Protocol):
    _sql: Dialect

    def _guarded_write(self, run: Callable[[Any], Any]) -> Any: ...


class SqlWrites:
    """Mixin: ``set_tier`` and ``put_rendition`` over ``self._sql`` and
    ``self._guarded_write(run)`` (the backend's locked, error-translating
    write transaction, which calls ``run(connection)``)."""

    def set_tier(self: _Writer, page_id: str, tier: str, scope: Scope) -> None:
        query = set_tier_query(self._sql, page_id, tier, scope)

        def run(conn: Any) -> None:
            if conn.execute(*query).rowcount == 0:
                raise NotFoundError(f"no page {page_id!r} under {scope}")

        self._guarded_write(run)

    def put_rendition(self: _Writer, rendition: RenditionRecord, scope: Scope) -> None:
        scope = check_scope(scope)
        r = check_rendition(rendition)
        visible = page_visible_query(self._sql, r.page_id, scope)

        def run(conn: Any) -> None:
            if conn.execute(*visible).fetchone() is None:
                raise NotFoundError(f"no page {r.page_id!r} under {scope}")
            conn.execute(*upsert_rendition(self._sql, r, utc_now()))

        self._guarded_write(run)
