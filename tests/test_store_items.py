"""Store-level item API (on every backend through the ``store`` fixture):
metadata filters on ``list_items`` and ``search``, paging by ``before_seq``,
``roles``, ``item_pages``, ``update_item``, ``delete(missing_ok=...)``."""
from __future__ import annotations

import pytest

from optical_memory.errors import InputError
from optical_memory.store import NewItem, NotFoundError, Scope
from optical_memory.store.metadata import check_filter, check_metadata
from tests.test_store import page_of, turn


def with_meta(text: str, metadata: dict, role: str = "user") -> NewItem:
    return turn(text, role=role, meta={"metadata": check_metadata(metadata)})


METAS = [
    {"topic": "billing", "n": 1, "vip": True, "note": None},
    {"topic": "billing", "n": 1.5, "vip": False},
    {"topic": "shipping", "n": 2, "tags": ["a", "b"], "nested": {"x": 1}},
    {"topic": "Billing", "n": "1", "vip": 1},
    {"topic": "billing é", "key with space": "yes", "a.b": "dot", "类别": "中文"},
    {},
]


@pytest.fixture
def filled(store, uid):
    scope = Scope(uid)
    items = [with_meta(f"alpha item {i} words", m, role="user" if i % 2 else "assistant")
             for i, m in enumerate(METAS)]
    ids, _ = store.add_items(items, scope=scope)
    return scope, ids


@pytest.mark.parametrize(("flt", "want"), [
    ({"topic": "billing"}, [0, 1]),
    ({"topic": "billing", "vip": True}, [0]),
    ({"vip": True}, [0]),           # True is not 1
    ({"vip": 1}, [3]),              # 1 is not True
    ({"n": 1}, [0]),                # 1 == 1.0, not "1"
    ({"n": 1.0}, [0]),
    ({"n": 1.5}, [1]),
    ({"n": "1"}, [3]),
    ({"note": None}, [0]),          # explicit null only, not a missing key
    ({"topic": "billing é"}, [4]),
    ({"key with space": "yes"}, [4]),
    ({"a.b": "dot"}, [4]),          # a dot is part of the key, not a path
    ({"a": {"b": "dot"}}, None),    # (refused: filters compare scalars)
    ({"类别": "中文"}, [4]),
    ({"tags": "a"}, []),            # lists are stored, not matched by a scalar
    ({"absent": "x"}, []),
    ({}, [0, 1, 2, 3, 4, 5]),
])
def test_metadata_filters_agree_on_every_backend(store, filled, flt, want):
    scope, ids = filled
    if want is None:
        with pytest.raises(InputError):
            store.list_items(scope, metadata=flt)
        return
    got = [it.id for it in store.list_items(scope, metadata=flt)]
    assert got == [ids[i] for i in want]
    hits = store.search("alpha", scope, k=50, metadata=flt)
    assert sorted(h.item_id for h in hits) == sorted(ids[i] for i in want)


def test_metadata_reads_back_and_is_scoped(store, filled, uid):
    scope, ids = filled
    assert store.get_item(ids[2], scope).metadata == METAS[2]
    assert store.get_item(ids[5], scope).metadata == {}
    assert store.list_items(Scope(uid + "x"), metadata={"topic": "billing"}) == []


@pytest.mark.parametrize("bad", [
    [("a", 1)], {"": 1}, {'qu"ote': 1}, {"back\\slash": 1}, {1: "x"}, {"x": object()},
    {"x": float("nan")}, {f"k{i}": i for i in range(65)}, {"big": "x" * 20_000},
])
def test_bad_metadata_is_refused(bad):
    with pytest.raises(InputError):
        check_metadata(bad)


@pytest.mark.parametrize("bad", [
    ["topic"], {"x": [1]}, {"x": {"$in": [1]}}, {"x": float("inf")}, {"x": 2**60},
    {'q"': "x"},
])
def test_bad_filters_are_refused(store, uid, bad):
    with pytest.raises(InputError):
        check_filter(bad)
    with pytest.raises(InputError):
        store.list_items(Scope(uid), metadata=bad)


def test_roles_and_before_seq_page_through(store, filled):
    scope, ids = filled
    users = store.list_items(scope, roles=["user"])
    assert [it.id for it in users] == [ids[i] for i in (1, 3, 5)]
    assert store.list_items(scope, roles=[]) == []
    newest = store.list_items(scope, newest_first=True, limit=2)
    assert [it.id for it in newest] == [ids[5], ids[4]]
    older = store.list_items(scope, newest_first=True, limit=2, before_seq=newest[-1].seq)
    assert [it.id for it in older] == [ids[3], ids[2]]
    with pytest.raises(InputError):
        store.list_items(scope, before_seq=-1)


def test_item_pages_maps_items_to_visible_pages(store, uid):
    scope = Scope(uid)
    a, b, c = turn("alpha one"), turn("beta two"), turn("gamma three")
    p1, p2 = page_of(a, b), page_of(b)
    store.add_items([a, b, c], [p1, p2], scope=scope)
    got = store.item_pages([a.id, b.id, c.id, "nope"], scope)
    assert got == {a.id: (p1.id,), b.id: (p1.id, p2.id), c.id: ()}
    assert store.item_pages([a.id], Scope(uid + "x")) == {}


def test_update_item_replaces_text_and_reindexes(store, uid):
    scope = Scope(uid)
    a, b = turn("alpha original words"), turn("beta other words")
    page = page_of(a, b)
    store.add_items([a, b], [page], scope=scope)
    new = "zeta replaced words"
    from optical_memory.store import text_hash
    pages = store.update_item(a.id, scope, text=new, text_tokens=3,
                              content_hash=text_hash(new), meta={"metadata": {"v": 2}})
    assert pages == [page.id]
    rec = store.get_item(a.id, scope)
    assert rec.text == new and rec.text_tokens == 3 and rec.metadata == {"v": 2}
    assert [h.item_id for h in store.search("zeta", scope)] == [a.id]
    assert store.search("original", scope) == []
    assert [h.item_id for h in store.search("beta", scope)] == [b.id]  # others untouched
    with pytest.raises(NotFoundError) as err:
        store.update_item(a.id, Scope(uid + "x"), text="x", text_tokens=1,
                          content_hash=text_hash("x"), meta={})
    assert err.value.missing == (a.id,)
    assert store.get_item(a.id, scope).text == new


def test_delete_names_missing_ids_or_refuses(store, uid):
    scope = Scope(uid)
    a, b = turn("alpha"), turn("beta")
    store.add_items([a, b], scope=scope)
    with pytest.raises(NotFoundError) as err:
        store.delete(Scope(uid + "x"), item_ids=[a.id], missing_ok=False)
    assert err.value.missing == (a.id,) and "user_id" in str(err.value)
    with pytest.raises(NotFoundError):  # one unknown id: nothing deleted
        store.delete(scope, item_ids=[a.id, "f" * 32], missing_ok=False)
    assert store.stats(scope).items == 2
    d = store.delete(scope, item_ids=[a.id, "f" * 32])
    assert d.items == 1 and d.missing == ("f" * 32,)
    assert d.to_dict()["missing"] == ["f" * 32]
