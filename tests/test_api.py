"""The mem0-style item API on both backends (``store_url`` runs SQLite and,
with OPTICAL_MEMORY_TEST_PG_URL set, PostgreSQL): get / get_all (paginated,
filtered) / update (pages re-rendered) / delete in the wrong scope / reset,
``metadata=`` on add and in retrieve, and AsyncOpticalMemory."""
from __future__ import annotations

import asyncio
import inspect
import json

import pytest

from optical_memory import (
    AsyncOpticalMemory,
    EmptyInputError,
    InputError,
    MemoryItem,
    NotFoundError,
    OpticalMemory,
)
from optical_memory.render import RenderConfig

SMALL = RenderConfig(width=512, height=512, font_size=14, newline_mode="marker")


def chat(n: int, start: int = 0, word: str = "walrus") -> list[dict]:
    return [{"role": "user" if i % 2 == 0 else "assistant",
             "content": f"turn {i} about the {word} number k{i}q and a few more words to fill "
                        f"the page line after line, sentence {i} ends here."}
            for i in range(start, start + n)]


@pytest.fixture
def mem(store_url):
    with OpticalMemory(store_url, render_config=SMALL, keep_last=2) as m:
        yield m


def test_get_returns_text_metadata_and_pages(mem, uid):
    res = mem.add(chat(12), user_id=uid, metadata={"topic": "zoo", "n": 1})
    mem.compact(user_id=uid, force=True)
    first = mem.get(res.item_ids[0], user_id=uid)
    assert isinstance(first, MemoryItem)
    assert first.text.startswith("turn 0 about the walrus")
    assert first.metadata == {"topic": "zoo", "n": 1} and first.role == "user"
    assert first.page_ids and all(mem.get_page(p, user_id=uid) for p in first.page_ids)
    assert mem.get(res.item_ids[-1], user_id=uid).page_ids == ()  # recent: still text
    assert len(repr(first)) < 300 and "walrus" in repr(first)
    assert json.loads(json.dumps(first.to_dict()))["metadata"]["topic"] == "zoo"
    with pytest.raises(NotFoundError) as err:
        mem.get(res.item_ids[0])  # forgot user_id
    assert err.value.missing == (res.item_ids[0],) and "user_id" in str(err.value)


def test_get_all_pages_through_with_cursors_and_filters(mem, uid):
    a = mem.add(chat(4), user_id=uid, metadata={"topic": "a"})
    b = mem.add(chat(3, start=4), user_id=uid, metadata={"topic": "b", "vip": True})
    doc = mem.add_document("# Notes\n\nThe walrus document.", user_id=uid,
                           metadata={"topic": "b"})
    ids = [*a.item_ids, *b.item_ids, *doc.item_ids]
    seen, cursor = [], None
    while True:
        page = mem.get_all(user_id=uid, limit=3, cursor=cursor)
        assert len(page) <= 3
        seen += [it.id for it in page]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == ids
    newest = mem.get_all(user_id=uid, limit=2, newest_first=True)
    rest = mem.get_all(user_id=uid, newest_first=True, cursor=newest.next_cursor)
    assert [i.id for i in newest] + [i.id for i in rest] == ids[::-1]
    assert rest.next_cursor is None
    assert [i.id for i in mem.get_all(user_id=uid, metadata={"topic": "b"})] == ids[4:]
    assert [i.id for i in mem.get_all(user_id=uid, metadata={"topic": "b"},
                                      kinds=["turn"])] == ids[4:7]
    assert [i.id for i in mem.get_all(user_id=uid, roles=["assistant"],
                                      metadata={"vip": True})] == [ids[5]]
    assert [i.id for i in mem.get_all(user_id=uid, kinds=["document"])] == ids[7:]
    assert len(mem.get_all(user_id=uid + "x")) == 0
    with pytest.raises(InputError, match="cursor"):
        mem.get_all(user_id=uid, cursor=newest.next_cursor)  # other direction
    for bad in ("zzz", 5, "a-1"):
        with pytest.raises(InputError):
            mem.get_all(user_id=uid, cursor=bad)
    with pytest.raises(InputError):
        mem.get_all(user_id=uid, limit=0)
    assert json.loads(json.dumps(newest.to_dict()))["next_cursor"] == newest.next_cursor


def test_retrieve_filters_on_metadata(mem, uid):
    mem.add(chat(6, word="narwhal"), user_id=uid, metadata={"src": "email"})
    mem.add(chat(6, start=6, word="narwhal"), user_id=uid, metadata={"src": "slack"})
    mem.add_document("A narwhal memo for the archive.", user_id=uid, metadata={"src": "wiki"})
    mem.compact(user_id=uid, force=True)
    for src in ("email", "slack", "wiki"):
        hits = mem.retrieve("narwhal", k=50, user_id=uid, metadata={"src": src})
        assert hits
        assert {mem.get(h.item_id, user_id=uid).metadata["src"] for h in hits} == {src}
    assert mem.retrieve("narwhal", user_id=uid, metadata={"src": "fax"}) == []
    with pytest.raises(InputError):
        mem.retrieve("narwhal", user_id=uid, metadata={"src": ["email"]})
    with pytest.raises(InputError):  # bad metadata on add stores nothing
        mem.add(chat(1), user_id=uid, metadata={"x": object()})
    assert mem.stats(user_id=uid).items == 13


def test_update_replaces_text_and_rerenders_its_pages(mem, uid):
    res = mem.add(chat(14), user_id=uid)
    mem.compact(user_id=uid, force=True)
    target = res.item_ids[1]
    before = mem.get(target, user_id=uid)
    assert before.page_ids
    neighbours = {i for p in before.page_ids for i in mem.get_page(p, user_id=uid).item_ids}
    up = mem.update(target, "The capybara ledger was moved to shelf nine.", user_id=uid)
    assert up.previous_text == before.text and up.replaced == before.page_ids
    assert up.repaged and not up.partial_pages and up.warnings == ()
    after = mem.get(target, user_id=uid)
    assert after.text == "The capybara ledger was moved to shelf nine."
    assert after.updated_at and after.text_tokens == up.text_tokens
    assert set(after.page_ids) <= set(up.repaged)
    assert all(mem.get_page(p, user_id=uid) is None for p in before.page_ids)
    shown = " ".join(mem.get_page(p, user_id=uid).text for p in after.page_ids)
    assert "capybara" in shown and "k1q" not in shown
    hits = mem.retrieve("capybara ledger", user_id=uid)
    assert hits[0].item_id == target and hits[0].page_id in after.page_ids
    assert mem.retrieve("k1q", user_id=uid) == []
    for other in neighbours - {target}:  # the page's other items are still on pages
        assert mem.get(other, user_id=uid).page_ids
    assert mem.stats(user_id=uid).items == 14


def _turn_beside_a_split_turn(mem, uid) -> tuple[str, str, list[str]]:
    """(a short turn, the long turn split across pages whose first page it
    shares, that split turn's pages) after paging."""
    long = " ".join(f"word{i} of the long heron answer" for i in range(150))
    res = mem.add([{"role": "user", "content": "short opening question about the heron."},
                   {"role": "assistant", "content": long},
                   {"role": "user", "content": "thanks"}, {"role": "assistant", "content": "ok"},
                   {"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}],
                  user_id=uid)
    mem.compact(user_id=uid, force=True)
    target, split = res.item_ids[2], res.item_ids[1]
    own = mem.get(target, user_id=uid).page_ids
    linked = list(mem.get(split, user_id=uid).page_ids)
    assert len(own) == 1 and own[0] in linked and len(linked) > 1  # the layout these test
    return target, split, linked


def test_update_reports_every_page_it_laid_out_again(mem, uid):
    """A page of the item also holds a turn split across two more pages: all
    three are laid out again together, so all three are in ``replaced``."""
    target, split, linked = _turn_beside_a_split_turn(mem, uid)
    up = mem.update(target, "thanks a lot", user_id=uid)
    assert set(up.replaced) == set(linked) and not up.partial_pages
    assert all(mem.get_page(p, user_id=uid) is None for p in up.replaced)
    assert set(mem.get(split, user_id=uid).page_ids) <= set(up.repaged)


def test_delete_reports_every_page_it_laid_out_again(mem, uid):
    """As update: deleting a turn whose page also holds part of a split turn
    lays out all the linked pages again, and ``replaced`` names them all."""
    target, split, linked = _turn_beside_a_split_turn(mem, uid)
    d = mem.delete(item_ids=[target], user_id=uid)
    assert d.items == 1 and set(d.replaced) == set(linked) and not d.partial_pages
    assert all(mem.get_page(p, user_id=uid) is None for p in d.replaced)
    assert set(mem.get(split, user_id=uid).page_ids) <= set(d.repaged)
    assert d.to_dict()["replaced"] == list(d.replaced)


def test_update_metadata_only_and_refusals(mem, uid):
    res = mem.add(chat(2), user_id=uid, metadata={"v": 1})
    item = res.item_ids[0]
    up = mem.update(item, metadata={"v": 2}, user_id=uid)
    assert up.replaced == () and mem.get(item, user_id=uid).metadata == {"v": 2}
    assert mem.get_all(user_id=uid, metadata={"v": 2})[0].id == item
    text = mem.get(item, user_id=uid).text
    with pytest.raises(NotFoundError):
        mem.update(item, "changed", user_id=uid + "x")
    with pytest.raises(NotFoundError):
        mem.update("0" * 32, "changed", user_id=uid)
    with pytest.raises(EmptyInputError):
        mem.update(item, "   ", user_id=uid)
    with pytest.raises(InputError, match="nothing to update"):
        mem.update(item, user_id=uid)
    assert mem.get(item, user_id=uid).text == text


def test_update_keeps_a_turns_tool_calls(mem, uid):
    res = mem.add([{"role": "assistant", "content": "calling",
                    "tool_calls": [{"id": "c1", "name": "lookup", "args": {"q": "x"}}]},
                   {"role": "tool", "tool_call_id": "c1", "content": "found"}], user_id=uid)
    mem.update(res.item_ids[0], "calling the lookup tool", user_id=uid)
    rec = mem.get_item(res.item_ids[0], user_id=uid)
    from optical_memory import turn_message

    msg = turn_message(rec)
    assert msg["content"] == "calling the lookup tool" and msg["tool_calls"][0]["id"] == "c1"


def test_update_needs_kept_text(tmp_path, uid):
    with OpticalMemory(tmp_path / "m.db", render_config=SMALL, keep_text=False,
                       decoder="native") as m:
        res = m.add_document("A short note about otters.", user_id=uid)
        with pytest.raises(InputError, match="keep_text"):
            m.update(res.item_ids[0], "otters", user_id=uid)
        m.update(res.item_ids[0], metadata={"ok": True}, user_id=uid)
        assert m.get(res.item_ids[0], user_id=uid).metadata == {"ok": True}


def test_delete_in_the_wrong_scope_says_so(mem, uid):
    res = mem.add(chat(3), user_id=uid)
    with pytest.raises(NotFoundError) as err:
        mem.delete(item_ids=list(res.item_ids))  # user_id forgotten
    assert err.value.missing == res.item_ids
    with pytest.raises(NotFoundError):  # one unknown id: nothing deleted
        mem.delete(item_ids=[res.item_ids[0], "f" * 32], user_id=uid)
    assert mem.stats(user_id=uid).items == 3
    d = mem.delete(item_ids=[res.item_ids[0], "f" * 32], user_id=uid, missing_ok=True)
    assert d.items == 1 and d.missing == ("f" * 32,)


def test_reset_erases_one_scope_and_refuses_ambiguity(mem, uid):
    mem.add(chat(10), user_id=uid, session_id="s1")
    mem.add(chat(10), user_id=uid, session_id="s2")
    mem.add(chat(4), user_id=uid + "other")
    mem.compact(user_id=uid, force=True)
    with pytest.raises(InputError, match="user_id"):
        mem.reset()
    with pytest.raises(InputError):
        mem.reset(user_id=uid, all_scopes=True)
    d = mem.reset(user_id=uid, session_id="s1")
    assert d.items == 10 and d.pages >= 1
    assert mem.stats(user_id=uid).items == 10
    assert mem.reset(user_id=uid).items == 10
    assert mem.stats(user_id=uid).items == 0 and mem.stats(user_id=uid).pages == 0
    assert mem.reset(user_id=uid).items == 0
    assert mem.stats(user_id=uid + "other").items == 4


def test_reset_all_scopes(tmp_path):
    with OpticalMemory(tmp_path / "m.db", render_config=SMALL, keep_last=2) as m:
        m.add(chat(8), user_id="a")
        m.add_document("A document.", user_id="b", agent_id="x")
        d = m.reset(all_scopes=True)
        assert d.items == 9 and d.pages >= 1
        assert m.stats(user_id="a").items == 0 and m.stats(user_id="b").items == 0


def test_async_memory_has_every_method_and_runs_them(store_url, uid):
    public = {n for n, v in vars(OpticalMemory).items() if callable(v) and not n.startswith("_")}
    from optical_memory.memory_items import ItemMethods

    public |= {n for n, v in vars(ItemMethods).items() if callable(v) and not n.startswith("_")}
    missing = {n for n in public - {"close", "from_config"}
               if not inspect.iscoroutinefunction(getattr(AsyncOpticalMemory, n, None))}
    assert not missing, f"AsyncOpticalMemory lacks {sorted(missing)}"

    async def main() -> None:
        async with AsyncOpticalMemory(store_url, render_config=SMALL, keep_last=2) as am:
            results = await asyncio.gather(*[
                am.add(chat(6, start=10 * n, word=f"w{n}x"), user_id=uid,
                       session_id=f"s{n}", metadata={"n": n}) for n in range(4)])
            assert all(len(r.item_ids) == 6 for r in results)
            assert (await am.stats(user_id=uid)).items == 24
            hits = await am.retrieve("w2x", user_id=uid, metadata={"n": 2})
            assert hits and all(h.item_id in results[2].item_ids for h in hits)
            got = await am.get(results[0].item_ids[0], user_id=uid)
            assert got.metadata == {"n": 0}
            listed = await am.get_all(user_id=uid, metadata={"n": 3}, limit=4)
            assert len(listed) == 4 and listed.next_cursor
            await am.update(results[1].item_ids[0], "async edit", user_id=uid)
            assert (await am.get(results[1].item_ids[0], user_id=uid)).text == "async edit"
            with pytest.raises(NotFoundError):
                await am.delete(item_ids=[results[0].item_ids[0]])
            ctx = await am.context(4000, user_id=uid, session_id="s0")
            assert ctx.messages
            assert (await am.reset(user_id=uid)).items == 24

    asyncio.run(main())


@pytest.mark.asyncio
async def test_async_memory_under_pytest_asyncio(tmp_path, uid):
    am = await AsyncOpticalMemory.open(tmp_path / "m.db", render_config=SMALL)
    try:
        res = await am.add("A note on the async path.", user_id=uid, metadata={"k": "v"})
        assert (await am.get_all(user_id=uid, metadata={"k": "v"}))[0].id == res.item_ids[0]
    finally:
        await am.aclose()
