"""Regression tests for the reliability issue: no poisoned scopes, no error
after a committed write, reads that survive concurrent deletes, bounded image
decoding, limits checked before the expensive work, typed errors, owner-only
files. Each test failed on the code before its fix."""
from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import reliability_worker as rw

from optical_memory import InputError, OpticalMemory
from optical_memory.config import MAX_ADD_CHARS, MAX_K, MAX_KEEP_LAST, MAX_NAME_CHARS

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def memory(store_url):
    mem = rw.make_memory(store_url)
    yield mem
    mem.close()


def _turns(n: int, seed: int = 1) -> list[dict]:
    return [{"role": "user" if i % 2 == 0 else "assistant", "content": rw.text_for(seed, i)}
            for i in range(n)]


# --- 1. long names and titles ------------------------------------------------------------


def test_a_long_speaker_name_is_refused_and_cannot_poison_the_scope(memory, uid):
    with pytest.raises(InputError, match=f"name is too long.*limit {MAX_NAME_CHARS}"):
        memory.add([{"role": "user", "content": "hi", "name": "n" * 12_029}], user_id=uid)
    assert memory.stats(user_id=uid).items == 0
    memory.add([{"role": "user", "content": "hi", "name": "n" * MAX_NAME_CHARS}], user_id=uid)
    for chunk in range(4):  # the named turn leaves the recent window and is paged
        res = memory.add(_turns(6, seed=chunk), user_id=uid)
        assert res.warnings == ()
    assert memory.compact(user_id=uid, force=True) is not None
    assert memory.stats(user_id=uid).pages > 0


def test_a_long_document_title_is_refused(memory, uid):
    with pytest.raises(InputError, match="title is too long"):
        memory.add_document("body", title="t" * 20_000, user_id=uid)
    assert memory.stats(user_id=uid).items == 0


# --- 2. no error after a committed write --------------------------------------------------


def test_add_reports_paging_that_failed_after_the_commit_and_the_next_call_finishes_it(
        memory, uid, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk hiccup")

    monkeypatch.setattr(memory._pager, "page_waiting", broken)
    res = memory.add(_turns(12), user_id=uid)
    assert len(res.item_ids) == 12 and res.warnings and "disk hiccup" in res.warnings[0]
    assert memory.stats(user_id=uid).items == 12  # stored, once
    monkeypatch.undo()
    again = memory.add(_turns(2, seed=9), user_id=uid)
    assert again.warnings == () and memory.stats(user_id=uid).items == 14
    memory.compact(user_id=uid, force=True)
    assert memory.stats(user_id=uid).pages > 0


def test_add_survives_another_process_deleting_a_turn_it_is_paging(store_url, uid):
    mem = rw.make_memory(store_url)
    other = rw.make_memory(store_url)
    try:
        mem.add(_turns(3), user_id=uid)
        real = mem.store.add_items
        state = {"done": False}

        def racing_add_items(items, pages=(), *, scope, **kw):
            if kw.get("exclusive") and not state["done"]:
                state["done"] = True  # the other process deletes a waiting turn first
                victim = pages[0].spans[0].item_id
                other.delete(item_ids=[victim], user_id=uid)
            return real(items, pages, scope=scope, **kw)

        mem.store.add_items = racing_add_items  # type: ignore[method-assign]
        res = mem.add(_turns(12, seed=2), user_id=uid)
        assert state["done"] and res.warnings == () and len(res.item_ids) == 12
        assert mem.stats(user_id=uid).items == 14
    finally:
        mem.close()
        other.close()


def test_delete_reports_a_failed_rerender_instead_of_raising(memory, uid, monkeypatch):
    memory.add(_turns(24), user_id=uid)
    memory.compact(user_id=uid, force=True)
    page = memory.list_pages(user_id=uid)[0]
    monkeypatch.setattr(memory._pager, "page_turns",
                        lambda *a, **k: (_ for _ in ()).throw(RuntimeError("render crashed")))
    victim = page.item_ids[0]
    deleted = memory.delete(item_ids=[victim], user_id=uid)
    assert deleted.items == 1 and deleted.warnings and "render crashed" in deleted.warnings[0]
    assert memory.get_item(victim, user_id=uid) is None
    assert page.id in deleted.partial_pages and deleted.repaged == ()


# --- 3. reads survive concurrent deletes --------------------------------------------------


def test_context_skips_a_page_deleted_between_listing_and_reading(store_url, uid):
    mem = rw.make_memory(store_url)
    other = rw.make_memory(store_url)
    try:
        mem.add(_turns(30), user_id=uid)
        mem.compact(user_id=uid, force=True)
        pages = mem.list_pages(user_id=uid)
        assert len(pages) >= 2
        real = mem.store.list_pages

        def listing_then_racing(scope, **kw):
            out = real(scope, **kw)
            if not kw.get("with_png", True) and out:
                other.delete(item_ids=list(out[0].item_ids), user_id=uid, repage=False)
            return out

        mem.store.list_pages = listing_then_racing  # type: ignore[method-assign]
        ctx = mem.context(10**6, user_id=uid)
        assert pages[0].id not in {p.page_id for p in ctx.pages}
    finally:
        mem.close()
        other.close()


def test_two_processes_racing_lose_and_duplicate_nothing(store_url, uid):
    report = rw.run_race(store_url, uid, racers=2, seconds=6.0, seed=5)
    assert report.escaped == 0 and report.lost == 0 and report.duplicated == 0
    assert report.acked > 0 and report.deleted > 0


# --- 4. bounded image decoding ------------------------------------------------------------

# VmHWM (this process image's peak RSS), not getrusage: Linux carries a forked
# parent's peak RSS across exec into ru_maxrss.
_PEAK = """
import re, sys
from optical_memory.decode.base import coerce_image
img = coerce_image(open(sys.argv[1], "rb").read())
assert img.mode == "L"
status = open("/proc/self/status").read()
print(int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1)) // 1024)
"""


def _hostile_png(path: Path, kind: str, side: int = 4800) -> Path:
    from PIL import Image

    if kind == "16bit":
        arr = np.zeros((side, side), dtype=np.uint16)
        arr[::400] = 60_000
        Image.fromarray(arr).save(path)
    else:
        arr = np.full((side, side, 4), 255, dtype=np.uint8)
        arr[::400, :, :3] = 0
        arr[:, :50, 3] = 0
        Image.fromarray(arr, "RGBA").save(path)
    return path


@pytest.mark.parametrize("kind", ["16bit", "rgba"])
def test_decoding_a_small_hostile_png_stays_under_300_mb(tmp_path, kind):
    png = _hostile_png(tmp_path / f"{kind}.png", kind)
    assert png.stat().st_size < 200_000  # ~100 KB on disk, 23 M pixels inside
    out = subprocess.run([sys.executable, "-c", _PEAK, str(png)], capture_output=True,
                         text=True, timeout=300, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(out.stdout.strip()) < 300, f"peak {out.stdout.strip()} MB"


def test_every_mode_decodes_to_8_bit_gray():
    from PIL import Image

    from optical_memory.decode.base import coerce_image

    gray = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (8, 1))
    images = {
        "1": Image.fromarray(gray > 127),
        "I;16": Image.fromarray(gray.astype(np.uint16) * 257),
        "P": Image.fromarray(gray).convert("P"),
        "LA": Image.fromarray(np.dstack([gray, np.full_like(gray, 255)]), "LA"),
        "RGB": Image.fromarray(np.dstack([gray] * 3)),
        "RGBA": Image.fromarray(np.dstack([gray] * 3 + [np.full_like(gray, 255)])),
        "CMYK": Image.fromarray(np.dstack([gray] * 3)).convert("CMYK"),
    }
    for mode, img in images.items():
        out = coerce_image(img)
        assert out.mode == "L" and out.size == (64, 8), mode
        if mode in ("I;16", "LA", "RGB", "RGBA"):  # 16-bit: rescaled by its maximum
            assert np.abs(np.asarray(out, dtype=int) - gray).max() <= 2, mode
    frames = [Image.fromarray(gray), Image.fromarray(255 - gray)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    first = np.asarray(coerce_image(buf.getvalue()), dtype=int)
    assert np.abs(first - gray).max() <= 8  # the first frame (palette rounding)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: shown upright after a 270° turn
    buf = io.BytesIO()
    Image.fromarray(np.dstack([gray] * 3)).save(buf, format="JPEG", exif=exif, quality=95)
    assert coerce_image(buf.getvalue()).size == (8, 64)


# --- 5. limits before the expensive work --------------------------------------------------


def test_a_10_mb_input_is_refused_before_it_is_tokenized(memory, uid, monkeypatch):
    class NoTokenizing:
        name = memory.counter.name

        def count(self, text):
            raise AssertionError("tokenized before the size check")

    monkeypatch.setattr(memory, "counter", NoTokenizing())
    big = "word " * 2_000_000
    with pytest.raises(InputError, match=str(MAX_ADD_CHARS)):
        memory.add(big, user_id=uid)
    with pytest.raises(InputError, match=str(MAX_ADD_CHARS)):
        memory.add([{"role": "user", "content": big[:600_000]}] * 2, user_id=uid)
    with pytest.raises(InputError, match=str(MAX_ADD_CHARS)):
        memory.add_document(big, user_id=uid)


# --- 6 and 8. typed errors ----------------------------------------------------------------


def test_out_of_range_integers_are_typed_errors_with_the_range(memory, uid):
    with pytest.raises(InputError, match=f"k must be at most {MAX_K}"):
        memory.retrieve("x", k=2**63, user_id=uid)
    with pytest.raises(InputError, match=f"keep_last must be at most {MAX_KEEP_LAST}"):
        memory.context(1000, keep_last=2**63, user_id=uid)
    with pytest.raises(InputError, match="keep_last"):
        OpticalMemory(":memory:", keep_last=2**63)


def _deep(levels: int) -> list:
    out: list = []
    for _ in range(levels):
        out = [out]
    return out


@pytest.mark.parametrize("message, match", [
    ({"role": "assistant", "content": "x", "tool_calls": 1.5}, "tool_calls must be a list"),
    ({"role": "assistant", "content": "x", "tool_calls": "call"}, "tool_calls must be a list"),
    ({"role": "user", "content": [{"type": "text", "text": None}]}, "text must be a string"),
    ({"role": "user", "content": [{"type": "text", "text": 5}]}, "text must be a string"),
    ({"role": "assistant", "content": "x",
      "tool_calls": [{"id": "a", "name": "f", "args": {"k": _deep(200)}}]}, "nest deeper"),
])
def test_malformed_messages_are_typed_errors_and_store_nothing(memory, uid, message, match):
    with pytest.raises(InputError, match=match):
        memory.add([message], user_id=uid)
    assert memory.stats(user_id=uid).items == 0


def test_tool_call_arguments_with_mixed_key_types_are_stored(memory, uid):
    res = memory.add([{"role": "assistant", "content": "x",
                       "tool_calls": [{"id": "a", "name": "f", "args": {1: 2, "b": [3]}}]},
                      {"role": "tool", "content": "ok", "tool_call_id": "a"}], user_id=uid)
    item = memory.get_item(res.item_ids[0], user_id=uid)
    assert item is not None and '"1": 2' in item.text


def test_deeply_nested_chat_log_line_is_a_typed_error():
    from optical_memory.ingest import read_chat_log

    with pytest.raises(InputError, match=r"log\.jsonl:2"):
        read_chat_log('{"role": "user", "content": "hi"}\n' + "[" * 100_000 + "]" * 100_000,
                      "log.jsonl")


# --- 7. owner-only files ------------------------------------------------------------------


def test_store_files_are_owner_only_under_umask_022(tmp_path):
    old = os.umask(0o022)
    try:
        path = tmp_path / "data" / "deep" / "memory.db"
        mem = OpticalMemory(path)
        mem.add([{"role": "user", "content": "a private conversation"}])
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in path.parent.iterdir()}
        assert modes == {n: 0o600 for n in modes} and "memory.db-wal" in modes, modes
        for folder in (path.parent, path.parent.parent):
            assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
        mem.close()
    finally:
        os.umask(old)
