"""Named schema migrations for the PostgreSQL store, and :func:`migrate`,
which applies them.

Same rules as the SQLite list in :mod:`~optical_memory.store.migrations`:
each migration is recorded by name (in ``om_migrations``) and applied once,
in its own transaction under an advisory lock, so processes opening a fresh
database together apply each exactly once. Never edit a released migration;
append a new one. Tables are prefixed ``om_``.
"""
from __future__ import annotations

from typing import Any

from optical_memory.store.migrations import Migration, run_step
from optical_memory.store.passages import backfill
from optical_memory.store.records import utc_now
from optical_memory.store.sql_dialect import POSTGRES

#: Advisory lock key held while migrating ("om" + purpose, like the store's write lock).
_MIGRATE_LOCK = 0x6F6D_0001


def _backfill_postgres(conn: Any) -> None:
    from psycopg.rows import dict_row

    with conn.cursor(row_factory=dict_row) as cur:
        backfill(POSTGRES, cur)


POSTGRES_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "0001_items_pages",
        (
            """
            CREATE TABLE om_items (
                seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                id TEXT NOT NULL UNIQUE,
                user_id TEXT NOT NULL,
                agent_id TEXT,
                session_id TEXT,
                kind TEXT NOT NULL CHECK (kind IN ('turn', 'document', 'text')),
                role TEXT,
                name TEXT,
                time TEXT,
                text TEXT,
                text_tokens BIGINT NOT NULL CHECK (text_tokens >= 0),
                tool_call_ids TEXT NOT NULL DEFAULT '[]',
                meta TEXT NOT NULL DEFAULT '{}',
                content_hash TEXT NOT NULL,
                created_at TEXT NOT NULL
            )
            """,
            "CREATE INDEX om_items_scope ON om_items (user_id, agent_id, session_id, seq)",
            "CREATE INDEX om_items_hash ON om_items (user_id, content_hash)",
            """
            CREATE TABLE om_pages (
                seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                id TEXT NOT NULL UNIQUE,
                user_id TEXT NOT NULL,
                agent_id TEXT,
                session_id TEXT,
                width INTEGER NOT NULL CHECK (width > 0),
                height INTEGER NOT NULL CHECK (height > 0),
                font_size DOUBLE PRECISION NOT NULL,
                png BYTEA NOT NULL,
                text TEXT,
                readback TEXT,
                spans TEXT NOT NULL,
                missing_glyphs TEXT NOT NULL DEFAULT '{}',
                meta TEXT NOT NULL DEFAULT '{}',
                tier TEXT NOT NULL,
                created_at TEXT NOT NULL
            )
            """,
            "CREATE INDEX om_pages_scope ON om_pages (user_id, agent_id, session_id, seq)",
            """
            CREATE TABLE om_page_items (
                page_id TEXT NOT NULL REFERENCES om_pages (id) ON DELETE CASCADE,
                item_id TEXT NOT NULL REFERENCES om_items (id) ON DELETE CASCADE,
                PRIMARY KEY (page_id, item_id)
            )
            """,
            "CREATE INDEX om_page_items_item ON om_page_items (item_id, page_id)",
        ),
    ),
    Migration(
        "0002_renditions",
        (
            """
            CREATE TABLE om_renditions (
                page_id TEXT NOT NULL REFERENCES om_pages (id) ON DELETE CASCADE,
                tier TEXT NOT NULL,
                width INTEGER NOT NULL CHECK (width > 0),
                height INTEGER NOT NULL CHECK (height > 0),
                png BYTEA NOT NULL,
                vision_tokens BYTEA,
                encoder TEXT,
                created_at TEXT NOT NULL,
                PRIMARY KEY (page_id, tier)
            )
            """,
        ),
    ),
    Migration(
        "0003_search",
        (
            """
            CREATE TABLE om_search (
                item_seq BIGINT REFERENCES om_items (seq) ON DELETE CASCADE,
                page_seq BIGINT REFERENCES om_pages (seq) ON DELETE CASCADE,
                chunk INTEGER NOT NULL,
                tsv TSVECTOR NOT NULL,
                CHECK ((item_seq IS NULL) <> (page_seq IS NULL))
            )
            """,
            "CREATE INDEX om_search_tsv ON om_search USING GIN (tsv)",
            "CREATE INDEX om_search_item ON om_search (item_seq) WHERE item_seq IS NOT NULL",
            "CREATE INDEX om_search_page ON om_search (page_seq) WHERE page_seq IS NOT NULL",
        ),
    ),
    # The passage index (optical_memory.store.passages) replaces om_search: a
    # tsvector per passage, built in Python from the same tokens as SQLite's
    # (optical_memory.store.terms), so no text search configuration, locale or
    # extension is involved.
    Migration(
        "0004_passages",
        (
            """
            CREATE TABLE om_passages (
                id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                item_id TEXT REFERENCES om_items (id) ON DELETE CASCADE,
                page_id TEXT REFERENCES om_pages (id) ON DELETE CASCADE,
                char_start INTEGER NOT NULL,
                char_end INTEGER NOT NULL,
                tsv TSVECTOR NOT NULL,
                CHECK (item_id IS NOT NULL OR page_id IS NOT NULL),
                CHECK (0 <= char_start AND char_start <= char_end)
            )
            """,
            "CREATE INDEX om_passages_tsv ON om_passages USING GIN (tsv)",
            "CREATE INDEX om_passages_item ON om_passages (item_id, page_id)",
            "CREATE INDEX om_passages_page ON om_passages (page_id)",
            _backfill_postgres,
            "DROP TABLE om_search",
        ),
    ),
    # Passage embeddings (optical_memory.store.vectors) as float32 bytes: Debian
    # 12's PostgreSQL has no pgvector package; search is exact, in numpy.
    Migration(
        "0005_passage_vectors",
        (
            """
            CREATE TABLE om_passage_vectors (
                passage_id BIGINT NOT NULL REFERENCES om_passages (id) ON DELETE CASCADE,
                model TEXT NOT NULL,
                vector BYTEA NOT NULL,
                PRIMARY KEY (passage_id, model)
            )
            """,
        ),
    ),
)


def migrate(conn: Any, migrations: tuple[Migration, ...] = POSTGRES_MIGRATIONS) -> list[str]:
    """Apply pending migrations on an autocommit connection; returns the names
    applied now. Each runs in its own transaction holding an advisory lock, so
    concurrent openers apply it once."""
    done: list[str] = []
    for migration in migrations:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATE_LOCK,))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS om_migrations "
                "(name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
            seen = conn.execute(
                "SELECT 1 FROM om_migrations WHERE name = %s", (migration.name,)
            ).fetchone()
            if seen is None:
                for step in migration.statements:
                    run_step(conn, step)
                conn.execute(
                    "INSERT INTO om_migrations (name, applied_at) VALUES (%s, %s)",
                    (migration.name, utc_now()),
                )
                done.append(migration.name)
    return done
