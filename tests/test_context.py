"""The context builder: budget, tool-call integrity, message format, accounting."""
from __future__ import annotations

import base64
import random

import pytest

from optical_memory import InputError, OpticalMemory
from optical_memory.age import AgePolicy
from optical_memory.context import (
    MESSAGE_OVERHEAD,
    PAGES_HEADER,
    RECALL_NOTE,
    ContextPage,
    KeptTurn,
    atomic_groups,
    build_context,
    extend_window,
    pages_header,
)
from optical_memory.conversation import generate_conversation
from optical_memory.render import RenderConfig
from optical_memory.store import Scope

CFG = RenderConfig(width=1024, height=1024, font_size=11, newline_mode="marker")


def _page(i, items, calls=(), results=(), tokens=100, tier="base"):
    return ContextPage(page_id=f"p{i}", tier=tier, width=10, height=10, vision_tokens=tokens,
                       text_tokens=1000, item_ids=tuple(items), calls=tuple(calls),
                       results=tuple(results), png_b64="AA==")


def test_extend_window_moves_back_to_the_call():
    roles = ["user", "assistant", "tool", "tool", "assistant", "user"]
    ids = [(), ("c1", "c2"), ("c1",), ("c2",), (), ()]
    assert extend_window(roles, ids, 3) == 1  # starts on the second result
    assert extend_window(roles, ids, 2) == 1
    assert extend_window(roles, ids, 4) == 4
    assert extend_window(roles, ids, 0) == 0
    # a result whose call is not among the turns given cannot move the start
    assert extend_window(["tool", "user"], [("zz",), ()], 0) == 0


def test_atomic_groups_link_calls_and_split_items():
    pages = [
        _page(0, ["a"]),
        _page(1, ["b"], calls=["c1"]),
        _page(2, ["c"], results=["c1"]),
        _page(3, ["d", "e"]),
        _page(4, ["e", "f"]),
        _page(5, ["g"], results=["unknown"]),
    ]
    assert atomic_groups(pages) == [[0], [1, 2], [3, 4], [5]]


def test_split_items_do_not_chain_pages_out_of_the_context():
    """Long items split across every page boundary link all pages by item;
    the cut still keeps the newest pages that fit (the oldest kept may start
    inside an item) instead of dropping the whole chain."""
    chain = [_page(0, ["a", "b"]), _page(1, ["b", "c"]), _page(2, ["c", "d"])]
    assert atomic_groups(chain, split_items=False) == [[0], [1, 2]]  # "c" is on the newest
    assert atomic_groups([*chain, _page(3, ["e"])], split_items=False) == [[0], [1], [2], [3]]
    pages = [_page(i, [f"i{i}", f"i{i + 1}"], tokens=100) for i in range(10)]
    assert len(atomic_groups(pages)) == 1  # one chain
    frame = 8 + MESSAGE_OVERHEAD
    ctx = build_context(budget_tokens=frame + 350, system=None, system_tokens=0, turns=[],
                        pages=pages, count_tokens=lambda _: 8, history_text_tokens=20_000,
                        tokenizer="o200k_base", target="t", decoder="d")
    assert [p.page_id for p in ctx.pages] == ["p7", "p8", "p9"]  # p7 starts inside i7
    # the newest item ("i10", split over p9 and a new p10) is kept whole or not at all
    pages.append(_page(10, ["i10"], tokens=100))
    ctx = build_context(budget_tokens=frame + 150, system=None, system_tokens=0, turns=[],
                        pages=pages, count_tokens=lambda _: 8, history_text_tokens=20_000,
                        tokenizer="o200k_base", target="t", decoder="d")
    assert ctx.pages == ()
    pages.pop()
    # a call and its result still go together: pages 7-8 linked, only 9 fits
    pages[7] = _page(7, ["i7", "i8"], calls=["c"], tokens=100)
    pages[8] = _page(8, ["i8", "i9"], results=["c"], tokens=100)
    pages[9] = _page(9, ["i10"], tokens=100)  # the newest item, whole on the newest page
    ctx = build_context(budget_tokens=frame + 250, system=None, system_tokens=0, turns=[],
                        pages=pages, count_tokens=lambda _: 8, history_text_tokens=20_000,
                        tokenizer="o200k_base", target="t", decoder="d")
    assert [p.page_id for p in ctx.pages] == ["p9"]


def test_build_context_drops_oldest_groups_first():
    pages = [_page(0, ["a"]), _page(1, ["b"], calls=["c"]), _page(2, ["x"], results=["c"]),
             _page(3, ["d"])]
    frame = 8 + MESSAGE_OVERHEAD
    turn = KeptTurn("t", {"role": "user", "content": "hi"}, 10)
    ctx = build_context(budget_tokens=10 + frame + 250, system=None, system_tokens=0, turns=[turn],
                        pages=pages, count_tokens=lambda _: 8, history_text_tokens=5000, tokenizer="o200k_base",
                        target="t", decoder="d")
    # page 0 then the call/result pair must go; only page 3 fits
    assert [p.page_id for p in ctx.pages] == ["p3"]
    acc = ctx.accounting
    assert acc.dropped_pages == 3 and acc.dropped_text_tokens == 3000
    assert acc.context_tokens == 10 + frame + 100
    # the ratio counts only the history the context carries, not what was dropped
    # (3 dropped items: their text plus a message's framing each)
    assert acc.dropped_items == 3
    assert acc.carried_text_tokens == 5000 - 3000 - 3 * MESSAGE_OVERHEAD == 1988
    assert acc.ratio == pytest.approx(1988 / acc.context_tokens)
    assert acc.rows()[-1][0] == "total: history carried, as text → context"
    assert acc.rows()[-1][2] == "1988" and acc.to_dict()["carried_text_tokens"] == 1988
    blocks = ctx.messages[0]["content"]
    assert blocks[0] == {"type": "text", "text": PAGES_HEADER}
    assert blocks[1] == {"type": "image", "base64": "AA==", "mime_type": "image/png"}
    assert ctx.messages[1] == {"role": "user", "content": "hi"}
    with pytest.raises(InputError, match="budget 5 tokens"):
        build_context(budget_tokens=5, system=None, system_tokens=0, turns=[turn], pages=pages,
                      count_tokens=lambda _: 8, history_text_tokens=5000, tokenizer="o", target="t", decoder="d")


def test_pages_header_names_low_resolution_pages():
    low = ("small", "tiny")
    assert pages_header(["base", "base"], low) == PAGES_HEADER
    assert pages_header(["tiny", "small"], ()) == PAGES_HEADER
    h = pages_header(["tiny", "tiny", "tiny", "small", "tiny", "base"], low)
    assert h == ("Earlier conversation, as page images (oldest first). Low-resolution pages "
                 "(shrunk with age), tier small: page 4; tier tiny: pages 1-3, 5. " + RECALL_NOTE)
    assert "search/recall tool" in RECALL_NOTE


def test_build_context_counts_the_header_it_sends():
    """The header grows with the low-resolution pages kept; the page message
    is billed for the header actually sent, and the budget still holds."""
    pages = [_page(i, [f"i{i}"], tier=t, tokens=100)
             for i, t in enumerate(["tiny", "tiny", "small", "base", "base"])]

    def count(text):
        return len(text.split())

    turn = KeptTurn("t", {"role": "user", "content": "hi"}, 10)
    plain = count(PAGES_HEADER) + MESSAGE_OVERHEAD
    for budget in range(10, 10 + plain + 600, 7):
        ctx = build_context(budget_tokens=budget, system=None, system_tokens=0, turns=[turn],
                            pages=pages, count_tokens=count, history_text_tokens=5000,
                            tokenizer="w", target="t", decoder="d", low_tiers=("small", "tiny"))
        acc = ctx.accounting
        assert acc.context_tokens <= budget
        assert acc.context_tokens == acc.text_tokens_kept + acc.page_message_tokens + acc.page_vision_tokens
        if not ctx.pages:
            assert acc.page_message_tokens == 0 and ctx.header == ""
            continue
        header = ctx.messages[0]["content"][0]["text"]
        assert header == ctx.header == pages_header([p.tier for p in ctx.pages], ("small", "tiny"))
        assert acc.page_message_tokens == count(header) + MESSAGE_OVERHEAD
    # room for every page with the long header: all kept, the header names them
    ctx = build_context(budget_tokens=10_000, system=None, system_tokens=0, turns=[turn],
                        pages=pages, count_tokens=count, history_text_tokens=5000,
                        tokenizer="w", target="t", decoder="d", low_tiers=("small", "tiny"))
    assert len(ctx.pages) == 5 and "tier small: page 3; tier tiny: pages 1-2." in ctx.header
    # room for the two base pages and the plain header only: the low pages go
    ctx = build_context(budget_tokens=10 + plain + 200, system=None, system_tokens=0,
                        turns=[turn], pages=pages, count_tokens=count,
                        history_text_tokens=5000, tokenizer="w", target="t", decoder="d",
                        low_tiers=("small", "tiny"))
    assert [p.page_id for p in ctx.pages] == ["p3", "p4"] and ctx.header == PAGES_HEADER
    # one more page fits by vision tokens, but not with the longer header it brings
    long_frame = count(pages_header(["small", "base", "base"], ("small", "tiny"))) + 4
    ctx = build_context(budget_tokens=10 + plain + 300, system=None, system_tokens=0,
                        turns=[turn], pages=pages, count_tokens=count,
                        history_text_tokens=5000, tokenizer="w", target="t", decoder="d",
                        low_tiers=("small", "tiny"))
    assert long_frame > plain
    assert [p.page_id for p in ctx.pages] == ["p3", "p4"]
    assert ctx.accounting.context_tokens == 10 + plain + 200


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    path = tmp_path_factory.mktemp("ctx") / "m.db"
    conv = generate_conversation(tokens=40_000, seed=12)
    with OpticalMemory(path, render_config=CFG, keep_last=8) as mem:
        mem.add(conv.messages[: len(conv.messages) - 40], user_id="u")
        for m in conv.messages[len(conv.messages) - 40:]:
            mem.add(m, user_id="u")
    return path, conv


def _check_no_split(ctx, answered):
    """No tool result without its call, no answered call without its result."""
    text_calls, text_results = set(), set()
    for m in ctx.messages:
        if m["role"] == "assistant":
            text_calls |= {c["id"] for c in m.get("tool_calls") or ()}
        if m["role"] == "tool":
            text_results.add(m["tool_call_id"])
    page_calls = {c for p in ctx.pages for c in p.calls}
    page_results = {r for p in ctx.pages for r in p.results}
    assert text_results <= text_calls, "a tool result in text lost its call"
    assert page_results <= page_calls | text_calls, "a paged tool result lost its call"
    assert (page_calls & answered) <= page_results | text_results, "a paged call lost its result"


def test_context_never_exceeds_budget_nor_splits_tool_calls(filled):
    path, conv = filled
    rng = random.Random(0)
    answered = {m["tool_call_id"] for m in conv.messages if m["role"] == "tool"}
    with OpticalMemory(path, render_config=CFG, keep_last=8) as mem:
        full = mem.context(10**7, user_id="u", system="Be brief.")
        assert full.accounting.dropped_pages == 0
        floor = full.accounting.text_tokens_kept
        seen_errors = seen_partial = 0
        for _ in range(60):
            budget = rng.randint(1, full.accounting.context_tokens + 500)
            keep = rng.choice([None, 0, 1, 3, 5, 8, 13])
            try:
                ctx = mem.context(budget, user_id="u", system="Be brief.", keep_last=keep)
            except InputError as exc:
                assert "lower keep_last" in str(exc)
                seen_errors += 1
                continue
            acc = ctx.accounting
            assert acc.context_tokens <= budget
            assert acc.context_tokens == acc.text_tokens_kept + acc.page_message_tokens + acc.page_vision_tokens
            _check_no_split(ctx, answered)
            # pairs never straddle kept / dropped pages
            kept_calls = {c for p in ctx.pages for c in p.calls}
            kept_results = {r for p in ctx.pages for r in p.results}
            all_pages = {p.page_id: p for p in full.pages}
            dropped = [p for pid, p in all_pages.items() if pid not in {q.page_id for q in ctx.pages}]
            for p in dropped:
                assert not set(p.calls) & kept_results
                assert not set(p.results) & kept_calls
            if 0 < acc.dropped_pages < len(full.pages):
                seen_partial += 1
                # the oldest go first: kept pages are a suffix of all pages
                ids = [p.page_id for p in full.pages]
                kept_ids = [p.page_id for p in ctx.pages]
                assert ids[len(ids) - len(kept_ids):] == kept_ids
        assert seen_errors and seen_partial, "the random budgets should cover both cases"
        assert floor > 0


def test_window_starting_on_a_tool_result_includes_its_call(tmp_path):
    msgs = [
        {"role": "user", "content": "check two things"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "a", "arguments": "{}"}},
            {"id": "c2", "type": "function", "function": {"name": "b", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "one"},
        {"role": "tool", "tool_call_id": "c2", "content": "two"},
        {"role": "assistant", "content": "done"},
    ]
    with OpticalMemory(tmp_path / "w.db", render_config=CFG) as mem:
        mem.add(msgs, user_id="w")
        ctx = mem.context(5000, user_id="w", keep_last=2)
        roles = [m["role"] for m in ctx.messages]
        # keep_last=2 would start at the second tool result; moved back to the call
        assert roles[-4:] == ["assistant", "tool", "tool", "assistant"]
        assert ctx.messages[-4]["tool_calls"][1]["id"] == "c2"
        assert ctx.accounting.kept_turns == 4


def test_context_messages_and_pending_page(filled):
    path, conv = filled
    fade = AgePolicy(mode="fade")  # shrink with age regardless of read-back
    with OpticalMemory(path, render_config=CFG, keep_last=8, aging=fade) as mem:
        ctx = mem.context(10**6, user_id="u", system="S")
        assert ctx.messages[0] == {"role": "system", "content": "S"}
        blocks = ctx.messages[1]["content"]
        assert ctx.messages[1]["role"] == "user" and blocks[0]["text"] == ctx.header
        # pages aged past the base tier are named as low-resolution
        assert ctx.header == pages_header([p.tier for p in ctx.pages], ("small", "tiny"))
        assert {p.tier for p in ctx.pages} != {"base"} and ctx.header.endswith(RECALL_NOTE)
        assert len(blocks) - 1 == len(ctx.pages) == ctx.accounting.pages
        for block, _page in zip(blocks[1:], ctx.pages):
            png = base64.b64decode(block["base64"])
            assert png.startswith(b"\x89PNG") and block["mime_type"] == "image/png"
        # everything older than the window is in pages; nothing twice as text
        texts = ctx.messages[2:]
        assert ctx.accounting.kept_turns == len(texts) >= 8
        stored = {p.page_id for p in ctx.pages if p.page_id}
        assert stored == {p.id for p in mem.store.list_pages(Scope("u"), with_png=False)}
        waiting = mem.store.list_items(Scope("u"), on_page=False)
        pending = [p for p in ctx.pages if p.page_id is None]
        if len(waiting) > len(texts):
            assert pending, "old waiting turns go in a pending page"
        assert conv.messages[-1]["content"] == texts[-1]["content"]
        # a narrower keep_last moves more turns into pending pages, never drops them
        small = mem.context(10**6, user_id="u", system="S", keep_last=2)
        held = {i for p in small.pages for i in p.item_ids}
        assert len(held) + small.accounting.kept_turns >= len(mem.store.list_items(Scope("u")))
        # re-billing for another target keeps the images
        claude = mem.context(10**6, user_id="u", system="S", target="anthropic:claude")
        assert claude.accounting.target == "anthropic:claude"
        assert [p.png_b64 for p in claude.pages] == [p.png_b64 for p in ctx.pages]
        assert claude.accounting.page_vision_tokens != ctx.accounting.page_vision_tokens


def test_bad_budget(filled):
    path, _ = filled
    with OpticalMemory(path, render_config=CFG) as mem:
        for bad in (0, -5, 1.5, True):
            with pytest.raises(InputError):
                mem.context(bad, user_id="u")
