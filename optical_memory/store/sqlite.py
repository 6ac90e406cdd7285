"""The embedded SQLite store (the default backend).

One file (``$OPTICAL_MEMORY_HOME/memory.db`` by default) in WAL mode, so
readers never block the writer; foreign keys on; ``synchronous=FULL`` so a
committed write survives a crash of the process or the machine; a busy
timeout (30 s) so concurrent processes wait for the write lock instead of
failing with "database is locked". Every write is one ``BEGIN IMMEDIATE``
transaction: it either lands whole or not at all. No pickle: dicts, lists and
spans are JSON; images and vision tokens are BLOBs.

Threads: a store object holds one connection and serialises its calls on a
lock, so it may be shared between threads (calls then run one at a time).
For parallel writers, open one store per process; SQLite serialises their
writes through the file lock. Schema: see :mod:`optical_memory.store.migrations`.
"""
from __future__ import annotations

import functools
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from optical_memory.errors import InputError
from optical_memory.store import migrations
from optical_memory.store.base import (
    Deleted,
    NewItem,
    NewPage,
    NotFoundError,
    RenditionRecord,
    Scope,
    SearchHit,
    StoreError,
    StoreStats,
    SOURCES,
    check_id,
    check_limit,
    check_rendition,
    check_scope,
    check_write,
    check_sources,
    dump_json,
    fts5_match_expression,
    make_snippet,
    match_offsets,
    query_phrases,
    spans_to_json,
    utc_now,
)
from optical_memory.store.sql import SQLITE, SqlReads

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 30.0
_CHUNK = 500  # ids per IN (...) list, well under SQLite's variable limit

F = TypeVar("F", bound=Callable[..., Any])


def _guarded(method: F) -> F:
    """Run under the store's lock; turn sqlite3 errors into typed errors."""

    @functools.wraps(method)
    def wrapper(self: SQLiteStore, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            if self._db is None:
                raise StoreError(f"store {self.path} is closed")
            try:
                return method(self, *args, **kwargs)
            except sqlite3.IntegrityError as exc:
                raise InputError(f"rejected by the database: {exc}") from exc
            except sqlite3.Error as exc:
                raise StoreError(f"SQLite error on {self.path}: {exc}") from exc

    return wrapper  # type: ignore[return-value]


def _enable_wal(db: sqlite3.Connection, timeout: float) -> str:
    """Switch ``db`` to WAL; returns the journal mode it ends in.

    Changing the journal mode needs an exclusive lock, and SQLite answers
    "database is locked" at once, without the busy handler, when another
    connection holds the file (several processes opening a new store together
    hit this). So retry with backoff until ``timeout`` seconds have passed.
    Once one connection has switched, the mode is persistent: later openers
    read "wal" and need no lock.
    """
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            return str(db.execute("PRAGMA journal_mode = WAL").fetchone()[0])
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.25)


def _chunks(values: Sequence[str]) -> Iterator[Sequence[str]]:
    for i in range(0, len(values), _CHUNK):
        yield values[i : i + _CHUNK]


def _marks(n: int) -> str:
    return ", ".join("?" * n)


class SQLiteStore(SqlReads):
    """The :class:`~optical_memory.store.base.Store` protocol on one SQLite file.

    ``path`` is a file path (its folder is created) or ``":memory:"``.
    """

    _sql = SQLITE

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = DEFAULT_TIMEOUT_S):
        self.path = str(path)
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None
        if self.path != ":memory:":
            Path(self.path).expanduser().parent.mkdir(parents=True, exist_ok=True)
            self.path = str(Path(self.path).expanduser())
        try:
            db = sqlite3.connect(
                self.path, timeout=timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite database {self.path}: {exc}") from exc
        try:
            db.row_factory = sqlite3.Row
            db.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            db.execute("PRAGMA foreign_keys = ON")
            if self.path != ":memory:":
                mode = _enable_wal(db, timeout)
                if str(mode).lower() != "wal":
                    logger.warning("%s: WAL unavailable, journal_mode is %s", self.path, mode)
            db.execute("PRAGMA synchronous = FULL")
            applied_now = migrations.migrate(db)
        except sqlite3.Error as exc:
            db.close()
            raise StoreError(f"cannot open SQLite database {self.path}: {exc}") from exc
        except BaseException:
            db.close()
            raise
        if applied_now:
            logger.info("%s: applied migrations %s", self.path, ", ".join(applied_now))
        self._db = db

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"

    # -- plumbing ----------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; rolled back on any exception."""
        db = self._db
        assert db is not None
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        assert self._db is not None
        return self._db.execute(sql, params).fetchall()

    def migrations_applied(self) -> dict[str, str]:
        """``{name: applied_at}`` from the ``migrations`` table."""
        with self._lock:
            if self._db is None:
                raise StoreError(f"store {self.path} is closed")
            return migrations.applied(self._db)

    # -- writes ------------------------------------------------------------

    @_guarded
    def add_items(
        self, items: Sequence[NewItem], pages: Sequence[NewPage] = (), *, scope: Scope
    ) -> tuple[list[str], list[str]]:
        scope, checked_items, checked_pages = check_write(items, pages, scope)
        item_ids = [item.id for item in checked_items]
        page_ids = [page.id for page in checked_pages]
        rows_items = [
            (
                item.id,
                scope.user_id,
                scope.agent_id,
                scope.session_id,
                item.kind,
                item.role,
                item.name,
                item.time,
                item.text,
                item.text_tokens,
                dump_json(f"items[{i}].tool_call_ids", list(item.tool_call_ids)),
                dump_json(f"items[{i}].meta", dict(item.meta)),
                item.content_hash,
            )
            for i, item in enumerate(checked_items)
        ]
        rows_pages = [
            (
                page.id,
                scope.user_id,
                scope.agent_id,
                scope.session_id,
                page.width,
                page.height,
                float(page.font_size),
                bytes(page.png),
                page.text,
                page.readback,
                spans_to_json(page.spans),
                dump_json(f"pages[{i}].missing_glyphs", dict(page.missing_glyphs)),
                dump_json(f"pages[{i}].meta", dict(page.meta)),
                page.tier,
            )
            for i, page in enumerate(checked_pages)
        ]
        now = utc_now()
        with self._write() as db:
            db.executemany(
                "INSERT INTO items (id, user_id, agent_id, session_id, kind, role, name, "
                "time, text, text_tokens, tool_call_ids, meta, content_hash, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [row + (now,) for row in rows_items],
            )
            for i, (page, row) in enumerate(zip(checked_pages, rows_pages)):
                self._check_page_items(db, i, page, scope)
                db.execute(
                    "INSERT INTO pages (id, user_id, agent_id, session_id, width, height, "
                    "font_size, png, text, readback, spans, missing_glyphs, meta, tier, "
                    "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    row + (now,),
                )
                db.executemany(
                    "INSERT INTO page_items (page_id, item_id) VALUES (?, ?)",
                    [(page.id, item_id) for item_id in dict.fromkeys(s.item_id for s in page.spans)],
                )
        return item_ids, page_ids

    @staticmethod
    def _check_page_items(db: sqlite3.Connection, index: int, page: NewPage, scope: Scope) -> None:
        """Every span names an item visible under the write scope, within its text."""
        lengths: dict[str, int | None] = {}
        for item_id in dict.fromkeys(s.item_id for s in page.spans):
            row = db.execute(
                "SELECT user_id, agent_id, session_id, length(text) FROM items WHERE id = ?",
                (item_id,),
            ).fetchone()
            if row is None or not scope.sees(Scope(row[0], row[1], row[2])):
                raise InputError(
                    f"pages[{index}] holds item {item_id!r}, which is not stored under {scope}"
                )
            lengths[item_id] = row[3]
        for j, span in enumerate(page.spans):
            length = lengths[span.item_id]
            if length is not None and span.end > length:
                raise InputError(
                    f"pages[{index}].spans[{j}] ends at {span.end}, past the end of item "
                    f"{span.item_id!r} ({length} characters)"
                )

    @_guarded
    def set_tier(self, page_id: str, tier: str, scope: Scope) -> None:
        scope = check_scope(scope)
        check_id("page_id", page_id)
        check_id("tier", tier)
        where, params = SQLITE.scope_where(scope, "pages")
        with self._write() as db:
            cur = db.execute(
                f"UPDATE pages SET tier = ? WHERE id = ? AND {where}", [tier, page_id, *params]
            )
            if cur.rowcount == 0:
                raise NotFoundError(f"no page {page_id!r} under {scope}")

    @_guarded
    def put_rendition(self, rendition: RenditionRecord, scope: Scope) -> None:
        scope = check_scope(scope)
        r = check_rendition(rendition)
        where, params = SQLITE.scope_where(scope, "pages")
        with self._write() as db:
            found = db.execute(
                f"SELECT 1 FROM pages WHERE id = ? AND {where}", [r.page_id, *params]
            ).fetchone()
            if found is None:
                raise NotFoundError(f"no page {r.page_id!r} under {scope}")
            db.execute(
                "INSERT INTO renditions (page_id, tier, width, height, png, vision_tokens, "
                "encoder, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (page_id, tier) DO UPDATE SET width = excluded.width, "
                "height = excluded.height, png = excluded.png, "
                "vision_tokens = excluded.vision_tokens, encoder = excluded.encoder, "
                "created_at = excluded.created_at",
                (
                    r.page_id,
                    r.tier,
                    r.width,
                    r.height,
                    bytes(r.png),
                    bytes(r.vision_tokens) if r.vision_tokens is not None else None,
                    r.encoder,
                    utc_now(),
                ),
            )

    @_guarded
    def delete(self, scope: Scope, *, item_ids: Sequence[str] | None = None) -> Deleted:
        scope = check_scope(scope)
        where, params = SQLITE.scope_where(scope, "items")
        with self._write() as db:
            if item_ids is None:
                targets = [r[0] for r in db.execute(f"SELECT id FROM items WHERE {where}", params)]
            else:
                if isinstance(item_ids, str):
                    raise InputError("item_ids must be a sequence of ids, not one string")
                wanted = list(dict.fromkeys(item_ids))
                for i, item_id in enumerate(wanted):
                    check_id(f"item_ids[{i}]", item_id)
                targets = []
                for chunk in _chunks(wanted):
                    targets += [
                        r[0]
                        for r in db.execute(
                            f"SELECT id FROM items WHERE id IN ({_marks(len(chunk))}) AND {where}",
                            [*chunk, *params],
                        )
                    ]
            affected: dict[str, None] = {}
            for chunk in _chunks(targets):
                for r in db.execute(
                    f"SELECT DISTINCT page_id FROM page_items WHERE item_id IN ({_marks(len(chunk))})",
                    list(chunk),
                ):
                    affected[r[0]] = None
                db.execute(f"DELETE FROM items WHERE id IN ({_marks(len(chunk))})", list(chunk))
            pages = list(affected)
            still_held: set[str] = set()
            for chunk in _chunks(pages):
                still_held.update(
                    r[0]
                    for r in db.execute(
                        f"SELECT DISTINCT page_id FROM page_items "
                        f"WHERE page_id IN ({_marks(len(chunk))})",
                        list(chunk),
                    )
                )
            orphans = [p for p in pages if p not in still_held]
            for chunk in _chunks(orphans):
                db.execute(f"DELETE FROM pages WHERE id IN ({_marks(len(chunk))})", list(chunk))
        partial = tuple(p for p in pages if p in still_held)
        return Deleted(items=len(targets), pages=len(orphans), partial_pages=partial)

    # -- reads (get/list: SqlReads) ---------------------------------------

    @_guarded
    def _guarded_read(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return self._read(sql, params)

    @_guarded
    def search(
        self, query: str, scope: Scope, k: int = 10, *, sources: Sequence[str] = SOURCES
    ) -> list[SearchHit]:
        scope = check_scope(scope)
        check_limit("k", k)
        sources = check_sources(sources)
        phrases = query_phrases(query)
        if not phrases or k == 0 or not sources:
            return []
        expr = fts5_match_expression(phrases)
        parts: list[str] = []
        params: list[Any] = []
        if "item" in sources:
            where, p = SQLITE.scope_where(scope, "items")
            parts.append(
                "SELECT 'item' AS source, items.id AS item_id, NULL AS page_id, "
                "items.text AS body, bm25(search_fts) AS rank, search_fts.rowid AS fts_rowid "
                "FROM search_fts JOIN items ON items.seq = search_fts.rowid / 2 "
                f"WHERE search_fts MATCH ? AND search_fts.rowid % 2 = 0 AND {where}"
            )
            params += [expr, *p]
        if "page" in sources:
            where, p = SQLITE.scope_where(scope, "pages")
            parts.append(
                "SELECT 'page' AS source, NULL AS item_id, pages.id AS page_id, "
                "pages.readback AS body, bm25(search_fts) AS rank, search_fts.rowid AS fts_rowid "
                "FROM search_fts JOIN pages ON pages.seq = search_fts.rowid / 2 "
                f"WHERE search_fts MATCH ? AND search_fts.rowid % 2 = 1 AND {where}"
            )
            params += [expr, *p]
        sql = " UNION ALL ".join(parts) + " ORDER BY rank, fts_rowid LIMIT ?"
        hits: list[SearchHit] = []
        for row in self._read(sql, [*params, k]):
            body = row["body"] or ""
            offsets = match_offsets(body, phrases)
            hits.append(
                SearchHit(
                    source=row["source"],
                    item_id=row["item_id"],
                    page_id=row["page_id"],
                    score=-float(row["rank"]),
                    snippet=make_snippet(body, offsets),
                    offsets=offsets,
                )
            )
        return hits

    @_guarded
    def stats(self, scope: Scope) -> StoreStats:
        scope = check_scope(scope)
        item_where, item_params = SQLITE.scope_where(scope, "items")
        page_where, page_params = SQLITE.scope_where(scope, "pages")
        items, tokens = self._read(
            f"SELECT count(*), coalesce(sum(text_tokens), 0) FROM items WHERE {item_where}",
            item_params,
        )[0]
        tiers = {
            r[0]: r[1]
            for r in self._read(
                f"SELECT tier, count(*) FROM pages WHERE {page_where} GROUP BY tier ORDER BY tier",
                page_params,
            )
        }
        png_bytes = self._read(
            f"SELECT coalesce(sum(length(png)), 0) FROM pages WHERE {page_where}", page_params
        )[0][0]
        renditions, rendition_bytes = self._read(
            "SELECT count(*), coalesce(sum(length(r.png) + coalesce(length(r.vision_tokens), 0)), 0) "
            f"FROM renditions r JOIN pages ON pages.id = r.page_id WHERE {page_where}",
            page_params,
        )[0]
        return StoreStats(
            items=items,
            pages=sum(tiers.values()),
            renditions=renditions,
            text_tokens=tokens,
            page_png_bytes=png_bytes,
            rendition_bytes=rendition_bytes,
            tiers=tiers,
        )

    # -- lifecycle ---------------------------------------------------------

    def close(self) -> None:
        """Close the connection; later calls raise :class:`StoreError`. Idempotent."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
