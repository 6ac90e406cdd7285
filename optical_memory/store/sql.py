"""SQL shared by the SQLite and PostgreSQL stores, written once over a small
:class:`Dialect` (parameter mark, table names, list membership, row locks).
Identifiers come only from the dialect constants, never from input; every
value is a bound parameter. Transactions and locking stay with each backend.

The code lives in three modules; this one gathers their names (the backends
and tests import them from here):

- :mod:`~optical_memory.store.sql_dialect`: :class:`Dialect`, :data:`SQLITE`,
  :data:`POSTGRES` and the tables' column lists;
- :mod:`~optical_memory.store.sql_reads`: read queries, row → record mapping,
  search hits, ``stats``, and the :class:`SqlReads` mixin;
- :mod:`~optical_memory.store.sql_writes`: INSERT rows and statements, the
  checks inside a write, the ``add_items`` and ``delete`` sequences
  (:func:`insert_write`, :func:`delete_items`) and the :class:`SqlWrites` mixin.
"""
from __future__ import annotations

# Names sql.py imported from store.base before the split, still reachable here.
from optical_memory.errors import InputError  # noqa: F401
from optical_memory.scope import Scope, check_id  # noqa: F401
from optical_memory.store.checks import (  # noqa: F401
    check_kinds,
    check_limit,
    check_rendition,
    check_scope,
    check_tiers,
)
from optical_memory.store.query import make_snippet, match_offsets  # noqa: F401
from optical_memory.store.records import (  # noqa: F401
    ConflictError,
    ItemRecord,
    NewItem,
    NewPage,
    NotFoundError,
    PageRecord,
    RenditionRecord,
    SearchHit,
    StoreStats,
    dump_json,
    spans_from_json,
    spans_to_json,
    utc_now,
)
from optical_memory.store.sql_dialect import (
    ITEM_FIELDS,
    PAGE_FIELDS,
    POSTGRES,
    SQLITE,
    Dialect,
    Query,
)
from optical_memory.store.sql_reads import (
    SqlReads,
    _list_query,  # noqa: F401
    _Reader,  # noqa: F401
    get_item_query,
    get_page_query,
    get_rendition_query,
    item_pages_queries,
    item_record,
    list_items_query,
    list_pages_query,
    page_record,
    pages_for_item_query,
    rendition_record,
    search_hit,
    stats_queries,
    stats_record,
)
from optical_memory.store.sql_writes import (
    CHUNK,
    ITEM_INSERT,
    PAGE_INSERT,
    RENDITION_INSERT,
    Fetch,
    SqlWrites,
    Write,
    _Writer,  # noqa: F401
    batches,
    before_inserts,
    check_page_spans,
    check_replaced,
    check_unpaged,
    chunks,
    clear_all,
    delete_items,
    delete_pages_query,
    insert_sql,
    insert_write,
    item_rows,
    page_item_rows,
    page_rows,
    page_visible_query,
    paged_items_query,
    prepare_write,
    set_tier_query,
    span_items_query,
    update_item,
    upsert_rendition,
)

__all__ = [
    "CHUNK",
    "ITEM_FIELDS",
    "ITEM_INSERT",
    "PAGE_FIELDS",
    "PAGE_INSERT",
    "POSTGRES",
    "RENDITION_INSERT",
    "SQLITE",
    "Dialect",
    "Fetch",
    "Query",
    "SqlReads",
    "SqlWrites",
    "Write",
    "batches",
    "before_inserts",
    "check_page_spans",
    "check_replaced",
    "check_unpaged",
    "chunks",
    "clear_all",
    "delete_items",
    "delete_pages_query",
    "get_item_query",
    "get_page_query",
    "get_rendition_query",
    "insert_sql",
    "insert_write",
    "item_pages_queries",
    "item_record",
    "item_rows",
    "list_items_query",
    "list_pages_query",
    "page_item_rows",
    "page_record",
    "page_rows",
    "page_visible_query",
    "paged_items_query",
    "pages_for_item_query",
    "prepare_write",
    "rendition_record",
    "search_hit",
    "set_tier_query",
    "span_items_query",
    "stats_queries",
    "stats_record",
    "update_item",
    "upsert_rendition",
]
