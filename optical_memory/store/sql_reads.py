"""The read half of the Store protocol, written once for both SQL backends:
the read queries (arguments checked here, so both backends refuse alike),
the row → record mapping, search hits, ``stats``, and the :class:`SqlReads`
mixin that runs them. Every value is a bound parameter.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from optical_memory.scope import Scope, check_id
from optical_memory.store.checks import (
    check_item_ids,
    check_kinds,
    check_limit,
    check_roles,
    check_scope,
    check_tiers,
)
from optical_memory.store.metadata import check_filter, metadata_where
from optical_memory.store.query import make_snippet, match_offsets
from optical_memory.store.records import (
    ItemRecord,
    PageRecord,
    RenditionRecord,
    SearchHit,
    StoreStats,
    spans_from_json,
)
from optical_memory.store.sql_dialect import Dialect, Query, Statement

# --------------------------------------------------------------------------
# Rows → records (sqlite3.Row and psycopg dict rows both map by name)
# --------------------------------------------------------------------------


class Row(Protocol):
    """A result row read by column name: a ``sqlite3.Row`` or a psycopg dict row."""

    def __getitem__(self, key: str, /) -> Any: ...


def item_record(row: Row) -> ItemRecord:
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


def page_record(row: Row) -> PageRecord:
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


def rendition_record(row: Row) -> RenditionRecord:
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


def get_item_query(d: Dialect, item_id: str, scope: Scope) -> Statement:
    scope = check_scope(scope)
    check_id("item_id", item_id)
    where, params = d.scope_where(scope, "i")
    return (f"SELECT {d.item_columns()} FROM {d.items} i WHERE i.id = {d.mark} AND {where}",
            [item_id, *params])


def get_page_query(d: Dialect, page_id: str, scope: Scope) -> Statement:
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
    before_seq: int | None = None,
    roles: Sequence[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Query:
    extra, params = "", []
    if on_page is not None:
        exists = f"EXISTS (SELECT 1 FROM {d.page_items} pi WHERE pi.item_id = i.id)"
        extra = f" AND {exists}" if on_page else f" AND NOT {exists}"
    check_limit("before_seq", before_seq)
    if before_seq is not None:
        extra += f" AND i.seq < {d.mark}"
        params.append(before_seq)
    roles = check_roles(roles)
    if roles is not None:
        if not roles:
            return None
        cond, more = d.in_list("i.role", roles)
        extra, params = f"{extra} AND {cond}", params + more
    filters = check_filter(metadata)
    if filters:
        cond, more = metadata_where(d, filters, "i")
        extra, params = f"{extra} AND {cond}", params + more
    return _list_query(
        d, scope, f"SELECT {d.item_columns()} FROM {d.items} i", "i",
        since_seq=since_seq, limit=limit, newest_first=newest_first,
        member=("i.kind", check_kinds(kinds)), extra=(extra, params),
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
    extra: Statement = ("", []),
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
    sql, params = sql + extra[0], params + list(extra[1])
    if since_seq is not None:
        sql += f" AND {alias}.seq > {d.mark}"
        params.append(since_seq)
    sql += f" ORDER BY {alias}.seq DESC" if newest_first else f" ORDER BY {alias}.seq"
    if limit is not None:
        sql += f" LIMIT {d.mark}"
        params.append(limit)
    return sql, params


def pages_for_item_query(d: Dialect, item_id: str, scope: Scope) -> Statement:
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


def item_pages_queries(d: Dialect, item_ids: Sequence[str], scope: Scope) -> list[Statement]:
    """For :meth:`SqlReads.item_pages`: one row per (visible item, visible page
    holding it), ``page_id`` NULL for an item on no visible page; by page seq."""
    scope = check_scope(scope)
    ids = check_item_ids(item_ids) or []
    item_where, item_params = d.scope_where(scope, "i")
    page_where, page_params = d.scope_where(scope, "p")
    out = []
    for start in range(0, len(ids), 500):
        cond, more = d.in_list("i.id", ids[start:start + 500])
        out.append((
            f"SELECT i.id AS item_id, p.id AS page_id FROM {d.items} i "
            f"LEFT JOIN {d.page_items} pi ON pi.item_id = i.id "
            f"LEFT JOIN {d.pages} p ON p.id = pi.page_id AND {page_where} "
            f"WHERE {cond} AND {item_where} ORDER BY i.seq, p.seq",
            [*page_params, *more, *item_params]))
    return out


def get_rendition_query(d: Dialect, page_id: str, tier: str, scope: Scope) -> Statement:
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


def search_hit(row: Row, phrases: Sequence[Sequence[str]], score: float) -> SearchHit:
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


def stats_record(results: Sequence[Sequence[Row]]) -> StoreStats:
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
        before_seq: int | None = None,
        roles: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> list[ItemRecord]:
        query = list_items_query(
            self._sql, scope, since_seq=since_seq, limit=limit, kinds=kinds, on_page=on_page,
            newest_first=newest_first, before_seq=before_seq, roles=roles, metadata=metadata,
        )
        return [item_record(r) for r in self._guarded_read(*query)] if query else []

    def item_pages(
        self: _Reader, item_ids: Sequence[str], scope: Scope
    ) -> dict[str, tuple[str, ...]]:
        """``{item id: ids of the pages holding it, by seq}`` for the items of
        ``item_ids`` visible under ``scope`` (pages visible there too); an
        item on no page maps to ``()``, an item not visible is left out."""
        out: dict[str, list[str]] = {}
        for sql, params in item_pages_queries(self._sql, item_ids, scope):
            for r in self._guarded_read(sql, params):
                pages = out.setdefault(r["item_id"], [])
                if r["page_id"] is not None:
                    pages.append(r["page_id"])
        return {k: tuple(v) for k, v in out.items()}

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

