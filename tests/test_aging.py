"""Age tiers: policy rules, token costs, and aging through the memory."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from optical_memory import AgePolicy, OpticalMemory, Tier
from optical_memory.aging import DEFAULT_TIERS, image_tokens, resample_png
from optical_memory.context import RECALL_NOTE, pages_header
from optical_memory.conversation import generate_conversation
from optical_memory.errors import ConfigError
from optical_memory.render import RenderConfig
from optical_memory.tokens import get_target

CFG = RenderConfig(width=1024, height=1024, font_size=11, newline_mode="marker")


def test_default_tiers_and_boundaries():
    policy = AgePolicy()
    assert policy.tiers == DEFAULT_TIERS
    assert policy.names == ("base", "small", "tiny")
    assert policy.tier_for_age(0).name == "base"
    assert policy.tier_for_age(200).name == "base"
    assert policy.tier_for_age(201).name == "small"
    assert policy.tier_for_age(1000).name == "small"
    assert policy.tier_for_age(10**9).name == "tiny"
    assert policy.size("small", (1024, 1024)) == (640, 640)
    assert policy.size("tiny", (1024, 1024)) == (512, 512)


@pytest.mark.parametrize(
    "tiers, unit, match",
    [
        ((), "turns", "at least one tier"),
        ((Tier("a", 5, 1.0),), "turns", "max_age=None"),
        ((Tier("a", 5, 1.0), Tier("b", 3, 0.5), Tier("c", None, 0.5)), "turns", "must increase"),
        ((Tier("a", 5, 0.5), Tier("b", None, 1.0)), "turns", "must not grow"),
        ((Tier("a", 5, 1.0), Tier("a", None, 0.5)), "turns", "unique"),
        ((Tier("a", None, 1.0),), "days", "age unit"),
    ],
)
def test_policy_rejects_bad_tiers(tiers, unit, match):
    with pytest.raises(ConfigError, match=match):
        AgePolicy(tiers, unit=unit)


def test_tier_rejects_bad_scale():
    with pytest.raises(ConfigError, match="scale"):
        Tier("x", 3, 1.5)


def test_deepseek_tiers_bill_as_modes():
    base = get_target("deepseek-ocr:base")
    assert image_tokens(base, 1024, 1024) == 273
    assert image_tokens(base, 640, 640) == 111  # small mode
    assert image_tokens(base, 512, 512) == 73  # tiny mode
    raw = get_target("deepseek-ocr:base-raw")
    assert image_tokens(raw, 640, 640) == 100
    # other targets use their own rule on the rendition size
    claude = get_target("anthropic:claude")
    assert image_tokens(claude, 546, 546) == claude.tokens(546, 546)
    assert AgePolicy().tokens("small", "deepseek-ocr:base", (1024, 1024)) == 111


def test_resample_png_is_lanczos_of_master():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (64, 64), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    out = np.asarray(Image.open(io.BytesIO(resample_png(buf.getvalue(), (40, 40)))))
    want = np.asarray(Image.fromarray(pixels).resize((40, 40), Image.Resampling.LANCZOS))
    assert out.shape == (40, 40)
    assert np.array_equal(out, want)


def _png_pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("L"))


def test_pages_age_down_tiers_from_master(tmp_path, uid):
    policy = AgePolicy((Tier("base", 40, 1.0), Tier("small", 120, 0.625), Tier("tiny", None, 0.5)),
                       mode="fade")
    conv = generate_conversation(tokens=24_000, seed=5)
    with OpticalMemory(tmp_path / "m.db", render_config=CFG, aging=policy, keep_last=4) as mem:
        half = len(conv.messages) // 3
        mem.add(conv.messages[:half], user_id=uid)
        first = mem.store.list_pages(mem_scope(uid))
        assert first, "the first third should fill pages"
        mem.add(conv.messages[half:], user_id=uid)
        res = mem.compact(user_id=uid)
        pages = mem.store.list_pages(mem_scope(uid))
        tiers = {p.id: p.tier for p in pages}
        # the oldest page is now oldest tier, the newest one still young
        assert tiers[first[0].id] == "tiny"
        assert pages[-1].tier in ("base", "small")
        assert {"tiny", "small"} & set(tiers.values())
        assert isinstance(res.moved, dict)
        for p in pages:
            if p.tier == "base":
                assert mem.store.get_rendition(p.id, "base", mem_scope(uid)) is None
                continue
            rend = mem.store.get_rendition(p.id, p.tier, mem_scope(uid))
            assert rend is not None
            size = policy.size(p.tier, (p.width, p.height))
            assert (rend.width, rend.height) == size
            direct = _png_pixels(p.png).copy()
            want = np.asarray(Image.fromarray(direct).resize(size, Image.Resampling.LANCZOS))
            assert np.array_equal(_png_pixels(rend.png), want)

        # accounting is exact after aging
        ctx = mem.context(100_000, user_id=uid, system="sys")
        acc = ctx.accounting
        target = get_target("deepseek-ocr:base")
        assert acc.page_vision_tokens == sum(p.vision_tokens for p in ctx.pages)
        for p in ctx.pages:
            assert p.vision_tokens == image_tokens(target, p.width, p.height)
            assert (p.width, p.height) == policy.size(p.tier, (1024, 1024))
        assert sum(r.pages for r in acc.per_tier.values()) == acc.pages == len(ctx.pages)
        assert sum(r.vision_tokens for r in acc.per_tier.values()) == acc.page_vision_tokens
        assert sum(r.text_tokens for r in acc.per_tier.values()) == acc.page_text_tokens
        assert acc.context_tokens == acc.text_tokens_kept + acc.page_message_tokens + acc.page_vision_tokens
        # the header sent names the low-resolution pages, and is what is counted
        header = ctx.messages[1]["content"][0]["text"]
        assert header == ctx.header == pages_header([p.tier for p in ctx.pages], ("small", "tiny"))
        assert "tier tiny: page" in header and header.endswith(RECALL_NOTE)
        assert acc.page_message_tokens == mem.counter.count(header) + 4
        st = mem.stats(user_id=uid)
        assert acc.history_text_tokens == st.text_tokens + 4 * st.items + mem.counter.count("sys") + 4
        assert acc.page_text_tokens <= st.text_tokens
        # tier images in the context are exactly the stored renditions
        import base64

        for p in ctx.pages:
            if p.page_id is not None and p.tier != "base":
                rend = mem.store.get_rendition(p.page_id, p.tier, mem_scope(uid))
                assert base64.b64decode(p.png_b64) == rend.png


def test_age_in_tokens(tmp_path, uid):
    policy = AgePolicy((Tier("base", 3000, 1.0), Tier("tiny", None, 0.5)), unit="tokens",
                       mode="fade")
    conv = generate_conversation(tokens=20_000, seed=9)
    with OpticalMemory(tmp_path / "m.db", render_config=CFG, aging=policy, keep_last=4) as mem:
        mem.add(conv.messages, user_id=uid)
        pages = mem.store.list_pages(mem_scope(uid), with_png=False)
        st = mem.stats(user_id=uid)
        for p in pages:
            age = st.text_tokens - p.meta["memory"]["token_rank"]
            assert p.tier == ("base" if age <= 3000 else "tiny"), (age, p.tier)
        assert {p.tier for p in pages} == {"base", "tiny"}


def mem_scope(uid):
    from optical_memory.store import Scope

    return Scope(uid)
