"""One byte-budgeted LRU cache, safe under threads, for every in-process cache
of the memory (tier images as base64, vision-token tensors, pages rendered on
the fly for turns that wait to be paged).

Entries carry their own size in bytes; inserting past the budget drops the
least recently used entries (never the one just inserted). Keys are
namespaced by the caller (e.g. ``("b64", page_id, tier)``) so several kinds
of value share one budget.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")


class LRUCache:
    """``get`` / ``put`` / ``get_or_make`` under one lock; ``max_bytes`` ≥ 0
    (0 keeps only the newest entry)."""

    def __init__(self, max_bytes: int) -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
            raise ValueError(f"max_bytes must be an int >= 0 (got {max_bytes!r})")
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        """Bytes held now (as the callers sized their entries)."""
        return self._bytes

    def get(self, key: Hashable) -> Any | None:
        with self._lock:
            hit = self._entries.get(key)
            if hit is None:
                return None
            self._entries.move_to_end(key)
            return hit[0]

    def put(self, key: Hashable, value: Any, nbytes: int) -> None:
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._entries[key] = (value, int(nbytes))
            self._bytes += int(nbytes)
            while self._bytes > self.max_bytes and len(self._entries) > 1:
                _, (_, size) = self._entries.popitem(last=False)
                self._bytes -= size

    def get_or_make(self, key: Hashable, make: Callable[[], T], size: Callable[[T], int]) -> T:
        """The cached value, else ``make()`` stored with ``size(value)`` bytes.
        ``make`` runs outside the lock (two threads may both make a missing
        value; the second put wins, which is harmless for pure values)."""
        hit = self.get(key)
        if hit is not None:
            return hit
        value = make()
        self.put(key, value, size(value))
        return value

    def discard(self, match: Callable[[Hashable], bool]) -> int:
        """Drop every entry whose key ``match``es; how many were dropped."""
        with self._lock:
            keys = [k for k in self._entries if match(k)]
            for k in keys:
                self._bytes -= self._entries.pop(k)[1]
            return len(keys)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0


__all__ = ["LRUCache"]
