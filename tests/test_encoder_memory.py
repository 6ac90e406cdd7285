"""The memory with a DeepEncoder: vision tokens cached per page and tier as
safetensors blobs, and returned by ``context(vision_tokens=True)``."""
from __future__ import annotations

import base64
import io
import json
import pickle
import shutil
import struct
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from optical_memory import AgePolicy, OpticalMemory, Tier  # noqa: E402
from optical_memory.aging import deepseek_mode  # noqa: E402
from optical_memory.encoder import DeepEncoder, DeepEncoderConfig, token_layout  # noqa: E402
from optical_memory.encoder.cache import (  # noqa: E402
    FORMAT,
    TokenMeta,
    encoder_name,
    pack_tokens,
    unpack_tokens,
)
from optical_memory.errors import ConfigError, InputError, VisionTokensError  # noqa: E402
from optical_memory.render import RenderConfig  # noqa: E402
from optical_memory.store import RenditionRecord, Scope  # noqa: E402
from optical_memory.tokens import get_target  # noqa: E402

CFG = RenderConfig(width=1024, height=1024, font_size=11, newline_mode="marker")
# ages in items: the newest document is base, the one before small, older tiny
POLICY = AgePolicy((Tier("base", 0, 1.0), Tier("small", 1, 0.625), Tier("tiny", None, 0.5)),
                   mode="fade")
DOCS = 3
ROWS = {"base": 273, "small": 111, "tiny": 73}
SCOPE = Scope("u")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The tiny encoder is fastest on one thread on a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def counting(encoder: DeepEncoder) -> list[tuple[int, str]]:
    """Wrap ``encoder.encode`` to record (pages, mode) per call."""
    calls: list[tuple[int, str]] = []
    inner = encoder.encode

    def encode(pages, mode="base", **kw):
        calls.append((len(pages), str(mode)))
        return inner(pages, mode, **kw)

    encoder.encode = encode
    return calls


def tiny_encoder(seed: int = 0) -> DeepEncoder:
    return DeepEncoder.from_config(DeepEncoderConfig.tiny(), seed=seed)


def open_memory(path, encoder=None, **kw) -> OpticalMemory:
    return OpticalMemory(path, render_config=CFG, aging=POLICY, encoder=encoder, keep_last=0, **kw)


@pytest.fixture(scope="module")
def built(tmp_path_factory, one_thread):
    """A store with three one-page documents, built with a counted encoder."""
    path = tmp_path_factory.mktemp("encmem") / "m.db"
    enc = tiny_encoder()
    calls = counting(enc)
    with open_memory(path, enc) as mem:
        for i in range(DOCS):
            mem.add_document(f"Document {i}: " + "the quick brown fox jumps over it " * 30,
                             user_id="u")
    return path, enc, list(calls)


def test_pages_get_base_tokens_when_stored(built):
    path, enc, calls = built
    assert calls == [(1, "base")] * DOCS  # one page per add, encoded once
    with open_memory(path) as mem:
        pages = mem.store.list_pages(SCOPE, with_png=False)
        assert len(pages) == DOCS
        for p in pages:
            rend = mem.store.get_rendition(p.id, "base", SCOPE)
            assert rend is not None and rend.encoder == encoder_name(enc)
            assert rend.png == mem.store.get_page(p.id, SCOPE).png  # the master
            tensor, meta = unpack_tokens(rend.vision_tokens)
            assert tuple(tensor.shape) == (273, 48)
            assert meta.mode == "base" and meta.encoder == rend.encoder


def test_context_tokens_match_accounting_and_are_cached(built, tmp_path):
    path = tmp_path / "m.db"
    shutil.copy(built[0], path)
    enc = tiny_encoder()
    calls = counting(enc)
    with open_memory(path, enc) as mem:
        ctx = mem.context(100_000, user_id="u", vision_tokens=True)
        # aging moved the two older pages: one encode per new tier (small, tiny)
        assert sorted(calls) == [(1, "small"), (1, "tiny")]
        assert [p.tier for p in ctx.pages] == ["tiny", "small", "base"]
        assert len(ctx.vision_tokens) == len(ctx.token_layouts) == len(ctx.pages) == DOCS
        images = [b for b in ctx.messages[0]["content"] if b["type"] == "image"]
        assert len(images) == len(ctx.vision_tokens)
        acc = ctx.accounting
        for p, t, layout, img in zip(ctx.pages, ctx.vision_tokens, ctx.token_layouts, images):
            assert t.shape == (ROWS[p.tier], 48) and t.shape[0] == p.vision_tokens
            assert layout.mode == p.tier and layout.num_tokens == t.shape[0]
            assert img["base64"] == p.png_b64
            rend = mem.store.get_rendition(p.page_id, p.tier, SCOPE)
            assert torch.equal(unpack_tokens(rend.vision_tokens)[0], t)  # same order as images
            assert acc.per_tier[p.tier].vision_tokens == t.shape[0]
        assert acc.page_vision_tokens == sum(t.shape[0] for t in ctx.vision_tokens)

        calls.clear()
        again = mem.context(100_000, user_id="u", vision_tokens=True)
        assert calls == []
        assert all(torch.equal(a, b) for a, b in zip(ctx.vision_tokens, again.vision_tokens))
        plain = mem.context(100_000, user_id="u")
        assert plain.vision_tokens is None and plain.token_layouts is None
        assert plain.accounting == acc

    # a new process (no in-memory cache) reads the stored blobs
    enc2 = tiny_encoder()
    calls2 = counting(enc2)
    with open_memory(path, enc2) as mem:
        ctx2 = mem.context(100_000, user_id="u", vision_tokens=True)
        assert calls2 == []
        assert all(torch.equal(a, b) for a, b in zip(ctx.vision_tokens, ctx2.vision_tokens))
        # the tokens are the encoder's output for the tier image
        for p, t in zip(ctx2.pages, ctx2.vision_tokens):
            img = np.asarray(Image.open(io.BytesIO(base64.b64decode(p.png_b64))).convert("L"))
            want = enc2.encode([img], p.tier)[0]
            assert torch.allclose(want, t, atol=1e-5)


def test_encoder_name_change_recomputes(built, tmp_path):
    path = tmp_path / "m.db"
    shutil.copy(built[0], path)
    other = tiny_encoder(seed=1)
    assert encoder_name(other) != encoder_name(built[1])
    assert encoder_name(tiny_encoder(seed=0)) == encoder_name(built[1])  # stable
    calls = counting(other)
    with open_memory(path, other) as mem:
        ctx = mem.context(100_000, user_id="u", vision_tokens=True)
        assert sum(n for n, _ in calls) == DOCS
        for p, t in zip(ctx.pages, ctx.vision_tokens):
            rend = mem.store.get_rendition(p.page_id, p.tier, SCOPE)
            assert rend.encoder == encoder_name(other)
            assert torch.equal(unpack_tokens(rend.vision_tokens)[0], t)
        calls.clear()
        mem.context(100_000, user_id="u", vision_tokens=True)
        assert calls == []


def test_corrupt_stored_blob_is_recomputed(built, tmp_path):
    path = tmp_path / "m.db"
    shutil.copy(built[0], path)
    enc = tiny_encoder()
    with open_memory(path, enc) as mem:
        page = mem.store.list_pages(SCOPE, with_png=False)[-1]  # the base page
        rend = mem.store.get_rendition(page.id, "base", SCOPE)
        mem.store.put_rendition(
            RenditionRecord(page.id, "base", rend.width, rend.height, rend.png,
                            vision_tokens=rend.vision_tokens[:-7], encoder=rend.encoder), SCOPE)
        calls = counting(enc)
        ctx = mem.context(100_000, user_id="u", vision_tokens=True)
        assert (1, "base") in calls
        assert ctx.vision_tokens[-1].shape == (273, 48)
        unpack_tokens(mem.store.get_rendition(page.id, "base", SCOPE).vision_tokens)


def test_pending_page_tokens(tmp_path):
    enc = tiny_encoder()
    calls = counting(enc)
    with open_memory(tmp_path / "m.db", enc) as mem:
        mem.add([{"role": "user", "content": "hello there"},
                 {"role": "assistant", "content": "hi, how can I help?"}], user_id="u")
        assert calls == []  # nothing paged yet: the turns wait
        ctx = mem.context(100_000, user_id="u", vision_tokens=True)
        assert [p.page_id for p in ctx.pages] == [None]
        assert ctx.vision_tokens[0].shape == (273, 48) == (ctx.pages[0].vision_tokens, 48)
        assert calls == [(1, "base")]
        mem.context(100_000, user_id="u", vision_tokens=True)
        assert calls == [(1, "base")]


def test_blob_round_trip_without_pickle(monkeypatch):
    def no_pickle(*a, **k):
        raise AssertionError("pickle used")

    monkeypatch.setattr(pickle, "loads", no_pickle)
    monkeypatch.setattr(pickle, "dumps", no_pickle)
    monkeypatch.setattr(torch, "load", no_pickle)
    monkeypatch.setattr(torch, "save", no_pickle)
    layout = token_layout(640, 640, "small")
    tensor = torch.randn(111, 48).to(torch.bfloat16)
    blob = pack_tokens(tensor, TokenMeta("small", "deepencoder:x", layout))
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    assert set(header) == {"__metadata__", "vision_tokens"}
    assert header["vision_tokens"]["dtype"] == "BF16"
    assert header["__metadata__"]["format"] == FORMAT
    assert b"\x80\x04" not in blob[: 8 + n]  # no pickle protocol marker in the header
    back, meta = unpack_tokens(blob)
    assert back.dtype == torch.bfloat16 and torch.equal(back, tensor)
    assert meta == TokenMeta("small", "deepencoder:x", layout)


@pytest.mark.parametrize("damage", ["truncate", "header_len", "garbage", "json", "format",
                                    "other_key", "rows", "not_bytes"])
def test_corrupt_blob_raises_typed_error(damage):
    layout = token_layout(512, 512, "tiny")
    good = pack_tokens(torch.zeros(73, 8), TokenMeta("tiny", "e", layout))
    from safetensors.torch import save

    meta = {"format": FORMAT, "mode": "tiny", "encoder": "e",
            "layout": json.dumps({"page_size": [512, 512], "global_grid": 8, "tiles": [0, 0],
                                  "tile_grid": 0})}
    blob = {
        "truncate": good[:-5],
        "header_len": struct.pack("<Q", 10**9) + good[8:],
        "garbage": b"\x00" * 3,
        "json": struct.pack("<Q", 4) + b"{{{{",
        "format": save({"vision_tokens": torch.zeros(73, 8)}, metadata={"format": "x"}),
        "other_key": save({"vision_tokens": torch.zeros(73, 8), "x": torch.zeros(1)},
                          metadata=meta),
        "rows": save({"vision_tokens": torch.zeros(72, 8)}, metadata=meta),
        "not_bytes": "text",
    }[damage]
    with pytest.raises(VisionTokensError):
        unpack_tokens(blob)


def test_pack_checks_shape():
    layout = token_layout(512, 512, "tiny")
    with pytest.raises(InputError, match="73"):
        pack_tokens(torch.zeros(70, 8), TokenMeta("tiny", "e", layout))
    with pytest.raises(InputError, match=r"\[N, D\]"):
        pack_tokens(torch.zeros(73), TokenMeta("tiny", "e", layout))


def test_encoder_needs_a_deepseek_target(tmp_path):
    enc = tiny_encoder()
    for target in ("openai:gpt-4o-low", "deepseek-ocr:base-raw"):
        with pytest.raises(ConfigError, match="deepseek-ocr target"):
            OpticalMemory(tmp_path / "a.db", target=target, render_config=CFG, encoder=enc)
    with pytest.raises(ConfigError, match="DeepEncoder"):
        OpticalMemory(tmp_path / "b.db", render_config=CFG, encoder=object())
    with (
        open_memory(tmp_path / "c.db") as mem,
        pytest.raises(ConfigError, match="needs an encoder"),
    ):
        mem.context(1000, vision_tokens=True)
    with (
        open_memory(tmp_path / "d.db", enc) as mem,
        pytest.raises(ConfigError, match="deepseek-ocr target"),
    ):
        mem.context(1000, target="anthropic:claude", vision_tokens=True)


def test_deepseek_mode_names_the_billed_mode():
    base = get_target("deepseek-ocr:base")
    assert [deepseek_mode(base, s, s) for s in (1024, 640, 512)] == ["base", "small", "tiny"]
    assert deepseek_mode("deepseek-ocr:gundam", 1920, 1920) == "gundam"
    with pytest.raises(ConfigError):
        deepseek_mode("anthropic:claude", 100, 100)


def test_memory_without_encoder_never_imports_torch(tmp_path):
    code = (
        "import sys\n"
        "from optical_memory import OpticalMemory\n"
        "from optical_memory.render import RenderConfig\n"
        "cfg = RenderConfig(width=512, height=512, font_size=11)\n"
        f"with OpticalMemory({str(tmp_path / 'm.db')!r}, render_config=cfg, keep_last=1) as m:\n"
        "    m.add([{'role': 'user', 'content': 'hello'}, {'role': 'assistant', 'content': 'hi'},\n"
        "           {'role': 'user', 'content': 'bye'}])\n"
        "    m.add_document('a short document ' * 20)\n"
        "    ctx = m.context(50000)\n"
        "    assert ctx.pages and ctx.vision_tokens is None\n"
        "bad = sorted(k for k in sys.modules if k.split('.')[0] in ('torch', 'safetensors'))\n"
        "assert not bad, bad\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
