"""Storage: the :class:`Store` protocol, its records, and the backends.

``open_store()`` picks a backend from a URL or path::

    open_store()                       # $OPTICAL_MEMORY_HOME/memory.db (or platform dir)
    open_store("/data/memory.db")      # a SQLite file
    open_store("sqlite:///data/m.db")  # the same, as a URL (path after "sqlite://")
    open_store(":memory:")             # a private in-memory SQLite database
    open_store("postgresql://u:pw@host/db")  # PostgreSQL (extra: optical-memory[postgres])
"""
from __future__ import annotations

import os

from optical_memory.errors import ConfigError
from optical_memory.store.base import (
    KINDS,
    SOURCES,
    ConflictError,
    Deleted,
    ItemRecord,
    NewItem,
    NewPage,
    NotFoundError,
    PageRecord,
    RenditionRecord,
    Scope,
    ScopeCount,
    SearchHit,
    Store,
    StoreError,
    StoreStats,
    new_id,
    text_hash,
)
from optical_memory.store.paths import data_dir, default_db_path
from optical_memory.store.sqlite import SQLiteStore

__all__ = [
    "KINDS",
    "SOURCES",
    "ConflictError",
    "Deleted",
    "ItemRecord",
    "NewItem",
    "NewPage",
    "NotFoundError",
    "PageRecord",
    "RenditionRecord",
    "SQLiteStore",
    "Scope",
    "ScopeCount",
    "SearchHit",
    "Store",
    "StoreError",
    "StoreStats",
    "data_dir",
    "default_db_path",
    "new_id",
    "open_store",
    "text_hash",
]

_POSTGRES_SCHEMES = ("postgresql://", "postgres://", "postgresql+psycopg://")


def open_store(url_or_path: str | os.PathLike[str] | None = None) -> Store:
    """Open the store named by ``url_or_path``.

    ``None`` → the default SQLite file (:func:`default_db_path`); a path,
    ``":memory:"`` or ``sqlite://<path>`` (so ``sqlite:///abs/path.db`` is
    absolute, ``sqlite://:memory:`` in memory) → :class:`SQLiteStore`.
    ``postgresql://...`` (also ``postgres://``, ``postgresql+psycopg://``) →
    :class:`~optical_memory.store.postgres.PostgresStore`, which raises
    :class:`~optical_memory.errors.DependencyMissingError` naming
    ``pip install 'optical-memory[postgres]'`` when psycopg is absent and
    :class:`StoreError` when the server cannot be reached; any other scheme
    raises :class:`ConfigError`.
    """
    if url_or_path is None:
        return SQLiteStore(default_db_path())
    if isinstance(url_or_path, os.PathLike):
        return SQLiteStore(url_or_path)
    if not isinstance(url_or_path, str):
        raise ConfigError(
            f"store location must be a path or URL string (got {type(url_or_path).__name__})"
        )
    target = url_or_path.strip()
    if not target:
        raise ConfigError("store location is empty")
    lowered = target.lower()
    if lowered.startswith(_POSTGRES_SCHEMES):
        from optical_memory.store.postgres import PostgresStore

        return PostgresStore(target)
    if lowered.startswith("sqlite://"):
        path = target[len("sqlite://") :]
        if path in ("", ":memory:", "/:memory:"):
            return SQLiteStore(":memory:")
        return SQLiteStore(path)
    scheme, sep, _ = target.partition("://")
    if sep and scheme.replace("+", "").isalnum():
        raise ConfigError(
            f"unknown store URL scheme {scheme!r} (known: sqlite://, postgresql://)"
        )
    return SQLiteStore(target)
