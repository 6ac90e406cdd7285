"""The PostgreSQL store: one database shared by many processes and machines.

``open_store("postgresql://user:password@host:5432/db")`` (needs the
``postgres`` extra: ``pip install 'optical-memory[postgres]'``). Same
protocol, same validation and the same test suite as the SQLite store.

- **Connections**: a :class:`psycopg_pool.ConnectionPool` (``max_size``
  connections, default 4), so one store object may be shared by threads and
  calls run in parallel; every call borrows a connection for its duration.
- **Transactions**: every write is one transaction. Writes that create or
  delete items and pages (``add_items``, ``delete``) also take one
  transaction-scoped advisory lock, so they commit in ``seq`` order exactly
  like SQLite's single writer: a reader never sees ``seq`` 7 before ``seq`` 6
  (``list_items(since_seq=...)`` relies on that). Other writes and all reads
  run concurrently.
- **Migrations** (:mod:`~optical_memory.store.postgres_migrations`): named,
  recorded in ``om_migrations``, each in its own transaction under an
  advisory lock, so processes opening a fresh database together apply each
  migration exactly once.
- **Search**: the passage index (:mod:`~optical_memory.store.passages`):
  each passage's tokens (:mod:`~optical_memory.store.terms`: folded words,
  CJK bigrams and unigrams, made in Python exactly as for SQLite) are stored
  as a ``tsvector`` literal (quoted lexemes, so neither a text search
  configuration nor the server's locale re-splits them; no extension is
  needed) under a GIN index. A query is one ``tsquery`` literal per term
  (quoted lexemes joined by ``<->``), each a bound parameter: no user text
  reaches SQL or tsquery syntax. Ranking, as on SQLite: the sum of the idf
  of the terms a passage holds, ties broken by ``ts_rank``
  (:class:`~optical_memory.store.passages.Ranking`).
- **Types**: PNGs and vision tokens are ``bytea``; dicts, lists and spans are
  JSON in ``text`` columns (``jsonb`` would reject a ``\\u0000`` escape that
  valid JSON may hold); ``created_at`` is ISO 8601 text like SQLite's.

Tables are prefixed ``om_`` and created in the connection's ``search_path``
(pick a schema with ``?options=-csearch_path%3Dmyschema`` in the URL).
"""
from __future__ import annotations

import functools
import logging
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from optical_memory.errors import DependencyMissingError, InputError
from optical_memory.store import sql as stmt
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
from optical_memory.store.migrations import Migration  # noqa: F401  (re-export)
from optical_memory.store.passages import (
    DF_CAP,
    Ranking,
    idf_weights,
    passage_hit,
    search_query,
)
from optical_memory.store.postgres_migrations import (  # noqa: F401  (re-export)
    _MIGRATE_LOCK,
    POSTGRES_MIGRATIONS,
    migrate,
)
from optical_memory.store.sql import POSTGRES, SqlReads, SqlWrites
from optical_memory.store.terms import query_terms, tsquery_literal
from optical_memory.store.vectors import SqlVectors

try:
    import psycopg
    from psycopg.rows import dict_row
    from psycopg_pool import ConnectionPool, PoolTimeout
except ImportError as _exc:  # the optional extra is not installed
    psycopg = None  # type: ignore[assignment]
    _IMPORT_ERROR: ImportError | None = _exc
else:
    _IMPORT_ERROR = None

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'optical-memory[postgres]'"
DEFAULT_TIMEOUT_S = 30.0
#: Advisory lock key of the item/page writers ("om" + purpose; migrations
#: hold ``_MIGRATE_LOCK``, 0x6F6D_0001).
_WRITE_LOCK = 0x6F6D_0002


# --------------------------------------------------------------------------
# URLs
# --------------------------------------------------------------------------


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages and logs)."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def libpq_url(url: str) -> str:
    """A URL libpq accepts: the SQLAlchemy-style ``postgresql+psycopg://`` prefix dropped."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme.lower().startswith("postgresql+"):
        return "postgresql://" + rest
    return url


F = TypeVar("F", bound=Callable[..., Any])


def _guarded(method: F) -> F:
    """Turn psycopg errors into typed errors; refuse calls on a closed store."""

    @functools.wraps(method)
    def wrapper(self: PostgresStore, *args: Any, **kwargs: Any) -> Any:
        if self._pool is None:
            raise StoreError(f"store {self.url} is closed")
        try:
            return method(self, *args, **kwargs)
        except psycopg.errors.IntegrityError as exc:
            raise InputError(f"rejected by the database: {exc}") from exc
        except (psycopg.errors.DataError, psycopg.errors.ProgramLimitExceeded) as exc:
            raise InputError(f"rejected by the database: {exc}") from exc
        except PoolTimeout as exc:
            raise StoreError(f"no PostgreSQL connection free on {self.url}: {exc}") from exc
        except psycopg.Error as exc:
            raise StoreError(f"PostgreSQL error on {self.url}: {exc}") from exc

    return wrapper  # type: ignore[return-value]


class PostgresStore(SqlReads, SqlWrites, SqlVectors):
    """The :class:`~optical_memory.store.base.Store` protocol on PostgreSQL.

    url:      ``postgresql://user:password@host:port/dbname`` (libpq URL).
    max_size: pool size (connections this object may hold at once).
    timeout:  seconds to wait for the server at open and for a free connection.
    """

    _sql = POSTGRES

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 4,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        if _IMPORT_ERROR is not None:
            raise DependencyMissingError(
                f"the PostgreSQL store needs psycopg 3 and psycopg-pool ({_IMPORT_ERROR}); "
                f"install them with: {INSTALL_HINT}"
            )
        self.url = redact(url)
        self._conninfo = libpq_url(url)
        self._lock = threading.Lock()
        self._pool: ConnectionPool | None = None
        try:
            with psycopg.connect(
                self._conninfo, autocommit=True, connect_timeout=max(1, int(timeout))
            ) as conn:
                applied_now = migrate(conn)
        except psycopg.Error as exc:
            raise StoreError(f"cannot open PostgreSQL store {self.url}: {exc}") from exc
        if applied_now:
            logger.info("%s: applied migrations %s", self.url, ", ".join(applied_now))
        pool = ConnectionPool(
            self._conninfo,
            min_size=min_size,
            max_size=max(min_size, max_size),
            timeout=timeout,
            kwargs={"autocommit": True, "row_factory": dict_row},
            open=False,
            name="optical-memory",
        )
        try:
            pool.open(wait=True, timeout=timeout)
        except (PoolTimeout, psycopg.Error) as exc:
            pool.close()
            raise StoreError(f"cannot open PostgreSQL store {self.url}: {exc}") from exc
        self._pool = pool

    def __repr__(self) -> str:
        return f"PostgresStore({self.url!r})"

    # -- plumbing ----------------------------------------------------------

    @contextmanager
    def _conn(self) -> Iterator[Any]:
        pool = self._pool
        if pool is None:
            raise StoreError(f"store {self.url} is closed")
        with pool.connection() as conn:
            yield conn

    @contextmanager
    def _write(self, *, ordered: bool = False) -> Iterator[Any]:
        """One transaction; with ``ordered``, serialised with the other
        item/page writers (see the module doc)."""
        with self._conn() as conn, conn.transaction():
            if ordered:
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK,))
            yield conn

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._conn() as conn:
            return conn.execute(sql, params).fetchall()

    def migrations_applied(self) -> dict[str, str]:
        """``{name: applied_at}`` from the ``om_migrations`` table."""
        rows = self._guarded_read(
            "SELECT name, applied_at FROM om_migrations ORDER BY applied_at, name")
        return {r["name"]: r["applied_at"] for r in rows}

    @_guarded
    def _guarded_read(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return self._read(sql, params)

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
        with self._write(ordered=True) as conn, conn.cursor() as cur:
            stmt.insert_write(POSTGRES, cur, write, replaces=replaces, exclusive=exclusive)
        return write.ids

    @_guarded
    def _guarded_write(self, run: Callable[[Any], Any]) -> Any:
        """``run(connection)`` in one write transaction (for :class:`SqlWrites`)."""
        with self._write() as conn:
            return run(conn)

    @_guarded
    def delete(self, scope: Scope, *, item_ids: Sequence[str] | None = None,
               missing_ok: bool = True) -> Deleted:
        scope = check_scope(scope)
        wanted = check_item_ids(item_ids)
        with self._write(ordered=True) as conn:
            return stmt.delete_items(POSTGRES, conn, scope, wanted, missing_ok=missing_ok)

    @_guarded
    def update_item(self, item_id: str, scope: Scope, *, text: str | None, text_tokens: int,
                    content_hash: str, meta: Mapping[str, Any], reindex: bool = True
                    ) -> list[str]:
        with self._write(ordered=True) as conn, conn.cursor() as cur:
            return stmt.update_item(POSTGRES, cur, item_id, scope, text=text,
                                    text_tokens=text_tokens, content_hash=content_hash,
                                    meta=meta, reindex=reindex)

    @_guarded
    def clear(self) -> Deleted:
        with self._write(ordered=True) as conn:
            return stmt.clear_all(POSTGRES, conn)

    # -- reads (get/list: SqlReads) ---------------------------------------

    @_guarded
    def search(
        self, query: str, scope: Scope, k: int = 10, *, sources: Sequence[str] = SOURCES,
        metadata: Mapping[str, Any] | None = None, per_page: int = 1,
    ) -> list[SearchHit]:
        """Passages ranked by the idf of the terms they hold, then ``ts_rank``
        (:class:`~optical_memory.store.passages.Ranking`)."""
        scope = check_scope(scope)
        check_limit("k", k)
        per_page = check_per_page(per_page)
        sources = check_sources(sources)
        filters = check_filter(metadata)
        terms = query_terms(query)
        if not terms or k == 0 or not sources:
            return []
        literals = [tsquery_literal(t) for t in terms.terms]
        weights = idf_weights(*self._counts(literals))
        names = [f"q{n}" for n in range(len(literals))]
        sql, params = search_query(POSTGRES, scope, sources, k, Ranking(
            head=("WITH q AS (SELECT " + ", ".join(f"%s::tsquery AS {n}" for n in names) + ")",
                  literals),
            matched="q, om_passages ps",
            match=("ps.tsv @@ (" + " || ".join(f"q.{n}" for n in names) + ")", []),
            score=("(" + " + ".join(f"CASE WHEN ps.tsv @@ q.{n} THEN %s ELSE 0 END"
                                    for n in names) + ")", weights),
            tiebreak=("(" + " + ".join(f"ts_rank(ps.tsv, q.{n})" for n in names) + ")", []),
        ), filters, per_page)
        return [passage_hit(row, terms) for row in self._read(sql, params)]

    @_guarded
    def stats(self, scope: Scope) -> StoreStats:
        queries = stmt.stats_queries(POSTGRES, scope)
        with self._conn() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            return stmt.stats_record([conn.execute(*query).fetchall() for query in queries])

    @_guarded
    def query_weight(self, query: str) -> float:
        """What :meth:`search` scores a passage holding every term of ``query``."""
        literals = [tsquery_literal(t) for t in query_terms(query).terms]
        return sum(idf_weights(*self._counts(literals))) / 1000 if literals else 0.0

    def _counts(self, literals: Sequence[str]) -> tuple[int, list[int]]:
        """Passages in all, and matching each tsquery (capped at DF_CAP)."""
        counts = " , ".join(
            "(SELECT count(*) FROM (SELECT 1 FROM om_passages "
            f"WHERE tsv @@ %s::tsquery LIMIT {DF_CAP}) t) AS df{n}"
            for n in range(len(literals))
        )
        row = self._read(
            f"SELECT (SELECT count(*) FROM (SELECT 1 FROM om_passages LIMIT {DF_CAP}) t) AS n, "
            f"{counts}",
            list(literals),
        )[0]
        return int(row["n"]), [int(row[f"df{n}"]) for n in range(len(literals))]

    # -- lifecycle ---------------------------------------------------------

    def close(self) -> None:
        """Close the pool; later calls raise :class:`StoreError`. Idempotent."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
