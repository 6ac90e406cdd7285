"""compress_messages: images reach the model as standard blocks, the OpenAI
conversion round-trips, the budget holds, tool calls stay with results."""
from __future__ import annotations

import base64
import io
import socket

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import (
    AIMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    convert_to_openai_messages,
)
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables import Runnable
from PIL import Image

from langchain_optical_memory import compress_messages
from langchain_optical_memory.compress import ACCOUNTING_EVENT, METADATA_KEY, compress
from optical_memory import InputError, OpticalMemory
from optical_memory.aging import image_tokens
from optical_memory.context import PAGES_HEADER
from optical_memory.store import Scope
from optical_memory.tokens import get_target

SYSTEM = SystemMessage("You are a careful operations assistant.")


def _image_blocks(message) -> list[dict]:
    assert isinstance(message.content, list)
    return [b for b in message.content if isinstance(b, dict) and b.get("type") == "image"]


def _png_size(b64: str) -> tuple[int, int]:
    raw = base64.b64decode(b64)
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(io.BytesIO(raw)) as im:
        return im.size


@pytest.mark.filterwarnings("ignore:A test tried to use socket")
def test_sockets_are_disabled_in_unit_tests():
    with pytest.raises(Exception, match=r"[Ss]ocket"):
        socket.socket(socket.AF_INET, socket.SOCK_STREAM)


def test_older_turns_become_one_page_message(conversation):
    msgs = [SYSTEM, *conversation]
    out = compress_messages(msgs, max_tokens=6000, keep_last=8)
    assert out[0] is SYSTEM
    page = out[1]
    assert isinstance(page, HumanMessage)
    assert page.content[0] == {"type": "text", "text": PAGES_HEADER}
    images = _image_blocks(page)
    assert images and len(images) == len(page.content) - 1
    for block in images:
        assert set(block) == {"type", "base64", "mime_type"}
        assert block["mime_type"] == "image/png"
        assert _png_size(block["base64"])[0] > 0
    tail = out[2:]
    assert 1 <= len(tail) <= 8 and isinstance(tail[0], HumanMessage)  # start_on="human"
    for got, original in zip(tail, conversation[-len(tail):]):
        assert got is original  # kept turns are the caller's own objects
    acc = page.response_metadata[METADATA_KEY]
    assert page.response_metadata[METADATA_KEY]["tokens_out"] <= 6000
    acc = page.response_metadata[METADATA_KEY]["accounting"]
    assert acc["pages"] == len(images)
    assert acc["kept_turns"] == len(tail)
    assert acc["target"] == "deepseek-ocr:base" and acc["tokenizer"] == "o200k_base"
    assert acc["history_text_tokens"] > 5 * acc["context_tokens"]


def test_recorder_model_receives_standard_image_blocks(conversation, recorder):
    model = recorder([AIMessage("noted")])
    prompt = ChatPromptTemplate.from_messages(
        [("system", "You are a careful operations assistant."), MessagesPlaceholder("history")]
    )
    chain = prompt | compress_messages(max_tokens=5000) | model
    reply = chain.invoke({"history": conversation})
    assert reply.content == "noted"
    (sent,) = model.calls
    assert isinstance(sent[0], SystemMessage)
    images = _image_blocks(sent[1])
    assert len(images) >= 2
    assert all(b["mime_type"] == "image/png" and b["base64"] for b in images)
    # the most recent turn reached the model as text, unchanged
    assert sent[-1] is conversation[-1]
    # far fewer messages than the conversation, and no old turn as text
    assert len(sent) < 25
    assert conversation[0] not in sent


def test_openai_conversion_round_trips_pages_and_tool_turns(conversation):
    out = compress_messages([SYSTEM, *conversation], max_tokens=6000)
    oa = convert_to_openai_messages(out)
    assert [m["role"] for m in oa[:2]] == ["system", "user"]
    parts = oa[1]["content"]
    assert parts[0] == {"type": "text", "text": PAGES_HEADER}
    originals = _image_blocks(out[1])
    assert len(parts) == len(originals) + 1
    for part, block in zip(parts[1:], originals):
        assert part["type"] == "image_url"
        url = part["image_url"]["url"]
        assert url == f"data:image/png;base64,{block['base64']}"
        _png_size(url.split(",", 1)[1])
    # the text turns keep their OpenAI shape: tool calls and their results
    calls = {c["id"] for m in oa if m["role"] == "assistant" for c in m.get("tool_calls", [])}
    results = [m["tool_call_id"] for m in oa if m["role"] == "tool"]
    assert results and set(results) <= calls


def test_page_text_reads_back_from_the_openai_image(conversation):
    """text → image → OpenAI data URL → image → text: OCR finds the old turn."""
    from optical_memory.decode import get_decoder

    out = compress_messages(conversation, max_tokens=6000)
    first_page = convert_to_openai_messages(out[0])["content"][1]["image_url"]["url"]
    with Image.open(io.BytesIO(base64.b64decode(first_page.split(",", 1)[1]))) as im:
        top = im.crop((0, 0, im.width, im.height // 6))  # the first turn; OCR of a
        buf = io.BytesIO()                               # whole page takes seconds
        top.save(buf, format="PNG")
    text = get_decoder("tesseract").decode(buf.getvalue()).text
    words = [w for w in str(conversation[0].content).split() if len(w) > 5 and w.isalpha()]
    assert words
    found = sum(w in text for w in words)
    assert found >= 0.8 * len(words), (words, text[:400])


@pytest.mark.parametrize("budget", [900, 1500, 3000, 6000, 50_000])
def test_budget_holds_and_page_costs_add_up(conversation, budget):
    seen = []
    out = compress_messages([SYSTEM, *conversation], max_tokens=budget, keep_last=8,
                            on_accounting=seen.append)
    (acc,) = seen
    assert acc.context_tokens <= budget
    assert acc.budget_tokens == budget
    target = get_target("deepseek-ocr:base")
    pages = [m for m in out if isinstance(m, HumanMessage) and isinstance(m.content, list)]
    vision = sum(image_tokens(target, *_png_size(b["base64"]))
                 for m in pages for b in _image_blocks(m))
    assert vision == acc.page_vision_tokens  # billed from the pixels actually sent
    assert acc.context_tokens == acc.text_tokens_kept + acc.page_message_tokens + vision
    if budget >= 6000:
        assert acc.dropped_pages == 0
    if budget == 900:
        assert acc.dropped_pages > 0 or acc.kept_turns < 8


def test_keep_last_shrinks_to_fit_then_errors():
    big = "lorem ipsum dolor sit amet " * 200  # ~1000 tokens per turn
    msgs = [HumanMessage(big), AIMessage(big), HumanMessage(big), AIMessage(big)]
    seen = []
    out = compress_messages(msgs, max_tokens=1500, keep_last=4, on_accounting=seen.append)
    assert seen[0].context_tokens <= 1500
    assert 1 <= seen[0].kept_turns < 4
    assert out[-1] is msgs[-1]
    with pytest.raises(InputError, match="budget"):
        compress_messages([SystemMessage(big), HumanMessage("hi")], max_tokens=300)


def test_newest_message_that_fits_nowhere_is_an_error_not_dropped():
    """Before: the lone huge question became pages, the budget cut dropped them,
    and the model got only the system message."""
    huge = HumanMessage("Summarise this: " + "lorem ipsum dolor sit amet " * 8000)
    for msgs in ([SystemMessage("Be terse."), huge], [huge]):
        with pytest.raises(InputError, match="newest message"):
            compress_messages(msgs, max_tokens=2000)
    # a budget that holds it as pages is fine: the question is on a kept page
    seen = []
    out = compress_messages([SystemMessage("Be terse."), huge], max_tokens=100_000,
                            keep_last=0, on_accounting=seen.append)
    assert seen[0].pages >= 1 and seen[0].dropped_pages == 0 and len(out) == 2


def _check_pairs(out, pages, history):
    text_calls = {c["id"] for m in out if isinstance(m, AIMessage) for c in m.tool_calls}
    for m in out:
        if isinstance(m, ToolMessage):
            assert m.tool_call_id in text_calls, f"result {m.tool_call_id} without its call"
    page_calls = {c for p in pages for c in p.calls}
    page_results = {r for p in pages for r in p.results}
    assert page_results <= page_calls, "a paged result lost its call"
    answered = {m.tool_call_id for m in history if isinstance(m, ToolMessage)}
    text_results = {m.tool_call_id for m in out if isinstance(m, ToolMessage)}
    for cid in page_calls & answered:
        assert cid in page_results or cid in text_results, f"call {cid} lost its result"


@pytest.mark.parametrize("keep_last", [0, 1, 3, 8, 13])
@pytest.mark.parametrize("budget", [1200, 100_000])
def test_tool_calls_never_split_from_results(conversation, keep_last, budget):
    history = conversation[:120]
    with OpticalMemory(":memory:", keep_last=keep_last) as mem:
        result = compress(history, max_tokens=budget, memory=mem, scope=Scope(),
                          keep_last=keep_last)
        pages = mem.context(budget, keep_last=result.keep_last).pages
    text_part = [m for m in result.messages if not (isinstance(m, HumanMessage)
                                                    and isinstance(m.content, list))]
    if text_part and isinstance(text_part[0], ToolMessage):
        pytest.fail("the text window starts with a tool result")
    _check_pairs(result.messages, pages, history)
    assert result.accounting.context_tokens <= budget


def test_runnable_form_reports_accounting_event(conversation):
    events = []

    class Listener(BaseCallbackHandler):
        def on_custom_event(self, name, data, **kwargs):
            events.append((name, data))

    step = compress_messages(max_tokens=4000)
    assert isinstance(step, Runnable)
    out = step.invoke(conversation, config={"callbacks": [Listener()]})
    assert isinstance(out[0], HumanMessage)
    ((name, data),) = events
    assert name == ACCOUNTING_EVENT
    assert data["compressed"] and data["tokens_out"] <= 4000 < data["tokens_in"]
    assert data["accounting"]["context_tokens"] == data["tokens_out"]
    assert data["accounting"]["pages"] >= 1


async def test_runnable_ainvoke(conversation):
    out = await compress_messages(max_tokens=4000).ainvoke(conversation[:60])
    assert _image_blocks(out[0])
    assert out[0].response_metadata[METADATA_KEY]["accounting"]["context_tokens"] <= 4000
    assert out[-1] is conversation[59]


def test_short_history_passes_through_unchanged():
    msgs = [SYSTEM, HumanMessage("hi"), AIMessage("hello")]
    out = compress_messages(msgs, max_tokens=1000)
    assert out == msgs and all(a is b for a, b in zip(out, msgs))


def test_memory_is_synced_incrementally_and_resynced(conversation):
    with OpticalMemory(":memory:") as mem:
        compress_messages(conversation[:50], max_tokens=4000, memory=mem, session_id="s1")
        first = [t.id for t in mem.list_turns(session_id="s1")]
        out = compress_messages(conversation[:90], max_tokens=4000, memory=mem, session_id="s1")
        assert mem.stats(session_id="s1").items == 90
        assert [t.id for t in mem.list_turns(session_id="s1")][:50] == first  # only added
        assert out[-1] is conversation[89]
        hits = mem.retrieve(str(conversation[0].content).split()[3], session_id="s1")
        assert hits
        # another conversation under the same scope replaces it (the memory mirrors the input)
        compress_messages(conversation[100:150], max_tokens=4000, memory=mem, session_id="s1")
        stored = [t.text for t in mem.list_turns(session_id="s1")]
        assert len(stored) == 50 and stored[0].startswith(str(conversation[100].content)[:40])
        with pytest.raises(InputError, match="tokenizer"):
            compress_messages(conversation, max_tokens=4000, memory=mem, tokenizer="cl100k_base")


def test_non_text_blocks_and_empty_turns_are_stored(conversation):
    pixel = base64.b64encode(b"\x89PNG not really").decode()
    odd = [
        HumanMessage([{"type": "text", "text": "look at this"},
                      {"type": "image", "base64": pixel, "mime_type": "image/png"}]),
        AIMessage(""),
    ]
    msgs = [*odd, *conversation[:60]]
    out = compress_messages(msgs, max_tokens=5000, keep_last=4)
    assert _image_blocks(out[0])
    assert out[-1] is conversation[59]


def test_bad_arguments_raise():
    with pytest.raises(InputError, match="keep_last"):
        compress_messages([HumanMessage("x")], max_tokens=100, keep_last=-1)
    with pytest.raises(InputError, match="max_tokens"):
        compress_messages([HumanMessage("x")], max_tokens=0)


def _png_b64(w, h):
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (200, 30, 30)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def test_images_in_kept_turns_count_against_the_budget(conversation):
    """The kept turns are returned as the original messages, images and all:
    their vision tokens are in context_tokens, and the budget still holds."""
    tgt = get_target("deepseek-ocr:base")
    photo = HumanMessage(content=[
        {"type": "text", "text": "What is in this photo?"},
        {"type": "image", "base64": _png_b64(512, 512), "mime_type": "image/png"},
        {"type": "image_url", "image_url": {"url": "https://example.org/cat.jpg"}},
    ])
    msgs = [SYSTEM, *conversation[:60], photo]
    per_photo = image_tokens(tgt, 512, 512) + tgt.page_tokens  # remote URL: one full page
    seen = []
    out = compress_messages(msgs, max_tokens=100_000, keep_last=4, on_accounting=seen.append)
    acc = seen[0]
    assert out[-1] is photo and acc.kept_image_tokens == per_photo
    assert acc.context_tokens == (acc.text_tokens_kept + acc.page_message_tokens
                                  + acc.page_vision_tokens + per_photo)
    assert ("images in recent turns", "-", "0", str(per_photo), "-") in acc.rows()
    # a tight budget: pages give way to the photo, and the total stays within it
    tight = acc.text_tokens_kept + per_photo + 400
    seen.clear()
    out = compress_messages(msgs, max_tokens=tight, keep_last=4, on_accounting=seen.append)
    assert out[-1] is photo
    assert seen[0].context_tokens <= tight and seen[0].kept_image_tokens == per_photo
    assert seen[0].dropped_pages > 0


def test_a_stored_turn_must_match_its_message_exactly():
    """'message number 1' is not the same turn as 'message number 10'."""
    with OpticalMemory(":memory:") as mem:
        compress_messages([HumanMessage("message number 10"), AIMessage("ok")],
                          max_tokens=4000, memory=mem, session_id="s")
        compress_messages([HumanMessage("message number 1"), AIMessage("ok"),
                           HumanMessage("next")], max_tokens=4000, memory=mem, session_id="s")
        texts = [t.text for t in mem.list_turns(session_id="s")]
        assert texts == ["message number 1", "ok", "next"]
        calls = AIMessage("", tool_calls=[{"id": "c1", "name": "f", "args": {"x": 1}}])
        compress_messages([HumanMessage("go"), calls], max_tokens=4000, memory=mem,
                          session_id="t")
        out = compress_messages([HumanMessage("go"), calls, ToolMessage("done", tool_call_id="c1")],
                                max_tokens=4000, memory=mem, session_id="t")
        assert len(out) == 3 and mem.stats(session_id="t").items == 3
