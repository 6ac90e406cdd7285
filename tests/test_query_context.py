"""Query-aware context: passages matching a question, off the fresh pages,
re-drawn at full resolution or given as exact text, billed inside the budget."""
from __future__ import annotations

import base64
import io

import numpy as np
import pytest

from optical_memory import InputError, OpticalMemory
from optical_memory.age import AgePolicy, Tier
from optical_memory.context.query import (
    QUERY_IMAGES_NOTE,
    QUERY_TEXT_NOTE,
    QueryPassage,
    make_view,
)
from optical_memory.conversation import generate_conversation
from optical_memory.render import Renderer
from optical_memory.tokens import get_counter, get_target

FACT = "The Lindholm depot access code is 739215."
NOTES = ("Notes from the site visit: the loading bay opens at six, the forklifts are charged "
         "overnight, the north gate sticks in the rain, deliveries wait at the yard office, "
         "and the night guard changes shift at ten. ")
FAST = AgePolicy((Tier("base", 30, 1.0), Tier("small", 120, 0.625), Tier("tiny", None, 0.5)),
                 mode="fade")


def _memory(target: str = "deepseek-ocr:base", **kw) -> OpticalMemory:
    mem = OpticalMemory(":memory:", target=target, aging=FAST, **kw)
    mem.add([{"role": "user", "content": f"Please note this for later. {NOTES}{FACT} {NOTES}"},
             {"role": "assistant", "content": "Noted."}], user_id="u")
    mem.add(list(generate_conversation(tokens=15_000, seed=7).messages), user_id="u")
    mem.compact(user_id="u", force=True)
    return mem


def _read(view, i: int = 0) -> str:
    from PIL import Image

    from optical_memory.decode import get_decoder
    from optical_memory.types import Page

    png = base64.b64decode(view.images[i])
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("L"))
    meta = view.layouts[i]
    return get_decoder("native").decode(Page(pixels, "", (), meta["font_size"], meta=meta)).text


def test_query_brings_an_aged_fact_at_full_resolution_within_the_budget():
    with _memory() as mem:
        plain = mem.context(6000, user_id="u")
        fact_page = mem.retrieve("Lindholm depot access code", user_id="u")[0]
        assert fact_page.tier == "tiny"  # the fact sits on a shrunk page
        ctx = mem.context(6000, user_id="u", query="Lindholm depot access code")
        acc, view = ctx.accounting, ctx.query
        assert view is not None and view.mode == "image"
        assert acc.query_mode == "image" and acc.query_tokens == view.tokens > 0
        assert view.tokens == min(view.text_tokens, view.image_tokens) < view.text_tokens
        assert any(p.page_id == fact_page.page_id for p in view.passages)
        assert acc.context_tokens <= 6000
        assert acc.context_tokens == (acc.text_tokens_kept + acc.page_message_tokens
                                      + acc.page_vision_tokens + acc.query_tokens)
        # the query message follows the page message, its images at 512 px (DeepSeek tiny mode)
        msg = ctx.messages[1]
        assert msg["content"][0]["text"] == QUERY_IMAGES_NOTE
        assert all(w == 512 and h <= 512 for w, h in view.sizes)
        assert "739215" in _read(view)
        # the budget paid for it: pages carried shrink by at least nothing, never grow
        assert acc.page_vision_tokens <= plain.accounting.page_vision_tokens
        assert any(r[0] == "query: passages as image" for r in acc.rows())
        assert ctx.accounting.to_dict()["query_tokens"] == view.tokens
        assert view.to_dict()["mode"] == "image"


def test_query_gives_exact_text_when_the_target_bills_images_dearer():
    with _memory("openai:gpt-4o") as mem:
        ctx = mem.context(8000, user_id="u", query="Lindholm depot access code")
        view = ctx.query
        assert view is not None and view.mode == "text" and view.tokens == view.text_tokens
        assert view.text_tokens < view.image_tokens
        assert view.text.startswith(QUERY_TEXT_NOTE) and FACT in view.text
        assert ctx.messages[1]["content"] == [{"type": "text", "text": view.text}]
        assert ctx.accounting.context_tokens <= 8000


def test_query_adds_nothing_when_the_fact_is_on_a_fresh_page_in_view():
    with OpticalMemory(":memory:") as mem:
        mem.add([{"role": "user", "content": f"Please note this. {FACT}"},
                 *generate_conversation(tokens=3000, seed=2).messages], user_id="u")
        mem.compact(user_id="u", force=True)
        plain = mem.context(20_000, user_id="u")
        ctx = mem.context(20_000, user_id="u", query="Lindholm depot access code")
        assert ctx.query is not None and ctx.query.mode == "none"
        assert ctx.accounting.query_tokens == 0 and ctx.accounting.query_mode == "none"
        assert ctx.messages == plain.messages
        for bad in ("", "   ", 5):
            with pytest.raises(InputError):
                mem.context(20_000, user_id="u", query=bad)  # type: ignore[arg-type]


def test_query_needs_exact_text():
    with _memory(keep_text=False) as mem:
        ctx = mem.context(6000, user_id="u", query="Lindholm depot access code")
        assert ctx.query is not None and ctx.query.mode == "none"


def test_make_view_picks_the_cheaper_and_drops_passages_that_do_not_fit():
    counter = get_counter("o200k_base")
    renderer = Renderer()
    long = " ".join(f"Line {i} of a long passage about the depot." for i in range(60))
    ps = [QueryPassage("p1", "tiny", "i1", FACT), QueryPassage("p2", "small", "i2", long)]
    tgt = get_target("deepseek-ocr:base")
    view = make_view("q", ps, renderer=renderer, target=tgt, count=counter.count, room=10_000)
    assert view.mode == "image" and len(view.passages) == 2
    assert view.image_tokens < view.text_tokens
    # room for the short passage only: the long one is dropped
    short = make_view("q", ps[:1], renderer=renderer, target=tgt, count=counter.count,
                      room=10_000)
    view = make_view("q", ps, renderer=renderer, target=tgt, count=counter.count,
                     room=short.tokens)
    assert [p.page_id for p in view.passages] == ["p1"] and view.tokens <= short.tokens
    assert make_view("q", ps, renderer=renderer, target=tgt, count=counter.count,
                     room=5).mode == "none"
