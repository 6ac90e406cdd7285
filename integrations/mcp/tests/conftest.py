"""Fixtures for the MCP server tests: an isolated data home, a store file per
test, a small page layout (fast rendering and OCR), and in-process clients.

Clients connect with :class:`mcp.Client` in-process, in both of the SDK's
modes: ``"legacy"`` (JSON-RPC messages over in-memory streams, the initialize
handshake: everything a stdio client exercises bar the pipe) and ``"auto"``
(the direct in-process dispatcher).
"""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest
from mcp import Client

from optical_memory import OpticalMemory
from optical_memory.render import RenderConfig
from optical_memory_mcp import ServerConfig, create_server

#: Small pages: a 512² page renders and OCRs in well under a second.
SMALL = RenderConfig(width=512, height=512, font_size=14, newline_mode="marker")
KEEP_LAST = 4

ClientFactory = Callable[..., AbstractAsyncContextManager[Client]]


@pytest.fixture(autouse=True)
def memory_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty ``OPTICAL_MEMORY_HOME`` for this test."""
    home = tmp_path / "optical-memory-home"
    monkeypatch.setenv("OPTICAL_MEMORY_HOME", str(home))
    return home


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def store_path(tmp_path: Path) -> str:
    return str(tmp_path / "memory.db")


def library_memory(store: str) -> OpticalMemory:
    """The library, opened on ``store`` with the servers' test settings."""
    return OpticalMemory(store, render_config=SMALL, keep_last=KEEP_LAST)


@pytest.fixture
def library(store_path: str) -> Callable[[], OpticalMemory]:
    """Opens the library directly on this test's store, as the servers do."""
    return lambda: library_memory(store_path)


@pytest.fixture
def connect(store_path: str) -> ClientFactory:
    """``connect(user_id="alice", mode="legacy", store=...)`` → an async
    context manager yielding a connected client of a fresh server."""

    @asynccontextmanager
    async def factory(user_id: str = "alice", *, mode: str = "legacy",
                      store: str | None = None, **config: object) -> AsyncIterator[Client]:
        cfg = ServerConfig(store=store or store_path, user_id=user_id,
                           keep_last=KEEP_LAST, **config)  # type: ignore[arg-type]
        with library_memory(cfg.store or store_path) as mem:
            async with Client(create_server(cfg, memory=mem), mode=mode) as client:
                yield client

    return factory
