"""The memory facade over its public API: add, retrieve, decode, scope, errors."""
from __future__ import annotations

import itertools

import pytest

from optical_memory import EmptyInputError, InputError, OpticalMemory
from optical_memory.conversation import generate_conversation
from optical_memory.render import RenderConfig, Turn
from optical_memory.store import NotFoundError

CFG = RenderConfig(width=1024, height=1024, font_size=11, newline_mode="marker")
SMALL = RenderConfig(width=512, height=512, font_size=14, newline_mode="marker")


def _have_tesseract() -> bool:
    from optical_memory.decode import available_decoders

    return available_decoders().get("tesseract") is True


needs_tesseract = pytest.mark.skipif(not _have_tesseract(), reason="tesseract not installed")


@pytest.fixture
def mem(tmp_path):
    with OpticalMemory(tmp_path / "m.db", render_config=CFG, keep_last=6) as m:
        yield m


@needs_tesseract
def test_needle_in_old_turn_is_retrieved_and_read_back(mem, uid):
    conv = generate_conversation(tokens=15_000, seed=2, needle_depth=0.15)
    needle = conv.needle
    mem.add(conv.messages, user_id=uid)
    hits = mem.retrieve(needle.keywords, k=3, user_id=uid)
    assert hits, "the needle must be found"
    top = hits[0]
    item = mem.store.get_item(top.item_id, mem_scope(uid))
    assert needle.fact in item.text
    assert top.page is not None and top.page_id == top.page.id, "an old turn is on a page"
    start, end = top.span
    assert item.text[start:end].casefold() in needle.keywords.casefold()
    assert top.tier == top.page.tier
    decoded = mem.decode(top, tier="base", user_id=uid)
    assert decoded.decoder == "native"
    assert decoded.precision is not None and decoded.precision > 0.9
    assert needle.answer in " ".join(decoded.text.split())


def test_recent_turn_hit_has_no_page(mem, uid):
    mem.add([{"role": "user", "content": "remember the zebra protocol"}], user_id=uid)
    hit = mem.retrieve("zebra", user_id=uid)[0]
    assert hit.page is None and hit.page_id is None and hit.tier is None
    with pytest.raises(InputError, match="not on a page"):
        mem.decode(hit, user_id=uid)


def test_scope_isolation(mem, uid):
    a, b = f"{uid}a", f"{uid}b"
    conv = generate_conversation(tokens=8_000, seed=4)
    mem.add(conv.messages, user_id=a)
    mem.add([*conv.messages[:-1], {"role": "user", "content": "secret mango-kiwi protocol"}],
            user_id=b)
    mem.add_document("Bob's private notes about the mango-kiwi protocol. " * 30, user_id=b)
    assert mem.retrieve("mango kiwi", user_id=a) == []
    assert mem.retrieve("mango kiwi", user_id=b)
    b_pages = mem.store.list_pages(mem_scope(b), with_png=False)
    assert b_pages
    with pytest.raises(NotFoundError):
        mem.decode(b_pages[0].id, user_id=a)
    with pytest.raises(NotFoundError):
        mem.tier_png(b_pages[0].id, user_id=a)
    ctx = mem.context(50_000, user_id=a)
    b_items = {i.id for i in mem.store.list_items(mem_scope(b))}
    for page in ctx.pages:
        assert not set(page.item_ids) & b_items
    assert "mango" not in str([m["content"] for m in ctx.messages if isinstance(m["content"], str)])
    assert mem.stats(user_id=a).items == len(conv.messages)
    assert mem.stats(user_id=b).items == len(conv.messages) + 1
    # sessions narrow reads within one user
    mem.add([{"role": "user", "content": "session-only papaya"}], user_id=a, session_id="s1")
    assert mem.retrieve("papaya", user_id=a, session_id="s1")
    assert mem.retrieve("papaya", user_id=a, session_id="s2") == []


@pytest.mark.parametrize(
    "bad, error",
    [
        ("", EmptyInputError),
        ("   \n\t", EmptyInputError),
        ([], EmptyInputError),
        ([{"role": "user", "content": "   "}], EmptyInputError),
        ([{"role": "user", "content": "fine"}, {"role": "user", "content": ""}], EmptyInputError),
        ([{"role": "wizard", "content": "hi"}], InputError),
        ([{"role": "tool", "content": "42"}], InputError),  # no tool_call_id
        ([{"role": "user", "content": [{"type": "image", "base64": "xx"}]}], InputError),
        ([{"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f"}}]}], InputError),
        ([42], InputError),
        (42, InputError),
    ],
)
def test_bad_input_is_a_typed_error_and_stores_nothing(mem, uid, bad, error):
    with pytest.raises(error):
        mem.add(bad, user_id=uid)
    st = mem.stats(user_id=uid)
    assert (st.items, st.pages) == (0, 0)


def test_empty_document_is_rejected(mem, uid):
    with pytest.raises(EmptyInputError):
        mem.add_document("  ", user_id=uid)
    assert mem.stats(user_id=uid).items == 0


def test_add_result_and_documents_render_at_add(mem, uid):
    res = mem.add_document("# Runbook\n\n" + "Restart the ledger-sync worker. " * 400,
                           title="runbook", user_id=uid)
    assert len(res.item_ids) == 1 and res.pages >= 1
    assert res.text_tokens == mem.counter.count(mem.store.get_item(res.item_ids[0], mem_scope(uid)).text)
    pages = mem.store.list_pages(mem_scope(uid))
    assert [p.id for p in pages] == list(res.page_ids)
    assert all(p.width == 1024 and p.height == 1024 for p in pages)
    one = mem.add([{"role": "user", "content": "hello"}], user_id=uid)
    assert one.pages == 0 and one.text_tokens == mem.counter.count("hello")


def test_turns_are_paged_once_they_fill_a_page(mem, uid):
    conv = generate_conversation(tokens=12_000, seed=1)
    for m in conv.messages:  # one at a time, like an agent loop
        mem.add(m, user_id=uid)
    pages = mem.store.list_pages(mem_scope(uid), with_png=False)
    assert len(pages) >= 2
    items = mem.store.list_items(mem_scope(uid))
    waiting = mem.store.list_items(mem_scope(uid), on_page=False)
    # the newest turns stay text; everything paged is older than what waits
    assert items[-1].id in {w.id for w in waiting}
    assert len(waiting) >= 6
    paged = [i for i in items if i.id not in {w.id for w in waiting}]
    assert max(i.seq for i in paged) < min(w.seq for w in waiting)
    # pages hold contiguous turns, several per page, each page full but the last
    order = [i.id for i in items]
    for p in pages:
        idx = [order.index(i) for i in p.item_ids]
        assert idx == list(range(idx[0], idx[0] + len(idx)))
        assert len(idx) > 3
    # every page was rendered once, at the master size
    assert all((p.width, p.height) == (1024, 1024) for p in pages)


def test_tool_call_dicts_round_trip(mem, uid):
    lc_call = {"name": "get_weather", "args": {"city": "Oslo"}, "id": "call_lc1", "type": "tool_call"}
    msgs = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": "", "tool_calls": [lc_call]},
        {"role": "tool", "tool_call_id": "call_lc1", "content": '{"temp_c": 3}'},
        Turn("ignored-id", "assistant", "It is 3 °C in Oslo.", name="bot"),
    ]
    mem.add(msgs, user_id=uid)
    ctx = mem.context(10_000, user_id=uid)
    assert ctx.messages[1] == {"role": "assistant", "content": "", "tool_calls": [lc_call]}
    assert ctx.messages[2] == {"role": "tool", "content": '{"temp_c": 3}', "tool_call_id": "call_lc1"}
    assert ctx.messages[3] == {"role": "assistant", "content": "It is 3 °C in Oslo.", "name": "bot"}
    item = mem.store.list_items(mem_scope(uid))[1]
    assert "get_weather" in item.text and item.tool_call_ids == ("call_lc1",)


@needs_tesseract
def test_keep_text_false_indexes_the_read_back(tmp_path, uid):
    with OpticalMemory(tmp_path / "p.db", target="deepseek-ocr:tiny", render_config=SMALL,
                       keep_text=False) as mem:
        res = mem.add([{"role": "user", "content": "Please order more blueberry jam for the office."},
                       {"role": "assistant", "content": "Ordered twelve jars of blueberry jam."}],
                      user_id=uid)
        assert res.pages == 1
        items = mem.store.list_items(mem_scope(uid))
        assert all(i.text is None for i in items)
        page = mem.store.get_page(res.page_ids[0], mem_scope(uid))
        assert page.text is None and "blueberry" in page.readback.casefold()
        hits = mem.retrieve("blueberry", user_id=uid)
        assert hits and hits[0].page_id == page.id and hits[0].item_id is None
        decoded = mem.decode(hits[0], user_id=uid)
        assert decoded.precision is None and "blueberry" in decoded.text.casefold()
        ctx = mem.context(1000, user_id=uid)
        assert [m["role"] for m in ctx.messages] == ["user"]  # pages only: no text kept
        assert ctx.accounting.pages == 1 and ctx.accounting.kept_turns == 0


def test_delete_removes_items_and_orphan_pages(mem, uid):
    mem.add_document("Quarterly numbers for the orchard project. " * 300, user_id=uid)
    mem.add([{"role": "user", "content": "keep me"}], user_id=uid)
    doc = mem.store.list_items(mem_scope(uid), kinds=["document"])[0]
    deleted = mem.delete(item_ids=[doc.id], user_id=uid)
    assert deleted.items == 1 and deleted.pages >= 1
    st = mem.stats(user_id=uid)
    assert (st.items, st.pages) == (1, 0)
    assert mem.retrieve("orchard", user_id=uid) == []


def test_context_manager_closes_owned_store(tmp_path):
    from optical_memory.store import StoreError

    mem = OpticalMemory(tmp_path / "c.db", render_config=CFG)
    with mem:
        pass
    with pytest.raises(StoreError):
        mem.stats()


def mem_scope(uid):
    from optical_memory.store import Scope

    return Scope(uid)


def _assert_no_text_on_two_pages(store, scope):
    """No character of any item is on more than one page."""
    held: dict[str, list[tuple[int, int]]] = {}
    for page in store.list_pages(scope, with_png=False):
        for s in page.spans:
            held.setdefault(s.item_id, []).append((s.start, s.end))
    for item_id, spans in held.items():
        spans.sort()
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert end <= start, f"item {item_id} is on two pages: {spans}"


def test_compact_racing_another_writer_pages_each_turn_once(store_url, uid):
    """Two processes compacting one scope: the one that loses the race gets a
    ConflictError from the store (nothing written), re-reads the waiting turns
    and pages only what is left. (Before the fix both paged the same turns.)"""
    from optical_memory.store import ConflictError

    conv = generate_conversation(tokens=12_000, seed=5)
    scope = mem_scope(uid)
    with OpticalMemory(store_url, render_config=CFG, keep_last=10**6) as inbox, \
            OpticalMemory(store_url, render_config=CFG, keep_last=4) as winner, \
            OpticalMemory(store_url, render_config=CFG, keep_last=4) as loser:
        inbox.add(conv.messages, user_id=uid)  # stored, nothing paged yet
        assert loser.store.list_pages(scope) == []

        real_add = loser.store.add_items
        raised: list[Exception] = []

        def add_items_after_the_winner(items, pages=(), **kw):
            if pages and not raised:  # the winner pages the same turns first
                winner.compact(user_id=uid)
                try:
                    return real_add(items, pages, **kw)
                except ConflictError as exc:
                    raised.append(exc)
                    raise
            return real_add(items, pages, **kw)

        loser.store.add_items = add_items_after_the_winner
        result = loser.compact(user_id=uid)
        assert len(raised) == 1, "the loser's first write must conflict"
        _assert_no_text_on_two_pages(loser.store, scope)
        # what either could page is paged: a third compaction finds nothing to do
        loser.store.add_items = real_add
        assert loser.compact(user_id=uid).page_ids == ()
        assert winner.compact(user_id=uid).page_ids == ()
        assert loser.store.list_pages(scope), "the winner paged the old turns"
        assert result.items_paged < len(conv.messages)


def test_check_messages_validates_without_storing(mem, uid):
    msgs = [{"role": "user", "content": "hello there"}, {"role": "assistant", "content": "hi"}]
    tokens = mem.check_messages(msgs)
    assert mem.stats(user_id=uid).items == 0
    assert mem.add(msgs, user_id=uid).text_tokens == tokens
    with pytest.raises(InputError, match=r"log.jsonl:7: message\.role"):
        mem.check_messages([{"role": "oracle", "content": "x"}], names=["log.jsonl:7: message"])
    with pytest.raises(EmptyInputError, match=r"messages\[1\] is empty"):
        mem.check_messages([msgs[0], {"role": "user", "content": "  "}])
    with pytest.raises(InputError, match="names has 1 entries"):
        mem.check_messages(msgs, names=["one"])
    with pytest.raises(InputError, match="list of messages"):
        mem.check_messages("just a string")


def test_context_ratio_does_not_count_dropped_history(mem, uid):
    """With pages dropped for the budget, the ratio compares the history the
    context carries (kept pages' items as text) with what the context costs."""
    mem.add([{"role": "user" if i % 2 == 0 else "assistant",
              "content": f"turn {i}: the heron count at the north pond was {i * 7}"}
             for i in range(300)], user_id=uid)
    mem.compact(user_id=uid, force=True)
    full = mem.context(10**6, user_id=uid, keep_last=0)
    assert full.accounting.dropped_pages == 0
    assert full.accounting.carried_text_tokens == full.accounting.history_text_tokens
    ctx = mem.context(400, user_id=uid, keep_last=0)
    acc = ctx.accounting
    assert acc.dropped_pages >= 1 and acc.pages >= 1
    kept_items = {i for p in ctx.pages for i in p.item_ids}
    assert acc.dropped_items + len(kept_items) == 300
    assert acc.carried_text_tokens == acc.page_text_tokens + 4 * len(kept_items)
    assert acc.ratio == pytest.approx(acc.carried_text_tokens / acc.context_tokens)
    assert acc.ratio < acc.history_text_tokens / acc.context_tokens


def test_unknown_decoder_fails_at_construction(tmp_path):
    from optical_memory.errors import UnknownTargetError

    with pytest.raises(UnknownTargetError, match=r"unknown decoder 'tesserakt'.*tesseract"):
        OpticalMemory(tmp_path / "m.db", decoder="tesserakt")


def _turns(n, secret_at=None):
    return [{"role": "user" if i % 2 == 0 else "assistant",
             "content": ("the locker code is zebra 4471" if i == secret_at else
                         f"turn {i}: herons at the north pond, count {i * 7}")}
            for i in range(n)]


@needs_tesseract
def test_delete_rerenders_shared_pages_without_the_deleted_text(mem, uid):
    """'Forget this' must reach the pixels: a deleted turn that shared a page
    with others is gone from the re-rendered page, which the others keep."""
    scope = mem_scope(uid)
    mem.add(_turns(120, secret_at=40), user_id=uid)
    mem.compact(user_id=uid, force=True)
    secret = next(i for i in mem.store.list_items(scope) if "zebra" in (i.text or ""))
    (shared,) = mem.store.pages_for_item(secret.id, scope)
    neighbours = [i for i in shared.item_ids if i != secret.id]
    assert neighbours, "the secret shares its page"
    before_pages = len(mem.store.list_pages(scope))

    deleted = mem.delete(item_ids=[secret.id], user_id=uid)
    assert deleted.items == 1 and deleted.partial_pages == () and deleted.repaged
    assert mem.store.get_page(shared.id, scope) is None
    pages = mem.store.list_pages(scope)
    assert not any("zebra" in (p.text or "") for p in pages)
    assert len(pages) == before_pages  # same turns less one fit the same pages here
    for item_id in neighbours:  # every other turn is still on exactly one page
        assert len(mem.store.pages_for_item(item_id, scope)) == 1
    new = mem.store.pages_for_item(neighbours[0], scope)[0]
    assert new.id in deleted.repaged
    read = mem.decode(new.id, tier="base", user_id=uid)
    assert "zebra" not in read.text.lower() and "4471" not in read.text
    assert "herons" in read.text and read.precision > 0.9
    assert not any("zebra" in (h.snippet or "") for h in mem.retrieve("zebra locker", user_id=uid))


def test_delete_without_repage_lists_the_partial_pages(mem, uid):
    scope = mem_scope(uid)
    mem.add(_turns(120, secret_at=40), user_id=uid)
    mem.compact(user_id=uid, force=True)
    secret = next(i for i in mem.store.list_items(scope) if "zebra" in (i.text or ""))
    (shared,) = mem.store.pages_for_item(secret.id, scope)
    deleted = mem.delete(item_ids=[secret.id], user_id=uid, repage=False)
    assert deleted.partial_pages == (shared.id,) and deleted.repaged == ()
    assert "zebra" in mem.store.get_page(shared.id, scope).text


def test_delete_keeps_page_order_and_age_of_rerendered_pages(tmp_path, uid):
    """Re-rendered pages take the place of the pages they replace (context
    order, budget cut) and keep their tier; pages far apart are re-rendered
    separately, never merged onto one page."""
    from optical_memory.aging import AgePolicy, Tier

    policy = AgePolicy((Tier("base", max_age=60, scale=1.0), Tier("small", None, scale=0.625)),
                       mode="fade")
    with OpticalMemory(tmp_path / "m.db", render_config=CFG, keep_last=4, aging=policy) as mem:
        scope = mem_scope(uid)
        mem.add(_turns(400), user_id=uid)
        mem.compact(user_id=uid, force=True)
        seq = {i.id: i.seq for i in mem.store.list_items(scope)}

        def order():  # first turn of each context page, in context order
            return [min(seq[i] for i in p.item_ids) for p in
                    mem.context(10**6, user_id=uid, keep_last=0).pages if p.page_id]

        before = order()
        assert before == sorted(before) and len(before) >= 4
        pages = sorted(mem.store.list_pages(scope), key=lambda p: p.seq)
        oldest, newest = pages[0], pages[-1]
        assert (oldest.tier, newest.tier) == ("small", "base")
        victims = [oldest.item_ids[1], newest.item_ids[1]]
        d = mem.delete(item_ids=victims, user_id=uid)
        assert len(d.repaged) == 2 and d.partial_pages == ()
        new = {p.id: p for p in mem.store.list_pages(scope)}
        made = [new[i] for i in d.repaged]
        # each new page holds turns of one old page only, at that page's tier
        for page, old in zip(sorted(made, key=lambda p: min(seq[i] for i in p.item_ids)),
                             (oldest, newest)):
            assert set(page.item_ids) == set(old.item_ids) - set(victims)
            assert page.tier == old.tier
        after = order()
        assert after == sorted(after) and len(after) == len(before)
        # a short budget drops the oldest pages first, the re-rendered oldest among them
        cut = mem.context(600, user_id=uid, keep_last=0)
        assert cut.accounting.dropped_pages > 0
        kept_first = [min(seq[i] for i in p.item_ids) for p in cut.pages if p.page_id]
        assert kept_first == after[len(after) - len(kept_first):]


def test_delete_where_other_items_keep_no_text_reports_partial_pages(tmp_path, uid):
    db = tmp_path / "m.db"
    with OpticalMemory(db, render_config=CFG, keep_text=False) as private:
        ids = private.add(_turns(40), user_id=uid).item_ids
    with OpticalMemory(db, render_config=CFG) as mem:
        scope = mem_scope(uid)
        (page,) = mem.store.pages_for_item(ids[5], scope)
        d = mem.delete(item_ids=[ids[5]], user_id=uid)
        assert d.items == 1 and d.partial_pages == (page.id,) and d.repaged == ()
        assert mem.stats(user_id=uid).items == 39


def test_no_turn_reaches_the_context_twice(mem, uid):
    """A page partly inside the text window (a keep_last above the memory's,
    or recent turns deleted) is not sent as is: its other turns are laid out
    afresh, so each turn is either text or on one image."""
    mem.add(_turns(150), user_id=uid)
    mem.compact(user_id=uid, force=True)
    scope = mem_scope(uid)

    def check(ctx):  # every stored turn exactly once: as text or on one page
        on_pages = [i for p in ctx.pages for i in p.item_ids]
        assert len(on_pages) == len(set(on_pages)), "a turn on two context pages"
        assert ctx.accounting.kept_turns + len(on_pages) == mem.stats(user_id=uid).items

    for keep in (0, 6, 30):  # the memory keeps 6; 30 reaches into paged turns
        ctx = mem.context(10**6, user_id=uid, keep_last=keep)
        check(ctx)
        assert ctx.accounting.kept_turns == keep
    last = [i.id for i in mem.store.list_items(scope, newest_first=True, limit=6)]
    mem.delete(item_ids=last, user_id=uid)
    check(mem.context(10**6, user_id=uid))


def test_empty_target_or_tier_is_an_error_not_the_default(mem, uid):
    from optical_memory.errors import ConfigError, UnknownTargetError

    mem.add(_turns(60), user_id=uid)
    mem.compact(user_id=uid, force=True)
    page = mem.store.list_pages(mem_scope(uid))[0]
    with pytest.raises(UnknownTargetError):
        mem.context(5000, user_id=uid, target="")
    with pytest.raises(ConfigError, match="unknown tier ''"):
        mem.decode(page.id, tier="", user_id=uid)
    with pytest.raises(ConfigError, match="unknown tier ''"):
        mem.tier_png(page.id, "", user_id=uid)
