"""compress_messages' rules: never more tokens out than in, a trigger, a
``token_counter`` hook, ``start_on="human"``, a marker for turns left out,
and images sent in old turns kept as images."""
from __future__ import annotations

import base64
import io

import pytest
from langchain_core.messages import (
    AIMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.utils import count_tokens_approximately
from PIL import Image

from langchain_optical_memory import compress_messages
from langchain_optical_memory.compress import METADATA_KEY, OLD_IMAGES_HEADER, compress
from optical_memory import InputError, OpticalMemory
from optical_memory.scope import Scope
from optical_memory.tokens import get_target
from optical_memory.tokens.billing import image_tokens

SYSTEM = SystemMessage("You are a careful operations assistant.")


def _short_chat(n: int = 12) -> list:
    return [HumanMessage(f"question {i}?") if i % 2 == 0 else AIMessage(f"answer {i}.")
            for i in range(n)]


def _images(message) -> list[dict]:
    if not isinstance(message.content, list):
        return []
    return [b for b in message.content if isinstance(b, dict) and b.get("type") == "image"]


def _png_b64(w: int, h: int) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (20, 120, 200)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def test_short_chat_is_returned_as_it_is_when_pages_cost_more():
    """Before: 12 short messages (96 text tokens) became a 273-token page + text."""
    msgs = [SYSTEM, *_short_chat()]
    with OpticalMemory(":memory:") as mem:
        result = compress(msgs[1:], system=[SYSTEM], max_tokens=10_000, memory=mem,
                          scope=Scope(), keep_last=4)
    assert result.reason == "no saving" and not result.compressed
    assert result.messages == msgs and all(a is b for a, b in zip(result.messages, msgs))
    assert result.tokens_out == result.tokens_in < 273
    out = compress_messages(msgs, max_tokens=10_000, keep_last=4)
    assert all(a is b for a, b in zip(out, msgs)) and len(out) == len(msgs)


@pytest.mark.parametrize("budget", [700, 1500, 4000, 50_000])
def test_never_more_tokens_out_than_in(conversation, budget):
    for n in (6, 20, 60, 200):
        with OpticalMemory(":memory:") as mem:
            r = compress(conversation[:n], system=[SYSTEM], max_tokens=budget, memory=mem,
                         scope=Scope(), keep_last=8)
        assert r.tokens_out <= r.tokens_in or r.tokens_in > budget
        assert r.tokens_out <= budget or r.reason != "compressed"
        if r.compressed:
            assert r.tokens_out < r.tokens_in


def test_trigger_tokens(conversation):
    msgs = [SYSTEM, *conversation[:60]]
    out = compress_messages(msgs, max_tokens=100_000, trigger_tokens=1_000_000)
    assert all(a is b for a, b in zip(out, msgs)) and len(out) == len(msgs)
    out = compress_messages(msgs, max_tokens=100_000, trigger_tokens=500)
    assert _images(out[1])
    with pytest.raises(InputError, match="trigger_tokens"):
        compress_messages(msgs, max_tokens=1000, trigger_tokens=-1)


def test_token_counter_hook_counts_text_and_budget_holds(conversation):
    msgs = [SYSTEM, *conversation[:120]]
    seen: list[list] = []

    def counter(messages):
        seen.append(list(messages))
        return count_tokens_approximately(messages)

    with OpticalMemory(":memory:") as mem:
        r = compress(msgs[1:], system=[SYSTEM], max_tokens=3000, memory=mem, scope=Scope(),
                     token_counter=counter)
    assert seen and r.tokens_in == count_tokens_approximately(msgs)
    assert r.compressed and r.tokens_out <= 3000
    page = r.messages[1]
    text_only = [b for b in page.content if b["type"] == "text"]
    expected = (count_tokens_approximately([m for m in r.messages if m is not page])
                + count_tokens_approximately([HumanMessage(content=text_only)])
                + r.accounting.page_vision_tokens)
    assert r.tokens_out == expected
    with pytest.raises(InputError, match="token_counter"):
        compress_messages(msgs, max_tokens=3000, token_counter=42)


def test_output_starts_on_a_human_message_after_the_system_message(conversation):
    """Before: system, ai(tool call), tool, ... when the pages did not fit."""
    tail = [HumanMessage("check the vault"),
            AIMessage("", tool_calls=[{"id": "c9", "name": "vault", "args": {"n": "K"}}]),
            ToolMessage("vault K: amber", tool_call_id="c9")]
    for budget in (300, 900, 5000):
        for keep in (2, 3, 8):
            msgs = [SYSTEM, *conversation[:80], *tail]
            try:
                out = compress_messages(msgs, max_tokens=budget, keep_last=keep)
            except InputError:
                continue
            assert out[0] is SYSTEM
            assert isinstance(out[1], HumanMessage), (budget, keep, type(out[1]))


def test_marker_names_turns_left_out_for_the_budget(conversation):
    msgs = [SYSTEM, *conversation]
    with OpticalMemory(":memory:") as mem:
        r = compress(msgs[1:], system=[SYSTEM], max_tokens=900, memory=mem, scope=Scope(),
                     keep_last=4)
    assert r.compressed and r.dropped_turns > 0 and r.tokens_out <= 900
    first = r.messages[1]
    text = first.content if isinstance(first.content, str) else first.content[0]["text"]
    assert f"{r.dropped_turns} earlier turns" in text and "left out" in text
    assert r.accounting.dropped_items == r.dropped_turns
    meta = first.response_metadata[METADATA_KEY]
    assert meta["dropped_turns"] == r.dropped_turns


def test_images_sent_in_old_turns_stay_images(conversation):
    """Before: an image the user sent in an old turn became the text '[image block]'."""
    photo = _png_b64(300, 200)
    old = HumanMessage(content=[{"type": "text", "text": "Here is the rack diagram."},
                                {"type": "image", "base64": photo, "mime_type": "image/png"}])
    msgs = [SYSTEM, old, AIMessage("Got it."), *conversation[:80]]
    tgt = get_target("deepseek-ocr:base")
    with OpticalMemory(":memory:") as mem:
        r = compress(msgs[1:], system=[SYSTEM], max_tokens=50_000, memory=mem, scope=Scope(),
                     keep_last=6)
    page = r.messages[1]
    assert r.compressed and r.old_images == 1
    texts = [b.get("text") for b in page.content if b["type"] == "text"]
    assert OLD_IMAGES_HEADER in texts
    assert page.content[-1] == {"type": "image", "base64": photo, "mime_type": "image/png"}
    assert r.accounting.kept_image_tokens == image_tokens(tgt, 300, 200)
    assert r.tokens_out == r.accounting.context_tokens <= 50_000
    # left out with its turn when the budget drops that page: counted in the marker
    with OpticalMemory(":memory:") as mem:
        r = compress([old, AIMessage("Got it."), *conversation], system=[SYSTEM], max_tokens=800, memory=mem, scope=Scope(),
                     keep_last=4)
    assert r.dropped_images == 1 and r.old_images == 0
    first = r.messages[1]
    text = first.content if isinstance(first.content, str) else first.content[0]["text"]
    assert "1 image)" in text
