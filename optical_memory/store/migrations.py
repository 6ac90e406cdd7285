"""Named schema migrations for the SQLite store.

Each migration is a name and a list of SQL statements. :func:`migrate` applies
the ones not yet recorded in the ``migrations`` table (name, applied_at), each
in its own ``BEGIN IMMEDIATE`` transaction together with its record, so a
migration is applied exactly once even when several processes open a new
database at the same moment. Never edit a released migration; append a new one.

Schema (SQLite):

- ``items``: ``seq`` INTEGER PRIMARY KEY AUTOINCREMENT (never reused), ``id``
  TEXT UNIQUE, scope columns ``user_id`` / ``agent_id`` / ``session_id``,
  ``kind``, ``role``, ``name``, ``time``, ``text`` (NULL with keep_text=False),
  ``text_tokens``, ``tool_call_ids`` (JSON array), ``meta`` (JSON object),
  ``content_hash``, ``created_at``.
- ``pages``: same ``seq`` / ``id`` / scope columns, ``width``, ``height``,
  ``font_size``, ``png`` BLOB, ``text``, ``readback``, ``spans`` (JSON array of
  ``[item_id, start, end, page_start, page_end]``), ``missing_glyphs`` and
  ``meta`` (JSON objects), ``tier``, ``created_at``.
- ``page_items``: which page holds which item (from the spans); foreign keys
  to both with ON DELETE CASCADE.
- ``renditions``: PRIMARY KEY (page_id, tier), ``png`` BLOB, ``vision_tokens``
  BLOB (safetensors), ``encoder``; cascades with its page.
- ``search_fts`` (migrations 0003 to 0004): one FTS5 table (unicode61) over
  whole item text and page readback; replaced by the passage index.
- ``passages`` (0004, :mod:`~optical_memory.store.passages`): what each page
  shows of each item (or of its read-back), and items on no page yet, as
  ``item_id`` / ``page_id`` (foreign keys, ON DELETE CASCADE), ``char_start``
  / ``char_end`` and ``terms`` (index tokens, :mod:`~optical_memory.store.terms`).
- ``passages_fts``: an external-content FTS5 table over ``passages.terms``
  (``ascii`` tokenizer: the tokens are made in Python, the same on both
  backends); triggers keep it in step with ``passages`` (cascades included).
- ``passage_vectors`` (0005, :mod:`~optical_memory.store.vectors`): one
  embedding per passage and model: ``passage_id`` (foreign key, ON DELETE
  CASCADE), ``model``, ``vector`` (float32 BLOB); PRIMARY KEY (passage_id, model).

A migration step is an SQL statement or a function of the connection (the
passage backfill, which tokenizes in Python).
"""
from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from optical_memory.store.passages import backfill
from optical_memory.store.records import utc_now
from optical_memory.store.sql_dialect import SQLITE


@dataclass(frozen=True)
class Migration:
    """A named schema change: SQL statements, or functions of the connection
    (run in the migration's transaction), in order."""

    name: str
    statements: tuple[str | Callable[[Any], None], ...]


def run_step(conn: Any, step: str | Callable[[Any], None]) -> None:
    if callable(step):
        step(conn)
    else:
        conn.execute(step)


def _backfill_sqlite(conn: sqlite3.Connection) -> None:
    cur = conn.cursor()
    cur.row_factory = sqlite3.Row
    backfill(SQLITE, cur)


SQLITE_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "0001_items_pages",
        (
            """
            CREATE TABLE items (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                id TEXT NOT NULL UNIQUE,
                user_id TEXT NOT NULL,
                agent_id TEXT,
                session_id TEXT,
                kind TEXT NOT NULL CHECK (kind IN ('turn', 'document', 'text')),
                role TEXT,
                name TEXT,
                time TEXT,
                text_tokens INTEGER NOT NULL CHECK (text_tokens >= 0),
                tool_call_ids TEXT NOT NULL DEFAULT '[]',
                meta TEXT NOT NULL DEFAULT '{}',
                content_hash TEXT NOT NULL,
                created_at TEXT NOT NULL,
                text TEXT  -- last, like pages.png: long values spill into overflow pages
            )
            """,
            "CREATE INDEX items_scope ON items (user_id, agent_id, session_id, seq)",
            # reads scoped to a user alone, newest first (the recent-turns window)
            "CREATE INDEX items_user_seq ON items (user_id, seq)",
            "CREATE INDEX items_hash ON items (user_id, content_hash)",
            """
            CREATE TABLE pages (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                id TEXT NOT NULL UNIQUE,
                user_id TEXT NOT NULL,
                agent_id TEXT,
                session_id TEXT,
                width INTEGER NOT NULL CHECK (width > 0),
                height INTEGER NOT NULL CHECK (height > 0),
                font_size REAL NOT NULL,
                text TEXT,
                readback TEXT,
                spans TEXT NOT NULL,
                missing_glyphs TEXT NOT NULL DEFAULT '{}',
                meta TEXT NOT NULL DEFAULT '{}',
                tier TEXT NOT NULL,
                created_at TEXT NOT NULL,
                -- last: a large blob spills into overflow pages, and SQLite walks
                -- them to reach any column stored after it
                png BLOB NOT NULL
            )
            """,
            "CREATE INDEX pages_scope ON pages (user_id, agent_id, session_id, seq)",
            "CREATE INDEX pages_user_seq ON pages (user_id, seq)",
            """
            CREATE TABLE page_items (
                page_id TEXT NOT NULL REFERENCES pages (id) ON DELETE CASCADE,
                item_id TEXT NOT NULL REFERENCES items (id) ON DELETE CASCADE,
                PRIMARY KEY (page_id, item_id)
            ) WITHOUT ROWID
            """,
            "CREATE INDEX page_items_item ON page_items (item_id, page_id)",
        ),
    ),
    Migration(
        "0002_renditions",
        (
            """
            CREATE TABLE renditions (
                page_id TEXT NOT NULL REFERENCES pages (id) ON DELETE CASCADE,
                tier TEXT NOT NULL,
                width INTEGER NOT NULL CHECK (width > 0),
                height INTEGER NOT NULL CHECK (height > 0),
                png BLOB NOT NULL,
                vision_tokens BLOB,
                encoder TEXT,
                created_at TEXT NOT NULL,
                PRIMARY KEY (page_id, tier)
            )
            """,
        ),
    ),
    Migration(
        "0003_search_fts",
        (
            "CREATE VIRTUAL TABLE search_fts USING fts5"
            "(body, tokenize = 'unicode61 remove_diacritics 2')",
            """
            CREATE TRIGGER items_fts_insert AFTER INSERT ON items
            WHEN new.text IS NOT NULL BEGIN
                INSERT INTO search_fts (rowid, body) VALUES (2 * new.seq, new.text);
            END
            """,
            """
            CREATE TRIGGER items_fts_delete AFTER DELETE ON items BEGIN
                DELETE FROM search_fts WHERE rowid = 2 * old.seq;
            END
            """,
            """
            CREATE TRIGGER pages_fts_insert AFTER INSERT ON pages
            WHEN new.readback IS NOT NULL BEGIN
                INSERT INTO search_fts (rowid, body) VALUES (2 * new.seq + 1, new.readback);
            END
            """,
            """
            CREATE TRIGGER pages_fts_delete AFTER DELETE ON pages BEGIN
                DELETE FROM search_fts WHERE rowid = 2 * old.seq + 1;
            END
            """,
        ),
    ),
    Migration(
        "0004_passages",
        (
            """
            CREATE TABLE passages (
                id INTEGER PRIMARY KEY,
                item_id TEXT REFERENCES items (id) ON DELETE CASCADE,
                page_id TEXT REFERENCES pages (id) ON DELETE CASCADE,
                char_start INTEGER NOT NULL,
                char_end INTEGER NOT NULL,
                terms TEXT NOT NULL,
                CHECK (item_id IS NOT NULL OR page_id IS NOT NULL),
                CHECK (0 <= char_start AND char_start <= char_end)
            )
            """,
            "CREATE INDEX passages_item ON passages (item_id, page_id)",
            "CREATE INDEX passages_page ON passages (page_id)",
            "CREATE VIRTUAL TABLE passages_fts USING fts5"
            "(terms, content = 'passages', content_rowid = 'id', tokenize = 'ascii')",
            """
            CREATE TRIGGER passages_fts_insert AFTER INSERT ON passages BEGIN
                INSERT INTO passages_fts (rowid, terms) VALUES (new.id, new.terms);
            END
            """,
            """
            CREATE TRIGGER passages_fts_delete AFTER DELETE ON passages BEGIN
                INSERT INTO passages_fts (passages_fts, rowid, terms)
                VALUES ('delete', old.id, old.terms);
            END
            """,
            _backfill_sqlite,
            "DROP TRIGGER items_fts_insert",
            "DROP TRIGGER items_fts_delete",
            "DROP TRIGGER pages_fts_insert",
            "DROP TRIGGER pages_fts_delete",
            "DROP TABLE search_fts",
        ),
    ),
    Migration(
        "0005_passage_vectors",
        (
            """
            CREATE TABLE passage_vectors (
                passage_id INTEGER NOT NULL REFERENCES passages (id) ON DELETE CASCADE,
                model TEXT NOT NULL,
                vector BLOB NOT NULL,
                PRIMARY KEY (passage_id, model)
            )
            """,
        ),
    ),
)


def applied(conn: sqlite3.Connection) -> dict[str, str]:
    """``{name: applied_at}`` of the migrations recorded in ``conn``."""
    rows = conn.execute("SELECT name, applied_at FROM migrations ORDER BY rowid").fetchall()
    return {name: at for name, at in rows}


def migrate(
    conn: sqlite3.Connection, migrations: tuple[Migration, ...] = SQLITE_MIGRATIONS
) -> list[str]:
    """Apply pending migrations; returns the names applied now.

    ``conn`` must be in autocommit mode (``isolation_level=None``).
    """
    conn.execute(
        "CREATE TABLE IF NOT EXISTS migrations "
        "(name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
    )
    done: list[str] = []
    for migration in migrations:
        conn.execute("BEGIN IMMEDIATE")
        try:
            seen = conn.execute(
                "SELECT 1 FROM migrations WHERE name = ?", (migration.name,)
            ).fetchone()
            if seen is None:
                for step in migration.statements:
                    run_step(conn, step)
                conn.execute(
                    "INSERT INTO migrations (name, applied_at) VALUES (?, ?)",
                    (migration.name, utc_now()),
                )
                done.append(migration.name)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return done
