"""SQL shared by the SQLite and PostgreSQL stores: the read queries and the
row → record mapping, written once over a small :class:`Dialect` (parameter
mark, table names, list membership). Identifiers come only from the dialect
constants, never from input; every value is a bound parameter.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional, Protocol

from optical_memory.store.base import (
    ItemRecord,
    PageRecord,
    RenditionRecord,
    Scope,
    check_id,
    check_kinds,
    check_limit,
    check_scope,
    check_tiers,
    spans_from_json,
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
    null_png="NULL", any_array=False,
)
POSTGRES = Dialect(
    mark="%s", items="om_items", pages="om_pages", page_items="om_page_items",
    renditions="om_renditions", null_png="NULL::bytea", any_array=True,
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
