"""Reliability: crash safety, concurrency, hostile input, scope isolation.

Every test runs on SQLite and, when ``OPTICAL_MEMORY_TEST_PG_URL`` is set, on
PostgreSQL (the ``store_url`` fixture of conftest.py). CI-sized: the child
processes and hypothesis example counts below keep the file well under 90 s
on two cores; benchmarks/reliability.py runs the same drivers larger.

Hypothesis examples per property (recorded in benchmarks/results/reliability.md):
``EXAMPLES`` (default 40, ``OPTICAL_MEMORY_RELIABILITY_EXAMPLES`` overrides).
"""
from __future__ import annotations

import io
import json
import os
import struct
import uuid
import zlib

import numpy as np
import pytest
import reliability_worker as rw
from hypothesis import HealthCheck, event, given, settings, strategies as st
from PIL import Image

from optical_memory import ingest as ingest_module, memory as memory_module
from optical_memory.decode import DecodeResult, coerce_image, register_decoder
from optical_memory.decode.base import MAX_IMAGE_PIXELS
from optical_memory.errors import InputError, OpticalMemoryError
from optical_memory.store import NewItem, NewPage, NotFoundError, Scope
from optical_memory.store.base import MAX_PAGE_PIXELS
from optical_memory.types import Span

EXAMPLES = int(os.environ.get("OPTICAL_MEMORY_RELIABILITY_EXAMPLES", "40"))
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,  # nothing written into the tree
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large],
)


class BlankDecoder:
    """A decoder that coerces the image (the hostile-input path) and reads nothing."""

    name = "blank"

    def decode(self, image) -> DecodeResult:
        img = coerce_image(image)
        return DecodeResult(text="", decoder=self.name, seconds=0.0, meta={"size": img.size})


register_decoder("blank", BlankDecoder)


@pytest.fixture
def memory(store_url):
    mem = rw.make_memory(store_url, decoder="blank")
    yield mem
    mem.close()


# --------------------------------------------------------------------------
# Crash safety and concurrency (child processes)
# --------------------------------------------------------------------------


def test_sigkill_loses_no_acknowledged_item(store_url, uid):
    report = rw.run_crash(store_url, uid, kills=4, seed=11, max_delay=0.6)
    assert report.lost == 0 and report.kills == 4
    assert report.acked > 0 and report.items >= report.acked and report.pages > 0


def test_concurrent_writers_lose_nothing(store_url, uid):
    report = rw.run_concurrency(store_url, uid, writers=3, ops=12, seed=7)
    assert report.lost == 0 and report.acked == 36


# --------------------------------------------------------------------------
# Hostile input
# --------------------------------------------------------------------------

HOSTILE = [
    "", " ", "\t\n\r", "\x00", "a\x00b", "\ud800", "x\udfffy", "\u202eevil\u202c txt",
    "مرحبا بالعالم", "שלום עולם", "🙂👍🏽👨‍👩‍👧", "東京タワー 北京 서울", "\x1b[31mred\x1b[0m",
    "\x07\x08\x0b\x0c\x7f", '" OR 1=1 --', "NEAR(a b)", "col:val*", "^start", "a AND NOT b",
    "'; DROP TABLE items; --", "'; DROP TABLE om_items; --", "\\", "%s %(x)s {0} $1", "\ufeff",
    "\u200b\u200d", "a" * 5000, "word " * 2000, "\U0010ffff", "e\u0301\u0301\u0301",
]
_surrogate = st.integers(0xD800, 0xDFFF).map(chr)
_any_text = st.text(alphabet=st.characters(exclude_categories=()), max_size=120)
hostile_text = st.one_of(
    st.sampled_from(HOSTILE),
    _any_text,
    st.builds(lambda a, s, b: a + s + b, _any_text, _surrogate, _any_text),
    st.binary(max_size=120).map(lambda b: b.decode("latin-1")),
)
hostile_value = st.one_of(hostile_text, st.binary(max_size=40), st.none(), st.integers(),
                          st.just(["not", "a", "message"]))


def _counts(mem, user):
    s = mem.stats(user_id=user)
    return s.items, s.pages


@PROPERTY
@given(value=hostile_value, as_message=st.booleans())
def test_hostile_add_typed_error_or_stored_intact(memory, value, as_message):
    user = f"h{uuid.uuid4().hex[:10]}"
    before = _counts(memory, user)
    payload = [{"role": "user", "content": value}] if as_message else value
    try:
        result = memory.add(payload, user_id=user)
    except OpticalMemoryError:
        assert _counts(memory, user) == before  # a rejected write leaves nothing
        return
    parts = [value] if isinstance(value, str) else value  # a list is text blocks
    assert all(isinstance(p, str) for p in parts)
    (item_id,) = result.item_ids
    stored = memory.store.get_item(item_id, Scope(user))
    assert stored is not None and stored.text is not None
    assert all(p in stored.text for p in parts)
    assert _counts(memory, user)[0] == before[0] + 1


def test_add_over_the_size_limit_is_refused_with_numbers(memory, uid):
    big = "x" * (memory_module.MAX_ADD_CHARS + 1)
    with pytest.raises(InputError, match=str(memory_module.MAX_ADD_CHARS)):
        memory.add(big, user_id=uid)
    with pytest.raises(InputError, match="characters"):
        memory.add([{"role": "user", "content": big[: len(big) // 2]},
                    {"role": "user", "content": big[: len(big) // 2 + 1]}], user_id=uid)
    assert _counts(memory, uid) == (0, 0)


def test_pages_per_item_limit(memory, uid, monkeypatch):
    monkeypatch.setattr(ingest_module, "MAX_PAGES_PER_ITEM", 2)
    long_text = " ".join(f"word{i}" for i in range(3000))
    with pytest.raises(InputError, match=r"pages \(limit 2 per item\)"):
        memory.add_document(long_text, user_id=uid)
    with pytest.raises(InputError, match="limit 2"):
        memory.add([{"role": "user", "content": long_text}], user_id=uid)
    assert _counts(memory, uid) == (0, 0)
    memory.add_document("short enough", user_id=uid)
    assert _counts(memory, uid) == (1, 1)


SEED_TEXTS = ["a zebra crossing at noon", "col val pairs and NEAR things", "ゼブラ と zebra",
              "x marks the spot", "budget meeting quokka"]


@pytest.fixture
def seeded(memory, uid):
    ids = [memory.add(t, user_id=uid).item_ids[0] for t in SEED_TEXTS]
    unique = memory.add(f"needle{uid} hidden here", user_id=uid).item_ids[0]
    return memory, uid, set(ids) | {unique}, unique


@PROPERTY
@given(query=st.one_of(hostile_text, st.sampled_from(
    ['"', "*", "NEAR(", "a OR", "-x", "col:val", "^", '"unterminated', "zebra*", "(zebra",
     "{body}: zebra", "body:zebra", "AND", "NOT zebra", "zebra NEAR/2 x", "!zebra", "zebra & x",
     "zebra | x", "zebra <-> x", "zebra:*", "'zebra':A", "\\zebra"])))
def test_hostile_queries_only_typed_errors_or_correct_hits(seeded, query):
    memory, uid, ids, unique = seeded
    try:
        hits = memory.retrieve(query, user_id=uid, k=10)
    except OpticalMemoryError:
        pytest.fail(f"retrieve raised on a string query {query!r}")
    assert {h.item_id for h in hits} <= ids
    # the query's syntax never hides a plain word next to it
    found = memory.retrieve(f"{query} needle{uid}", user_id=uid, k=10)
    assert unique in {h.item_id for h in found}
    assert memory.stats(user_id=uid).items == len(ids)


def _png(width: int, height: int, fill: int = 255) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (width, height), fill).save(buf, format="PNG")
    return buf.getvalue()


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose valid IHDR declares ``width × height`` (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _mutate(data: bytes, positions: list[int], values: list[int]) -> bytes:
    out = bytearray(data)
    for p, v in zip(positions, values):
        out[p % len(out)] = v
    return bytes(out)


hostile_image = st.one_of(
    st.binary(max_size=300),
    st.builds(_mutate, st.just(_png(24, 16, 128)), st.lists(st.integers(0, 10_000), max_size=6),
              st.lists(st.integers(0, 255), max_size=6)),
    st.builds(lambda n: _png(24, 16)[:n], st.integers(0, 120)),
    st.builds(_png_claiming, st.integers(0, 200_000), st.integers(0, 200_000)),
    st.sampled_from([_png(24, 16), b"GIF89a" + b"\x00" * 20, b"\xff\xd8\xff\xe0" + b"\x00" * 30,
                     b"BM" + b"\xff" * 60]),
)


@PROPERTY
@given(data=hostile_image)
def test_hostile_images_typed_error_or_image(data):
    try:
        img = coerce_image(data)
    except InputError:
        return
    assert img.mode in ("L", "RGB") and img.width * img.height <= MAX_IMAGE_PIXELS


def test_decompression_bomb_refused_before_decoding():
    bomb = _png_claiming(100_000, 100_000)
    with pytest.raises(InputError, match="pixels"):
        coerce_image(bomb)
    side = int(MAX_IMAGE_PIXELS ** 0.5) + 1
    with pytest.raises(InputError, match=f"limit {MAX_IMAGE_PIXELS}"):
        coerce_image(_png_claiming(side, side))
    with pytest.raises(InputError, match="image too large"):
        coerce_image(np.zeros((1, MAX_IMAGE_PIXELS + 1), dtype=np.uint8))


@PROPERTY
@given(data=hostile_image)
def test_hostile_page_import_typed_error_or_round_trip(store, data):
    scope = Scope(f"p{uuid.uuid4().hex[:10]}")
    item = NewItem(kind="text", text="page import", text_tokens=2)
    page = NewPage(width=24, height=16, font_size=11.0, png=data,
                   spans=(Span(item.id, 0, 11, 0, 11),), tier="base", text="page import")
    try:
        store.add_items([item], [page], scope=scope)
    except InputError:
        assert store.stats(scope).items == 0
        return
    assert store.get_page(page.id, scope).png == data
    w, h = struct.unpack(">II", data[16:24])
    assert (w, h) == (24, 16) and w * h <= MAX_PAGE_PIXELS


def test_page_import_bomb_is_refused(store, uid):
    item = NewItem(kind="text", text="x", text_tokens=1)
    for png in (_png_claiming(100_000, 100_000), _png_claiming(0, 5), _png(30, 16)):
        page = NewPage(width=24, height=16, font_size=11.0, png=png,
                       spans=(Span(item.id, 0, 1, 0, 1),), tier="base")
        with pytest.raises(InputError, match=r"pixels|record says"):
            store.add_items([item], [page], scope=Scope(uid))
    assert store.stats(Scope(uid)).items == 0


# --------------------------------------------------------------------------
# Isolation
# --------------------------------------------------------------------------

_WRITE_SCOPES = 5  # see _scopes


def _scopes(prefix: str) -> list[Scope]:
    return [Scope(f"{prefix}a"), Scope(f"{prefix}a", "agent"), Scope(f"{prefix}a", "agent", "s1"),
            Scope(f"{prefix}a", "other", "s2"), Scope(f"{prefix}b", "agent", "s1")]


def _readers(prefix: str) -> list[Scope]:
    return [*_scopes(prefix), Scope(f"{prefix}a", session_id="s1"), Scope(f"{prefix}b")]


_op = st.tuples(st.integers(0, _WRITE_SCOPES - 1), st.sampled_from(["turn", "turns", "document"]),
                st.integers(1, 40))


@PROPERTY
@given(ops=st.lists(_op, min_size=1, max_size=7))
def test_no_read_returns_another_scopes_data(memory, ops):
    prefix = f"i{uuid.uuid4().hex[:8]}"
    scopes = _scopes(prefix)
    written: dict[str, tuple[Scope, str]] = {}  # item id -> (write scope, marker)
    for s, kind, words in ops:
        scope = scopes[s]
        marker = f"mk{uuid.uuid4().hex[:12]}"
        body = f"{marker} shared " + " ".join(f"w{j}" for j in range(words))
        kw = dict(user_id=scope.user_id, agent_id=scope.agent_id, session_id=scope.session_id)
        if kind == "document":
            ids = memory.add_document(body, **kw).item_ids
        else:
            count = 1 if kind == "turn" else 3
            ids = memory.add([{"role": "user", "content": f"{body} {k}"} for k in range(count)],
                             **kw).item_ids
        written.update({i: (scope, marker) for i in ids})
    all_pages = {p.id: p.scope for sc in {Scope(s.user_id) for s in scopes}
                 for p in memory.store.list_pages(sc, with_png=False)}
    event(f"pages stored: {min(len(all_pages), 3)}{'+' if len(all_pages) >= 3 else ''}")
    for reader in _readers(prefix):
        kw = dict(user_id=reader.user_id, agent_id=reader.agent_id, session_id=reader.session_id)
        visible = {i for i, (w, _) in written.items() if reader.sees(w)}
        foreign_markers = {m for i, (w, m) in written.items() if not reader.sees(w)} - {
            m for i, (w, m) in written.items() if reader.sees(w)}
        own_pages = {p for p, w in all_pages.items() if reader.sees(w)}
        hits = memory.retrieve("shared", k=100, **kw)
        assert {h.item_id for h in hits} == visible
        assert {h.page_id for h in hits if h.page_id} <= own_pages
        assert memory.stats(**kw).items == len(visible)
        assert memory.stats(**kw).pages == len(own_pages)
        ctx = memory.context(100_000, **kw)
        assert {i for p in ctx.pages for i in p.item_ids} <= visible
        assert {p.page_id for p in ctx.pages if p.page_id} <= own_pages
        dumped = json.dumps(ctx.messages)
        assert not [m for m in foreign_markers if m in dumped]
        for page_id, owner in all_pages.items():
            if reader.sees(owner):
                assert memory.decode(page_id, **kw).page_id == page_id
            else:
                with pytest.raises(NotFoundError):
                    memory.decode(page_id, **kw)
