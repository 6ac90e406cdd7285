"""``AsyncOpticalMemory``: the :class:`~optical_memory.memory.OpticalMemory`
API for asyncio code, method for method.

How it runs, honestly: each call runs the synchronous method in a worker
thread (:func:`asyncio.to_thread`), on both backends. It is not native
async I/O on PostgreSQL: most of a call's time is CPU work (laying out and
rasterising pages, resampling tiers, OCR) that would block an event loop
just the same, and the memory is thread-safe (see ``docs/architecture.md``,
"Threads and processes"), so a thread per call keeps the loop free without a
second implementation of the store. Concurrency is bounded by the loop's
default executor and, underneath, by the store (SQLite: one connection, calls
take turns; PostgreSQL: a pool of up to 4 connections).

    async with AsyncOpticalMemory("postgresql://...") as mem:
        await mem.add([{"role": "user", "content": "hi"}], user_id="ann",
                      metadata={"topic": "greeting"})
        hits = await mem.retrieve("hi", user_id="ann")

Opening the store (``AsyncOpticalMemory(...)``) happens in the constructor,
synchronously; :meth:`AsyncOpticalMemory.open` does it in a thread instead.
"""
from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from optical_memory.memory import OpticalMemory

if TYPE_CHECKING:  # pragma: no cover
    from optical_memory.config import MemoryConfig
    from optical_memory.context import Context
    from optical_memory.decode.readback import DecodedPage, TierReport
    from optical_memory.ingest import AddResult
    from optical_memory.items import ItemList, MemoryItem, UpdateResult
    from optical_memory.render.paging import CompactResult
    from optical_memory.retrieve import Hit
    from optical_memory.store import Deleted, ItemRecord, PageRecord, Store, StoreStats

T = TypeVar("T")


class AsyncOpticalMemory:
    """:class:`OpticalMemory` with ``async`` methods (same arguments, same
    results, same errors); ``sync`` is the wrapped memory. Build it like an
    ``OpticalMemory`` (same arguments), or wrap one with ``AsyncOpticalMemory.wrap``."""

    def __init__(self, store: Store | str | os.PathLike[str] | None = None,
                 **kwargs: Any) -> None:
        self.sync = OpticalMemory(store, **kwargs)

    @classmethod
    def wrap(cls, memory: OpticalMemory) -> AsyncOpticalMemory:
        """An async view of an existing memory (closing it closes ``memory``)."""
        out = cls.__new__(cls)
        out.sync = memory
        return out

    @classmethod
    def from_config(cls, config: MemoryConfig | Mapping[str, Any],
                    **kwargs: Any) -> AsyncOpticalMemory:
        """As :meth:`OpticalMemory.from_config`."""
        return cls.wrap(OpticalMemory.from_config(config, **kwargs))

    @classmethod
    async def open(cls, store: Store | str | os.PathLike[str] | None = None,
                   **kwargs: Any) -> AsyncOpticalMemory:
        """Build one with the store opened (and migrated) in a worker thread."""
        return cls.wrap(await asyncio.to_thread(OpticalMemory, store, **kwargs))

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.to_thread(functools.partial(fn, *args, **kwargs))

    def __repr__(self) -> str:
        return f"Async{self.sync!r}"

    async def aclose(self) -> None:
        await self._run(self.sync.close)

    async def __aenter__(self) -> AsyncOpticalMemory:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- writes: same keywords as OpticalMemory's methods -----------------------

    async def add(self, messages: Any, **kwargs: Any) -> AddResult:
        return await self._run(self.sync.add, messages, **kwargs)

    async def add_document(self, text: str, **kwargs: Any) -> AddResult:
        return await self._run(self.sync.add_document, text, **kwargs)

    async def check_messages(self, messages: Any, **kwargs: Any) -> int:
        return await self._run(self.sync.check_messages, messages, **kwargs)

    async def compact(self, **kwargs: Any) -> CompactResult:
        return await self._run(self.sync.compact, **kwargs)

    async def update(self, item_id: str, text: str | None = None,
                     **kwargs: Any) -> UpdateResult:
        return await self._run(self.sync.update, item_id, text, **kwargs)

    async def delete(self, **kwargs: Any) -> Deleted:
        return await self._run(self.sync.delete, **kwargs)

    async def reset(self, **kwargs: Any) -> Deleted:
        return await self._run(self.sync.reset, **kwargs)

    # -- reads ---------------------------------------------------------------

    async def retrieve(self, query: str, **kwargs: Any) -> list[Hit]:
        return await self._run(self.sync.retrieve, query, **kwargs)

    async def decode(self, page: str | Hit, **kwargs: Any) -> DecodedPage:
        return await self._run(self.sync.decode, page, **kwargs)

    async def context(self, budget_tokens: int, **kwargs: Any) -> Context:
        return await self._run(self.sync.context, budget_tokens, **kwargs)

    async def get(self, item_id: str, **kwargs: Any) -> MemoryItem:
        return await self._run(self.sync.get, item_id, **kwargs)

    async def get_all(self, **kwargs: Any) -> ItemList:
        return await self._run(self.sync.get_all, **kwargs)

    async def get_item(self, item_id: str, **kwargs: Any) -> ItemRecord | None:
        return await self._run(self.sync.get_item, item_id, **kwargs)

    async def get_page(self, page_id: str, **kwargs: Any) -> PageRecord | None:
        return await self._run(self.sync.get_page, page_id, **kwargs)

    async def list_turns(self, **kwargs: Any) -> list[ItemRecord]:
        return await self._run(self.sync.list_turns, **kwargs)

    async def list_pages(self, **kwargs: Any) -> list[PageRecord]:
        return await self._run(self.sync.list_pages, **kwargs)

    async def stats(self, **kwargs: Any) -> StoreStats:
        return await self._run(self.sync.stats, **kwargs)

    async def tier_png(self, page_id: str, tier: str | None = None, **kwargs: Any) -> bytes:
        return await self._run(self.sync.tier_png, page_id, tier, **kwargs)

    async def measure_tiers(self, sample: str | None = None, **kwargs: Any) -> list[TierReport]:
        return await self._run(self.sync.measure_tiers, sample, **kwargs)


__all__ = ["AsyncOpticalMemory"]
