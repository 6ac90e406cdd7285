"""Child processes and checks for the reliability suite (and its benchmark).

Run as a script, this file is the child the suite starts and kills::

    python tests/reliability_worker.py crash  URL USER SEED
    python tests/reliability_worker.py writer URL USER WRITER OPS SEED
    python tests/reliability_worker.py racer  URL USER RACER SECONDS SEED

``crash`` adds chat turns and documents through :class:`OpticalMemory` until
it is killed; ``writer`` does ``OPS`` adds interleaved with retrieve / stats /
context reads, then exits. Both acknowledge each add on stdout, one JSON line
*after* the call returned (``{"ids": [...], "hashes": [...]}``), so a line the
parent reads whole names items the API had committed.

Imported, it offers the drivers (:func:`run_crash`, :func:`run_concurrency`)
and the invariant check (:func:`check_store`) that tests/test_reliability.py
and benchmarks/reliability.py share.
"""
from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

WORKER = Path(__file__).resolve()
#: A small page so that compaction (turns → pages) happens every few adds.
PAGE_PX = 320


def make_memory(url: str, **kw):
    """The memory every reliability process uses: small pages, 2 recent turns."""
    from optical_memory import OpticalMemory
    from optical_memory.render import RenderConfig

    config = RenderConfig(width=PAGE_PX, height=PAGE_PX, font_size=11.0)
    kw.setdefault("keep_last", 2)
    return OpticalMemory(store=url, render_config=config, **kw)


_WORDS = [
    "budget", "meeting", "quokka", "notes", "zebra", "ünïcödé", "東京", "مرحبا", "emoji🙂",
    "tab\tand", "newline\ncode{x:1}", "OR", "NEAR(", '"quoted"', "-minus", "col:val",
]


def text_for(seed: int, i: int, words: int = 30) -> str:
    """Deterministic text holding the unique search word ``k<seed>x<i>``."""
    rng = random.Random(seed * 1_000_003 + i)
    body = " ".join(rng.choice(_WORDS) for _ in range(words))
    return f"k{seed}x{i} {body}"


def _ack(ids, texts) -> None:
    from optical_memory.store import text_hash

    line = json.dumps({"ids": list(ids), "hashes": [text_hash(t) for t in texts]})
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


# --------------------------------------------------------------------------
# Child modes
# --------------------------------------------------------------------------


def crash_child(url: str, user: str, seed: int) -> None:
    """Add until killed: two turns per call, a multi-page document every 4th."""
    mem = make_memory(url)
    i = 0
    while True:
        i += 1
        if i % 4 == 0:
            text = "\n\n".join(text_for(seed, i * 10 + j, words=60) for j in range(6))
            res = mem.add_document(text, title=f"doc {i}", user_id=user)
            _ack(res.item_ids, [text])
        else:
            texts = [text_for(seed, i * 10), text_for(seed, i * 10 + 1)]
            res = mem.add([{"role": "user", "content": texts[0]},
                           {"role": "assistant", "content": texts[1]}], user_id=user)
            _ack(res.item_ids, texts)


def writer_child(url: str, user: str, writer: int, ops: int, seed: int) -> None:
    """``ops`` adds in session ``w<writer>``, reading the whole user as it goes."""
    mem = make_memory(url)
    session = f"w{writer}"
    for op in range(ops):
        text = text_for(seed + writer, op, words=12)
        res = mem.add([{"role": "user", "content": text}], user_id=user, session_id=session)
        _ack(res.item_ids, [text])
        if op % 3 == 0:
            hits = mem.retrieve(f"k{seed + writer}x{op} quokka", user_id=user)
            assert any(h.item_id == res.item_ids[0] for h in hits), "own write not found"
            mem.stats(user_id=user)
        if op % 5 == 4:
            mem.context(4000, user_id=user, session_id=session)
    mem.close()
    sys.stdout.write("done\n")
    sys.stdout.flush()


def racer_child(url: str, user: str, racer: int, seconds: float, seed: int) -> None:
    """For ``seconds``: add turns, delete turns (its own and the other racers',
    all in one scope), compact and build contexts, as fast as it can. Acks each
    add on stdout (``{"ids", "hashes"}``) and each delete request
    (``{"deleted": [...]}``) after the call returned; any exception escapes and
    the child exits 1 with its traceback."""
    mem = make_memory(url)
    rng = random.Random(seed * 7919 + racer)
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        i += 1
        op = rng.random()
        if op < 0.55:
            texts = [text_for(seed * 100 + racer, i * 10 + j, words=25) for j in range(2)]
            res = mem.add([{"role": "user", "content": texts[0]},
                           {"role": "assistant", "content": texts[1]}], user_id=user)
            _ack(res.item_ids, texts)
        elif op < 0.75:
            turns = mem.list_turns(user_id=user)
            if turns:
                doomed = [t.id for t in rng.sample(turns, min(len(turns), rng.randint(1, 3)))]
                mem.delete(item_ids=doomed, user_id=user, missing_ok=True)  # racers share ids
                sys.stdout.write(json.dumps({"deleted": doomed}) + "\n")
                sys.stdout.flush()
        elif op < 0.85:
            mem.compact(user_id=user, force=rng.random() < 0.3)
        else:
            mem.context(rng.choice([2000, 8000, 100_000]), keep_last=rng.randint(0, 4),
                        user_id=user)
    mem.close()
    sys.stdout.write("done\n")
    sys.stdout.flush()


# --------------------------------------------------------------------------
# Invariants
# --------------------------------------------------------------------------


def check_store(store, scope, acked: dict[str, str], *, tiers=("base",), search_sample: int = 10,
                rng: random.Random | None = None) -> dict[str, int]:
    """Assert the store is whole under ``scope``; returns counts.

    - every acknowledged item is there with its text, whose sha256 is the
      acknowledged hash and the stored ``content_hash``;
    - every page holds at least one span, every span names an item that is
      there, within its text and within the page text, and its PNG decodes
      to the recorded size (no half-written page);
    - ``page_items`` agrees with the spans (``pages_for_item``), items on a
      page plus items on none are all items, ``stats`` agrees with the lists;
    - renditions of the given tiers decode at their recorded size;
    - search finds a sample of acknowledged items by their unique word.
    """
    import io

    from PIL import Image

    from optical_memory.store import text_hash

    items = {i.id: i for i in store.list_items(scope)}
    for item_id, digest in acked.items():
        got = items.get(item_id)
        assert got is not None, f"acknowledged item {item_id} lost"
        assert got.text is not None and text_hash(got.text) == digest == got.content_hash, (
            f"acknowledged item {item_id} altered")
    for item in items.values():
        if item.text is not None:
            assert text_hash(item.text) == item.content_hash, f"item {item.id} text/hash mismatch"
    pages = store.list_pages(scope)
    held: dict[str, set[str]] = {}
    for page in pages:
        assert page.spans, f"page {page.id} holds no span"
        for span in page.spans:
            item = items.get(span.item_id)
            assert item is not None, f"page {page.id} names missing item {span.item_id}"
            assert 0 <= span.start <= span.end <= len(item.text or ""), f"span {span} out of item"
            if page.text is not None:
                assert span.page_end <= len(page.text), f"span {span} out of page text"
            held.setdefault(span.item_id, set()).add(page.id)
        with Image.open(io.BytesIO(page.png)) as img:
            img.load()
            assert img.size == (page.width, page.height), f"page {page.id} PNG size"
        for tier in tiers:
            rend = store.get_rendition(page.id, tier, scope)
            if rend is not None:
                with Image.open(io.BytesIO(rend.png)) as img:
                    img.load()
                    assert img.size == (rend.width, rend.height), f"rendition {page.id}/{tier}"
    on_page = {i.id for i in store.list_items(scope, on_page=True)}
    off_page = {i.id for i in store.list_items(scope, on_page=False)}
    assert on_page == set(held), "page_items disagrees with the spans"
    assert on_page | off_page == set(items) and not on_page & off_page
    for item_id in list(held)[:search_sample]:
        assert {p.id for p in store.pages_for_item(item_id, scope)} == held[item_id]
    stats = store.stats(scope)
    assert (stats.items, stats.pages) == (len(items), len(pages)), "stats disagree with lists"
    rng = rng or random.Random(0)
    sample = rng.sample(sorted(acked), min(search_sample, len(acked)))
    for item_id in sample:
        word = items[item_id].text.split()[0]
        hits = store.search(word, scope, k=50, sources=("item",))
        assert item_id in {h.item_id for h in hits}, f"search lost {item_id} ({word})"
    return {"items": len(items), "pages": len(pages), "acked": len(acked)}


def check_backend(url: str, user: str) -> None:
    """Backend-level integrity: SQLite's own checks, or (PostgreSQL) that
    every item of ``user`` with searchable words has search rows and every
    page of ``user`` holds an item."""
    if url.startswith("postgres"):
        import psycopg

        from optical_memory.store.postgres import libpq_url
        from optical_memory.store.terms import index_tokens

        with psycopg.connect(libpq_url(url)) as conn:
            unindexed = [
                seq for seq, text in conn.execute(
                    "SELECT i.seq, i.text FROM om_items i WHERE i.user_id = %s "
                    "AND NOT EXISTS (SELECT 1 FROM om_passages s WHERE s.item_id = i.id)",
                    (user,),
                ).fetchall()
                if text is not None and index_tokens(text)
            ]
            assert not unindexed, f"items {unindexed} have text but no passages"
            empty = conn.execute(
                "SELECT count(*) FROM om_pages p WHERE p.user_id = %s AND NOT EXISTS "
                "(SELECT 1 FROM om_page_items pi WHERE pi.page_id = p.id)",
                (user,),
            ).fetchone()[0]
            assert empty == 0, f"{empty} pages hold no item"
        return
    db = sqlite3.connect(url)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
        db.execute("INSERT INTO passages_fts (passages_fts) VALUES ('integrity-check')")
        db.commit()
    finally:
        db.close()


# --------------------------------------------------------------------------
# Drivers
# --------------------------------------------------------------------------


class _Child:
    """A worker process whose complete stdout lines are collected by a thread."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER), *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.lines: list[str] = []
        self.stderr = b""
        self._out = threading.Thread(target=self._read, daemon=True)
        self._err = threading.Thread(target=self._read_err, daemon=True)
        self._out.start()
        self._err.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            if raw.endswith(b"\n"):  # a line cut by the kill is no acknowledgement
                self.lines.append(raw.decode())

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        self.stderr = self.proc.stderr.read()

    def acks(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for line in self.lines:
            if line.startswith('{"ids"'):
                rec = json.loads(line)
                out.update(zip(rec["ids"], rec["hashes"]))
        return out

    def wait(self, timeout: float) -> int:
        rc = self.proc.wait(timeout=timeout)
        self._out.join(timeout=10)
        self._err.join(timeout=10)
        return rc

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.wait(timeout=30)


@dataclass
class CrashReport:
    kills: int
    acked: int
    lost: int
    items: int
    pages: int
    seconds: float


def run_crash(url: str, user: str, *, kills: int, seed: int = 0, max_delay: float = 0.8,
              start_timeout: float = 60.0) -> CrashReport:
    """Start a ``crash`` child ``kills`` times, SIGKILL it at a random moment
    after its first acknowledgement, and check the store after each kill."""
    from optical_memory.store import Scope, open_store

    rng = random.Random(seed)
    acked: dict[str, str] = {}
    t0 = time.perf_counter()
    counts = {"items": 0, "pages": 0}
    for k in range(kills):
        child = _Child("crash", url, user, str(seed * 1000 + k))
        deadline = time.monotonic() + start_timeout
        while not child.lines:
            if child.proc.poll() is not None:
                child.wait(10)
                raise AssertionError(f"crash child died: {child.stderr.decode()[-2000:]}")
            if time.monotonic() > deadline:
                child.kill()
                raise AssertionError("crash child made no acknowledgement in time")
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, max_delay))
        child.kill()
        acked.update(child.acks())
        with open_store(url) as store:  # reopening runs recovery / migrations
            counts = check_store(store, Scope(user), acked, tiers=_tier_names(),
                                 rng=random.Random(seed + k))
        check_backend(url, user)
    return CrashReport(kills, len(acked), 0, counts["items"], counts["pages"],
                       time.perf_counter() - t0)


@dataclass
class ConcurrencyReport:
    writers: int
    ops: int
    acked: int
    lost: int
    seconds: float


def run_concurrency(url: str, user: str, *, writers: int, ops: int, seed: int = 0,
                    timeout: float = 300.0) -> ConcurrencyReport:
    """``writers`` processes × ``ops`` adds (with reads) on one memory at once;
    every acknowledged write must be there, and every child must exit 0."""
    from optical_memory.store import Scope, open_store

    t0 = time.perf_counter()
    children = [_Child("writer", url, user, str(w), str(ops), str(seed)) for w in range(writers)]
    failures = []
    for w, child in enumerate(children):
        try:
            rc = child.wait(timeout=max(1.0, timeout - (time.perf_counter() - t0)))
        except subprocess.TimeoutExpired:
            child.kill()
            rc = -9
        if rc != 0 or not child.lines or child.lines[-1] != "done\n":
            failures.append(f"writer {w} rc={rc}: {child.stderr.decode()[-3000:]}")
    assert not failures, "\n".join(failures)
    acked: dict[str, str] = {}
    for child in children:
        acked.update(child.acks())
    assert len(acked) == writers * ops, f"{len(acked)} acknowledged, expected {writers * ops}"
    with open_store(url) as store:
        check_store(store, Scope(user), acked, tiers=_tier_names())
        items = store.list_items(Scope(user))
        assert len(items) == writers * ops, f"{writers * ops - len(items)} writes lost"
        for w in range(writers):
            mine = store.list_items(Scope(user, session_id=f"w{w}"))
            assert [i.text.split()[0] for i in mine] == [
                f"k{seed + w}x{op}" for op in range(ops)], f"writer {w}'s order broken"
    check_backend(url, user)
    return ConcurrencyReport(writers, ops, len(acked), 0, time.perf_counter() - t0)


@dataclass
class RaceReport:
    racers: int
    seconds: float
    escaped: int
    acked: int
    deleted: int
    lost: int
    duplicated: int
    items: int


def run_race(url: str, user: str, *, racers: int = 2, seconds: float = 8.0, seed: int = 0
             ) -> RaceReport:
    """``racers`` processes add / delete / compact / context in one scope for
    ``seconds``. Returns what escaped (child exit codes != 0), and checks that
    every acknowledged item is stored exactly once unless some racer asked to
    delete it, and that no text is stored twice."""
    from optical_memory.store import Scope, open_store, text_hash

    children = [_Child("racer", url, user, str(r), str(seconds), str(seed))
                for r in range(racers)]
    escaped, errors = 0, []
    for r, child in enumerate(children):
        try:
            rc = child.wait(timeout=seconds + 300)
        except subprocess.TimeoutExpired:
            child.kill()
            rc = -9
        if rc != 0 or not child.lines or child.lines[-1] != "done\n":
            escaped += 1
            errors.append(f"racer {r} rc={rc}: {child.stderr.decode()[-3000:]}")
    acked: dict[str, str] = {}
    deleted: set[str] = set()
    for child in children:
        acked.update(child.acks())
        for line in child.lines:
            if line.startswith('{"deleted"'):
                deleted.update(json.loads(line)["deleted"])
    with open_store(url) as store:
        items = store.list_items(Scope(user))
        by_id = {i.id: i for i in items}
        lost = sum(1 for item_id in acked if item_id not in by_id and item_id not in deleted)
        hashes = [text_hash(i.text) for i in items if i.text is not None]
        duplicated = len(hashes) - len(set(hashes)) + (len(items) - len(by_id))
        survivors = {k: v for k, v in acked.items() if k in by_id}
        check_store(store, Scope(user), survivors, tiers=_tier_names())
    check_backend(url, user)
    report = RaceReport(racers, seconds, escaped, len(acked), len(deleted), lost, duplicated,
                        len(items))
    assert not errors, "\n".join(errors)
    return report


def _tier_names() -> tuple[str, ...]:
    from optical_memory.aging import AgePolicy

    return tuple(t.name for t in AgePolicy().tiers)


def main(argv: list[str]) -> int:
    mode, url, user, *rest = argv
    try:
        if mode == "crash":
            crash_child(url, user, int(rest[0]))
        elif mode == "writer":
            writer_child(url, user, int(rest[0]), int(rest[1]), int(rest[2]))
        elif mode == "racer":
            racer_child(url, user, int(rest[0]), float(rest[1]), int(rest[2]))
        else:
            sys.stderr.write(f"unknown mode {mode!r}\n")
            return 2
    except BaseException:
        traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
