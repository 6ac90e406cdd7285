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
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from optical_memory.errors import InputError
from optical_memory.store import migrations, sql as stmt
from optical_memory.store.base import (
    SOURCES,
    Deleted,
    NewItem,
    NewPage,
    Scope,
    SearchHit,
    StoreError,
    StoreStats,
    check_item_ids,
    check_limit,
    check_per_page,
    check_scope,
    check_sources,
)
from optical_memory.store.metadata import check_filter
from optical_memory.store.passages import (
    DF_CAP,
    Ranking,
    idf_weights,
    passage_hit,
    search_query,
)
from optical_memory.store.paths import private_dir, private_file
from optical_memory.store.sql import SQLITE, SqlReads, SqlWrites
from optical_memory.store.terms import fts5_expression, query_terms
from optical_memory.store.vectors import SqlVectors

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 30.0

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


class SQLiteStore(SqlReads, SqlWrites, SqlVectors):
    """The :class:`~optical_memory.store.base.Store` protocol on one SQLite file.

    ``path`` is a file path (its folder is created) or ``":memory:"``.
    """

    _sql = SQLITE

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = DEFAULT_TIMEOUT_S):
        self.path = str(path)
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None
        if self.path != ":memory:":
            if self.path.endswith(("/", os.sep)):
                raise StoreError(f"SQLite store path {self.path!r} names a folder; "
                                 f"give a file, e.g. {os.path.join(self.path, 'memory.db')!r}")
            self.path = str(Path(self.path).expanduser())
            try:
                private_dir(Path(self.path).parent)
                private_file(self.path)  # owner-only before SQLite writes a byte
            except OSError as exc:
                raise StoreError(f"cannot open SQLite database {self.path}: cannot create "
                                 f"its folder: {exc.strerror or exc}") from exc
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
        self,
        items: Sequence[NewItem],
        pages: Sequence[NewPage] = (),
        *,
        scope: Scope,
        exclusive: bool = False,
        replaces: Sequence[str] = (),
    ) -> tuple[list[str], list[str]]:
        write = stmt.prepare_write(items, pages, scope)
        with self._write() as db:
            stmt.insert_write(SQLITE, db, write, replaces=replaces, exclusive=exclusive)
        return write.ids

    @_guarded
    def _guarded_write(self, run: Callable[[Any], Any]) -> Any:
        """``run(connection)`` in one write transaction (for :class:`SqlWrites`)."""
        with self._write() as db:
            return run(db)

    @_guarded
    def delete(self, scope: Scope, *, item_ids: Sequence[str] | None = None,
               missing_ok: bool = True) -> Deleted:
        scope = check_scope(scope)
        wanted = check_item_ids(item_ids)
        with self._write() as db:
            return stmt.delete_items(SQLITE, db, scope, wanted, missing_ok=missing_ok)

    @_guarded
    def update_item(self, item_id: str, scope: Scope, *, text: str | None, text_tokens: int,
                    content_hash: str, meta: Mapping[str, Any], reindex: bool = True
                    ) -> list[str]:
        with self._write() as db:
            return stmt.update_item(SQLITE, db, item_id, scope, text=text,
                                    text_tokens=text_tokens, content_hash=content_hash,
                                    meta=meta, reindex=reindex)

    @_guarded
    def clear(self) -> Deleted:
        with self._write() as db:
            return stmt.clear_all(SQLITE, db)

    # -- reads (get/list: SqlReads) ---------------------------------------

    @_guarded
    def _guarded_read(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return self._read(sql, params)

    @_guarded
    def search(
        self, query: str, scope: Scope, k: int = 10, *, sources: Sequence[str] = SOURCES,
        metadata: Mapping[str, Any] | None = None, per_page: int = 1,
    ) -> list[SearchHit]:
        """Passages ranked by the idf of the terms they hold, then FTS5's bm25
        (:class:`~optical_memory.store.passages.Ranking`)."""
        scope = check_scope(scope)
        check_limit("k", k)
        per_page = check_per_page(per_page)
        sources = check_sources(sources)
        filters = check_filter(metadata)
        terms = query_terms(query)
        if not terms or k == 0 or not sources:
            return []
        exprs = [fts5_expression([t]) for t in terms.terms]
        weights = idf_weights(*self._counts(exprs))
        # one FTS5 query per term: which passages hold it (its idf counts once)
        # and its single-term bm25 (summed: the query's bm25, the tiebreak)
        each = " UNION ALL ".join(
            "SELECT rowid AS pid, ? AS w, bm25(passages_fts) AS b FROM passages_fts "
            "WHERE passages_fts MATCH ?" for _ in exprs)
        sql, params = search_query(SQLITE, scope, sources, k, Ranking(
            # MATERIALIZED: flattened into the GROUP BY, bm25() would be refused
            head=(f"WITH m AS MATERIALIZED ({each}), c AS (SELECT pid, sum(w) AS cover, "
                  "-sum(b) AS bm FROM m GROUP BY pid)",
                  [x for pair in zip(weights, exprs) for x in pair]),
            matched="c JOIN passages ps ON ps.id = c.pid",
            match=("1 = 1", []), score=("c.cover", []), tiebreak=("c.bm", []),
        ), filters, per_page)
        return [passage_hit(row, terms) for row in self._read(sql, params)]

    @_guarded
    def query_weight(self, query: str) -> float:
        """What :meth:`search` scores a passage holding every term of ``query``."""
        terms = query_terms(query)
        exprs = [fts5_expression([t]) for t in terms.terms]
        return sum(idf_weights(*self._counts(exprs))) / 1000 if exprs else 0.0

    def _counts(self, exprs: list[str]) -> tuple[int, list[int]]:
        """Passages in all, and holding each FTS5 expression (capped at DF_CAP)."""
        cap = f"LIMIT {DF_CAP}"
        total = self._read(f"SELECT count(*) AS n FROM (SELECT 1 FROM passages {cap})")[0]["n"]
        return int(total), [int(self._read(
            f"SELECT count(*) AS n FROM (SELECT 1 FROM passages_fts WHERE passages_fts MATCH ? "
            f"{cap})", [e])[0]["n"]) for e in exprs]

    @_guarded
    def stats(self, scope: Scope) -> StoreStats:
        return stmt.stats_record(
            [self._read(*query) for query in stmt.stats_queries(SQLITE, scope)]
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
