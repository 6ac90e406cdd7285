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
- **Search**: PostgreSQL full-text search. Item text and page read-back are
  folded (case, diacritics) and split into words in Python with the same
  word rule as :func:`~optical_memory.store.base.query_phrases`, then stored
  as ``tsvector`` chunks (``om_search``, GIN index) of at most
  :data:`CHUNK_WORDS` words overlapping by a phrase, so long documents stay
  fully searchable within tsvector's size and position limits. The query is
  an OR of ``phraseto_tsquery('simple', %s)`` with each phrase a bound
  parameter: no user text ever reaches SQL or tsquery syntax. Score (higher
  is better) is BM25-like: per phrase, ``ts_rank`` times the phrase's idf
  over all search rows (counted up to :data:`DF_CAP`), summed.
- **Types**: PNGs and vision tokens are ``bytea``; dicts, lists and spans are
  JSON in ``text`` columns (``jsonb`` would reject a ``\\u0000`` escape that
  valid JSON may hold); ``created_at`` is ISO 8601 text like SQLite's.

Tables are prefixed ``om_`` and created in the connection's ``search_path``
(pick a schema with ``?options=-csearch_path%3Dmyschema`` in the URL).
"""
from __future__ import annotations

import functools
import logging
import math
import re
import threading
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from optical_memory.errors import DependencyMissingError, InputError
from optical_memory.store import sql as stmt
from optical_memory.store.base import (
    MAX_PHRASE_WORDS,
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
    check_scope,
    check_sources,
    query_phrases,
)
from optical_memory.store.migrations import Migration  # noqa: F401  (re-export)
from optical_memory.store.postgres_migrations import (  # noqa: F401  (re-export)
    _MIGRATE_LOCK,
    POSTGRES_MIGRATIONS,
    migrate,
)
from optical_memory.store.sql import POSTGRES, SqlReads, SqlWrites

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
#: Words per tsvector chunk: positions stay below tsvector's 16,383 cap.
CHUNK_WORDS = 4096
#: UTF-8 bytes of words per chunk: the tsvector stays well under its 1 MB cap.
CHUNK_BYTES = 128 * 1024
#: PostgreSQL ignores words longer than this (bytes); so do we, on both sides.
MAX_WORD_BYTES = 2047
#: Search rows counted at most per idf estimate (bounds the cost of a common word).
DF_CAP = 100_000
#: Advisory lock key of the item/page writers ("om" + purpose; migrations
#: hold ``_MIGRATE_LOCK``, 0x6F6D_0001).
_WRITE_LOCK = 0x6F6D_0002

_WORD = re.compile(r"[^\W_]+")


# --------------------------------------------------------------------------
# Search text: folding and chunking (pure functions)
# --------------------------------------------------------------------------


def fold(text: str) -> str:
    """Case- and diacritic-folded text (like FTS5's ``remove_diacritics``)."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return unicodedata.normalize("NFC", stripped.casefold())


def index_words(text: str) -> list[str]:
    """The searchable words of ``text``: folded runs of letters and digits,
    without words PostgreSQL would refuse to index (over 2047 bytes)."""
    return [w for w in _WORD.findall(fold(text)) if len(w.encode("utf-8")) <= MAX_WORD_BYTES]


def index_chunks(text: str) -> list[str]:
    """``text`` as space-joined word chunks of at most :data:`CHUNK_WORDS`
    words and about :data:`CHUNK_BYTES` bytes; consecutive chunks share
    ``MAX_PHRASE_WORDS - 1`` words so a phrase across a boundary still matches."""
    words = index_words(text)
    chunks: list[str] = []
    start = 0
    while start < len(words):
        end, size = start, 0
        while end < len(words) and end - start < CHUNK_WORDS and size < CHUNK_BYTES:
            size += len(words[end].encode("utf-8")) + 1
            end += 1
        chunks.append(" ".join(words[start:end]))
        if end >= len(words):
            break
        start = max(start + 1, end - (MAX_PHRASE_WORDS - 1))
    return chunks


def query_terms(query: str) -> list[str]:
    """One space-joined, folded word string per query phrase (deduplicated)."""
    terms: list[str] = []
    for phrase in query_phrases(query):
        words = index_words(" ".join(phrase))
        term = " ".join(words)
        if term and term not in terms:
            terms.append(term)
    return terms


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


class PostgresStore(SqlReads, SqlWrites):
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
        chunks = {
            "item": {item.id: index_chunks(item.text) for item in write.items if item.text},
            "page": {page.id: index_chunks(page.readback) for page in write.pages if page.readback},
        }
        with self._write(ordered=True) as conn, conn.cursor() as cur:
            stmt.insert_write(POSTGRES, cur, write, replaces=replaces, exclusive=exclusive,
                              index=lambda source: self._index(cur, source, chunks[source]))
        return write.ids

    @staticmethod
    def _index(cur: Any, source: str, chunks: dict[str, list[str]]) -> None:
        """Insert the search chunks of the just-inserted items or pages."""
        rows = [(n, chunk, owner)
                for owner, parts in chunks.items() for n, chunk in enumerate(parts)]
        if not rows:
            return
        if source == "item":
            sql = ("INSERT INTO om_search (item_seq, chunk, tsv) "
                   "SELECT seq, %s, to_tsvector('simple', %s) FROM om_items WHERE id = %s")
        else:
            sql = ("INSERT INTO om_search (page_seq, chunk, tsv) "
                   "SELECT seq, %s, to_tsvector('simple', %s) FROM om_pages WHERE id = %s")
        cur.executemany(sql, rows)

    @_guarded
    def _guarded_write(self, run: Callable[[Any], Any]) -> Any:
        """``run(connection)`` in one write transaction (for :class:`SqlWrites`)."""
        with self._write() as conn:
            return run(conn)

    @_guarded
    def delete(self, scope: Scope, *, item_ids: Sequence[str] | None = None) -> Deleted:
        scope = check_scope(scope)
        wanted = check_item_ids(item_ids)
        with self._write(ordered=True) as conn:
            return stmt.delete_items(POSTGRES, conn, scope, wanted)

    # -- reads (get/list: SqlReads) ---------------------------------------

    @_guarded
    def search(
        self, query: str, scope: Scope, k: int = 10, *, sources: Sequence[str] = SOURCES
    ) -> list[SearchHit]:
        scope = check_scope(scope)
        check_limit("k", k)
        sources = check_sources(sources)
        phrases = query_phrases(query)
        terms = query_terms(query)
        if not terms or k == 0 or not sources:
            return []
        weights = self._idf(terms)
        # Phrase queries q0..qn (bound parameters), their OR for the GIN index,
        # and a score summing idf-weighted ts_rank per phrase (BM25-like:
        # a rare word outweighs a common one).
        names = [f"q{n}" for n in range(len(terms))]
        cte = ", ".join(f"phraseto_tsquery('simple', %s) AS {n}" for n in names)
        either = " || ".join(f"q.{n}" for n in names)
        score = " + ".join(f"%s * ts_rank(s.tsv, q.{n})" for n in names)
        params: list[Any] = list(terms)
        parts: list[str] = []
        if "item" in sources:
            where, p = POSTGRES.scope_where(scope, "i")
            parts.append(
                "SELECT 'item' AS source, i.id AS item_id, NULL AS page_id, i.text AS body, "
                f"2 * i.seq AS tiebreak, max({score}) AS score "
                "FROM q, om_search s JOIN om_items i ON i.seq = s.item_seq "
                f"WHERE s.tsv @@ ({either}) AND {where} GROUP BY i.seq"
            )
            params += [*weights, *p]
        if "page" in sources:
            where, p = POSTGRES.scope_where(scope, "p")
            parts.append(
                "SELECT 'page' AS source, NULL AS item_id, p.id AS page_id, p.readback AS body, "
                f"2 * p.seq + 1 AS tiebreak, max({score}) AS score "
                "FROM q, om_search s JOIN om_pages p ON p.seq = s.page_seq "
                f"WHERE s.tsv @@ ({either}) AND {where} GROUP BY p.seq"
            )
            params += [*weights, *p]
        sql = (
            f"WITH q AS (SELECT {cte}) "
            + " UNION ALL ".join(parts)
            + " ORDER BY score DESC, tiebreak LIMIT %s"
        )
        return [
            stmt.search_hit(row, phrases, float(row["score"]))
            for row in self._read(sql, [*params, k])
        ]

    @_guarded
    def stats(self, scope: Scope) -> StoreStats:
        queries = stmt.stats_queries(POSTGRES, scope)
        with self._conn() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            return stmt.stats_record([conn.execute(*query).fetchall() for query in queries])

    def _idf(self, terms: Sequence[str]) -> list[float]:
        """BM25's idf per phrase, ``ln(1 + (N - df + 0.5) / (df + 0.5))``, over
        all search rows; counts stop at :data:`DF_CAP` (a phrase that common
        weighs about nothing either way)."""
        counts = " , ".join(
            "(SELECT count(*) FROM (SELECT 1 FROM om_search "
            f"WHERE tsv @@ phraseto_tsquery('simple', %s) LIMIT {DF_CAP}) t) AS df{n}"
            for n in range(len(terms))
        )
        row = self._read(
            f"SELECT (SELECT count(*) FROM (SELECT 1 FROM om_search LIMIT {DF_CAP}) t) AS n, "
            f"{counts}",
            list(terms),
        )[0]
        total = max(int(row["n"]), 1)
        return [
            math.log(1.0 + (total - df + 0.5) / (df + 0.5))
            for df in (min(int(row[f"df{n}"]), total) for n in range(len(terms)))
        ]

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
