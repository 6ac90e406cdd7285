"""SQL shared by the SQLite and PostgreSQL stores: the read queries, the
row → record mapping and the write statements, written once over a small
:class:`Dialect` (parameter mark, table names, list membership, row locks).
Identifiers come only from the dialect constants, never from input; every
value is a bound parameter. Transactions and locking stay with each backend.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional, Protocol

from optical_memory.errors import InputError
from optical_memory.store.base import (
    ConflictError,
    ItemRecord,
    NewItem,
    NewPage,
    NotFoundError,
    PageRecord,
    RenditionRecord,
    Scope,
    SearchHit,
    StoreStats,
    check_id,
    check_kinds,
    check_limit,
    check_rendition,
    check_scope,
    check_tiers,
    dump_json,
    make_snippet,
    match_offsets,
    spans_from_json,
    spans_to_json,
    utc_now,
)

ITEM_FIELDS = (
    "id user_id agent_id session_id seq kind role name time text text_tokens "
    "tool_call_ids meta content_hash created_at"
).split()
PAGE_FIELDS = (
    "id user_id agent_id session_id seq width height font_size png text readback "
    "spans missing_glyphs meta tier created_at"
).split()

#: A query and its parameters; None where the answer is known to be empty.
Query = Optional[tuple[str, list[Any]]]


@dataclass(frozen=True)
class Dialect:
    """What differs between the backends' SQL."""

    mark: str  # parameter placeholder: "?" (sqlite3) or "%s" (psycopg)
    items: str  # the items table, and below each table's alias in queries
    pages: str
    page_items: str
    renditions: str
    null_png: str  # a NULL of the png column's type
    any_array: bool  # list membership as "= ANY(array)" (else "IN (?, ...)")
    lock_shared: str  # appended to a SELECT to share-lock its rows ("" where the file lock does)
    byte_length: str  # function giving a BLOB's / bytea's size in bytes

    # Queries alias the tables i (items), p (pages), pi (page_items), r (renditions).

    def scope_where(self, scope: Scope, alias: str) -> tuple[str, list[Any]]:
        """SQL condition (and its parameters) for rows of ``alias`` visible under ``scope``."""
        m = self.mark
        clauses = [f"{alias}.user_id = {m}"]
        params: list[Any] = [scope.user_id]
        if scope.agent_id is not None:
            clauses.append(f"{alias}.agent_id = {m}")
            params.append(scope.agent_id)
        if scope.session_id is not None:
            clauses.append(f"{alias}.session_id = {m}")
            params.append(scope.session_id)
        return " AND ".join(clauses), params

    def in_list(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """``column`` is one of ``values`` (non-empty)."""
        if self.any_array:
            return f"{column} = ANY({self.mark})", [list(values)]
        return f"{column} IN ({', '.join([self.mark] * len(values))})", list(values)

    def item_columns(self, alias: str = "i") -> str:
        return ", ".join(f"{alias}.{c} AS {c}" for c in ITEM_FIELDS)

    def page_columns(self, alias: str = "p", *, with_png: bool = True) -> str:
        return ", ".join(
            f"{self.null_png} AS png" if c == "png" and not with_png else f"{alias}.{c} AS {c}"
            for c in PAGE_FIELDS
        )


SQLITE = Dialect(
    mark="?", items="items", pages="pages", page_items="page_items", renditions="renditions",
    null_png="NULL", any_array=False, lock_shared="", byte_length="length",
)
POSTGRES = Dialect(
    mark="%s", items="om_items", pages="om_pages", page_items="om_page_items",
    renditions="om_renditions", null_png="NULL::bytea", any_array=True,
    lock_shared=" FOR SHARE", byte_length="octet_length",
)


# --------------------------------------------------------------------------
# Rows → records (sqlite3.Row and psycopg dict rows both map by name)
# --------------------------------------------------------------------------


def item_record(row: Mapping[str, Any]) -> ItemRecord:
    return ItemRecord(
        id=row["id"],
        scope=Scope(row["user_id"], row["agent_id"], row["session_id"]),
        seq=row["seq"],
        kind=row["kind"],
        role=row["role"],
        name=row["name"],
        time=row["time"],
        text=row["text"],
        text_tokens=row["text_tokens"],
        tool_call_ids=tuple(json.loads(row["tool_call_ids"])),
        meta=json.loads(row["meta"]),
        content_hash=row["content_hash"],
        created_at=row["created_at"],
    )


def page_record(row: Mapping[str, Any]) -> PageRecord:
    png = row["png"]
    return PageRecord(
        id=row["id"],
        scope=Scope(row["user_id"], row["agent_id"], row["session_id"]),
        seq=row["seq"],
        width=row["width"],
        height=row["height"],
        font_size=row["font_size"],
        png=bytes(png) if png is not None else None,
        text=row["text"],
        readback=row["readback"],
        spans=spans_from_json(row["spans"]),
        missing_glyphs=json.loads(row["missing_glyphs"]),
        meta=json.loads(row["meta"]),
        tier=row["tier"],
        created_at=row["created_at"],
    )


def rendition_record(row: Mapping[str, Any]) -> RenditionRecord:
    tokens = row["vision_tokens"]
    return RenditionRecord(
        page_id=row["page_id"],
        tier=row["tier"],
        width=row["width"],
        height=row["height"],
        png=bytes(row["png"]),
        vision_tokens=bytes(tokens) if tokens is not None else None,
        encoder=row["encoder"],
    )


# --------------------------------------------------------------------------
# Read queries (arguments checked here, so both backends refuse alike)
# --------------------------------------------------------------------------


def get_item_query(d: Dialect, item_id: str, scope: Scope) -> Query:
    scope = check_scope(scope)
    check_id("item_id", item_id)
    where, params = d.scope_where(scope, "i")
    return (f"SELECT {d.item_columns()} FROM {d.items} i WHERE i.id = {d.mark} AND {where}",
            [item_id, *params])


def get_page_query(d: Dialect, page_id: str, scope: Scope) -> Query:
    scope = check_scope(scope)
    check_id("page_id", page_id)
    where, params = d.scope_where(scope, "p")
    return (f"SELECT {d.page_columns()} FROM {d.pages} p WHERE p.id = {d.mark} AND {where}",
            [page_id, *params])


def list_items_query(
    d: Dialect,
    scope: Scope,
    *,
    since_seq: int | None,
    limit: int | None,
    kinds: Sequence[str] | None,
    on_page: bool | None,
    newest_first: bool,
) -> Query:
    extra = ""
    if on_page is not None:
        exists = f"EXISTS (SELECT 1 FROM {d.page_items} pi WHERE pi.item_id = i.id)"
        extra = f" AND {exists}" if on_page else f" AND NOT {exists}"
    return _list_query(
        d, scope, f"SELECT {d.item_columns()} FROM {d.items} i", "i",
        since_seq=since_seq, limit=limit, newest_first=newest_first,
        member=("i.kind", check_kinds(kinds)), extra=extra,
    )


def list_pages_query(
    d: Dialect,
    scope: Scope,
    *,
    since_seq: int | None,
    limit: int | None,
    tiers: Sequence[str] | None,
    with_png: bool,
    newest_first: bool,
) -> Query:
    return _list_query(
        d, scope, f"SELECT {d.page_columns(with_png=with_png)} FROM {d.pages} p", "p",
        since_seq=since_seq, limit=limit, newest_first=newest_first,
        member=("p.tier", check_tiers(tiers)),
    )


def _list_query(
    d: Dialect,
    scope: Scope,
    select: str,
    alias: str,
    *,
    since_seq: int | None,
    limit: int | None,
    newest_first: bool,
    member: tuple[str, Sequence[str] | None],
    extra: str = "",
) -> Query:
    """``select`` over rows of ``alias`` visible under ``scope`` whose
    ``member[0]`` is one of ``member[1]`` (None: any; empty: none), plus the
    ``extra`` condition, with ``seq > since_seq``, by ``seq``, cut to ``limit``."""
    scope = check_scope(scope)
    check_limit("since_seq", since_seq)
    check_limit("limit", limit)
    where, params = d.scope_where(scope, alias)
    sql = f"{select} WHERE {where}"
    column, values = member
    if values is not None:
        if not values:
            return None
        cond, more = d.in_list(column, values)
        sql, params = f"{sql} AND {cond}", params + more
    sql += extra
    if since_seq is not None:
        sql += f" AND {alias}.seq > {d.mark}"
        params.append(since_seq)
    sql += f" ORDER BY {alias}.seq DESC" if newest_first else f" ORDER BY {alias}.seq"
    if limit is not None:
        sql += f" LIMIT {d.mark}"
        params.append(limit)
    return sql, params


def pages_for_item_query(d: Dialect, item_id: str, scope: Scope) -> Query:
    """The pages holding an item visible under ``scope``, by ``seq`` (none if it is not)."""
    scope = check_scope(scope)
    check_id("item_id", item_id)
    item_where, item_params = d.scope_where(scope, "i")
    page_where, page_params = d.scope_where(scope, "p")
    return (
        f"SELECT {d.page_columns()} FROM {d.pages} p "
        f"JOIN {d.page_items} pi ON pi.page_id = p.id "
        f"WHERE pi.item_id = {d.mark} AND {page_where} AND EXISTS "
        f"(SELECT 1 FROM {d.items} i WHERE i.id = {d.mark} AND {item_where}) ORDER BY p.seq",
        [item_id, *page_params, item_id, *item_params],
    )


def get_rendition_query(d: Dialect, page_id: str, tier: str, scope: Scope) -> Query:
    scope = check_scope(scope)
    check_id("page_id", page_id)
    check_id("tier", tier)
    where, params = d.scope_where(scope, "p")
    return (
        "SELECT r.page_id, r.tier, r.width, r.height, r.png, r.vision_tokens, r.encoder "
        f"FROM {d.renditions} r JOIN {d.pages} p ON p.id = r.page_id "
        f"WHERE r.page_id = {d.mark} AND r.tier = {d.mark} AND {where}",
        [page_id, tier, *params],
    )


def search_hit(row: Mapping[str, Any], phrases: Sequence[Sequence[str]], score: float) -> SearchHit:
    """A hit from a search row (``source``, ``item_id``, ``page_id``, ``body``),
    with the query's phrases located in the body."""
    body = row["body"] or ""
    offsets = match_offsets(body, phrases)
    return SearchHit(
        source=row["source"], item_id=row["item_id"], page_id=row["page_id"], score=score,
        snippet=make_snippet(body, offsets), offsets=offsets,
    )


def stats_queries(d: Dialect, scope: Scope) -> list[tuple[str, list[Any]]]:
    """The four reads behind ``stats`` (run them in one snapshot where the
    backend has one); :func:`stats_record` assembles their rows."""
    scope = check_scope(scope)
    item_where, item_params = d.scope_where(scope, "i")
    page_where, page_params = d.scope_where(scope, "p")
    size = d.byte_length
    return [
        ("SELECT count(*) AS n, coalesce(sum(i.text_tokens), 0) AS tokens "
         f"FROM {d.items} i WHERE {item_where}", item_params),
        (f"SELECT p.tier AS tier, count(*) AS n FROM {d.pages} p WHERE {page_where} "
         "GROUP BY p.tier ORDER BY p.tier", page_params),
        (f"SELECT coalesce(sum({size}(p.png)), 0) AS b FROM {d.pages} p WHERE {page_where}",
         page_params),
        (f"SELECT count(*) AS n, coalesce(sum({size}(r.png) + "
         f"coalesce({size}(r.vision_tokens), 0)), 0) AS b "
         f"FROM {d.renditions} r JOIN {d.pages} p ON p.id = r.page_id WHERE {page_where}",
         page_params),
    ]


def stats_record(results: Sequence[Sequence[Mapping[str, Any]]]) -> StoreStats:
    """``StoreStats`` from the rows of :func:`stats_queries`, in order."""
    items, tier_rows, png, renditions = results
    tiers = {r["tier"]: int(r["n"]) for r in tier_rows}
    return StoreStats(
        items=int(items[0]["n"]),
        pages=sum(tiers.values()),
        renditions=int(renditions[0]["n"]),
        text_tokens=int(items[0]["tokens"]),
        page_png_bytes=int(png[0]["b"]),
        rendition_bytes=int(renditions[0]["b"]),
        tiers=tiers,
    )


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
    """DELETE of pages by id (their page_items, renditions and search rows cascade)."""
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
) -> None:
    """``add_items``' steps before its INSERTs, in its transaction: delete the
    pages it ``replaces``, then (``exclusive``) check no item of ``pages`` is
    on another page. ``fetch`` runs a query and returns its rows, ``run`` a
    statement."""
    if replaces:
        for chunk in chunks(check_replaced(d, fetch, replaces, scope)):
            run(*delete_pages_query(d, chunk))
    if exclusive:
        check_unpaged(d, fetch, pages)


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
# The read half of the Store protocol, once for both backends
# --------------------------------------------------------------------------


class _Reader(Protocol):
    _sql: Dialect

    def _guarded_read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...


class SqlReads:
    """Mixin: the Store protocol's reads over ``self._sql`` (a :class:`Dialect`)
    and ``self._guarded_read(sql, params)`` (the backend's locked,
    error-translating query). Arguments are checked before any query runs."""

    def get_item(self: _Reader, item_id: str, scope: Scope) -> ItemRecord | None:
        rows = self._guarded_read(*get_item_query(self._sql, item_id, scope))
        return item_record(rows[0]) if rows else None

    def get_page(self: _Reader, page_id: str, scope: Scope) -> PageRecord | None:
        rows = self._guarded_read(*get_page_query(self._sql, page_id, scope))
        return page_record(rows[0]) if rows else None

    def list_items(
        self: _Reader,
        scope: Scope,
        *,
        since_seq: int | None = None,
        limit: int | None = None,
        kinds: Sequence[str] | None = None,
        on_page: bool | None = None,
        newest_first: bool = False,
    ) -> list[ItemRecord]:
        query = list_items_query(
            self._sql, scope, since_seq=since_seq, limit=limit, kinds=kinds, on_page=on_page,
            newest_first=newest_first,
        )
        return [item_record(r) for r in self._guarded_read(*query)] if query else []

    def list_pages(
        self: _Reader,
        scope: Scope,
        *,
        since_seq: int | None = None,
        limit: int | None = None,
        tiers: Sequence[str] | None = None,
        with_png: bool = True,
        newest_first: bool = False,
    ) -> list[PageRecord]:
        query = list_pages_query(
            self._sql, scope, since_seq=since_seq, limit=limit, tiers=tiers, with_png=with_png,
            newest_first=newest_first,
        )
        return [page_record(r) for r in self._guarded_read(*query)] if query else []

    def pages_for_item(self: _Reader, item_id: str, scope: Scope) -> list[PageRecord]:
        rows = self._guarded_read(*pages_for_item_query(self._sql, item_id, scope))
        return [page_record(r) for r in rows]

    def get_rendition(
        self: _Reader, page_id: str, tier: str, scope: Scope
    ) -> RenditionRecord | None:
        rows = self._guarded_read(*get_rendition_query(self._sql, page_id, tier, scope))
        return rendition_record(rows[0]) if rows else None


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
