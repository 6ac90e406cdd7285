"""Shared fixtures: an isolated data home per test, and the storage backends.

Every test gets its own ``OPTICAL_MEMORY_HOME`` (a temporary folder), so
nothing touches the real data directory.

``store`` runs each storage test once per backend. SQLite always runs; the
PostgreSQL leg runs when ``OPTICAL_MEMORY_TEST_PG_URL`` names a server
(``postgresql://user@127.0.0.1/db``) and is skipped with that hint otherwise.
Tests keep apart on a shared server by scoping all their data under the
unique ``uid`` prefix (so no per-test database is needed, and every test
doubles as an isolation check).
"""
from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

PG_URL_ENV = "OPTICAL_MEMORY_TEST_PG_URL"
BACKENDS = ("sqlite", "postgres")


@pytest.fixture(autouse=True)
def memory_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty ``OPTICAL_MEMORY_HOME`` for this test."""
    home = tmp_path / "optical-memory-home"
    monkeypatch.setenv("OPTICAL_MEMORY_HOME", str(home))
    return home


@pytest.fixture
def uid() -> str:
    """A prefix unique to this test, for user ids."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where this test's store lives: a SQLite file, or the PostgreSQL URL."""
    if request.param == "sqlite":
        return str(tmp_path / "store.db")
    url = os.environ.get(PG_URL_ENV)
    if not url:
        pytest.skip(f"PostgreSQL leg skipped: set {PG_URL_ENV}=postgresql://... to run it")
    return url


@pytest.fixture
def open_store_at(store_url: str) -> Iterator[Callable[[], object]]:
    """Open (or reopen) the test's store; everything opened is closed after."""
    from optical_memory.store import open_store

    opened = []

    def _open():
        store = open_store(store_url)
        opened.append(store)
        return store

    yield _open
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store_at):
    """An open store on each backend."""
    return open_store_at()
