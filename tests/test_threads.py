"""One OpticalMemory shared by threads (what an MCP server or a web app does):
every cache is one thread-safe LRU and the SQLite store serialises its
connection, so concurrent add / retrieve / context / delete calls need no lock
around the memory."""
from __future__ import annotations

import threading

import reliability_worker as rw

from optical_memory.cache import LRUCache


def test_threads_share_one_memory_without_a_lock(tmp_path):
    mem = rw.make_memory(str(tmp_path / "m.db"))
    errors: list[BaseException] = []
    added: list[str] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        try:
            for i in range(12):
                text = rw.text_for(100 + n, i, words=20)
                res = mem.add([{"role": "user", "content": text}], user_id="u")
                with lock:
                    added.extend(res.item_ids)
                mem.retrieve(text.split()[0], user_id="u")
                if i % 3 == 0:
                    mem.context(3000, user_id="u")
                if i % 5 == 4:
                    mem.delete(item_ids=[res.item_ids[0]], user_id="u")
                    with lock:
                        added.remove(res.item_ids[0])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    stored = {i.id for i in mem.list_turns(user_id="u")}
    assert stored == set(added)
    mem.close()


def test_lru_cache_keeps_its_byte_budget_under_threads():
    cache = LRUCache(1000)

    def fill(n: int) -> None:
        for i in range(2000):
            cache.put((n, i), b"x" * 10, 10)
            cache.get((n, i - 1))

    threads = [threading.Thread(target=fill, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cache.bytes <= 1000 and len(cache) == cache.bytes // 10
