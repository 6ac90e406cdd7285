"""OpticalMemoryStore: LangGraph's BaseStore on an optical memory
(namespaces → scopes, search → retrieval), used by a graph node."""
from __future__ import annotations

import pytest

pytest.importorskip("langgraph.store.base")
from langgraph.store.base import BaseStore

from langchain_optical_memory.store import OpticalMemoryStore, namespace_of, scope_of
from optical_memory import InputError, OpticalMemory
from optical_memory.scope import Scope


@pytest.fixture
def store():
    mem = OpticalMemory(":memory:", keep_last=2)
    yield OpticalMemoryStore(mem)
    mem.close()


def test_put_get_replace_delete(store):
    assert isinstance(store, BaseStore)
    store.put(("alice",), "seat", {"text": "Alice prefers window seats.", "kind": "pref"})
    item = store.get(("alice",), "seat")
    assert item.value == {"text": "Alice prefers window seats.", "kind": "pref"}
    assert item.namespace == ("alice",) and item.key == "seat"
    store.put(("alice",), "seat", {"text": "Alice now prefers aisle seats."})
    assert store.get(("alice",), "seat").value == {"text": "Alice now prefers aisle seats."}
    assert len(store.search(("alice",))) == 1
    store.delete(("alice",), "seat")
    assert store.get(("alice",), "seat") is None
    assert store.get(("bob",), "seat") is None


def test_namespaces_map_to_scopes_and_users_stay_apart(store):
    assert scope_of(("u", "a", "notes")) == Scope("u", "a", "store/notes")
    assert namespace_of(Scope("u", "a", "store/notes")) == ("u", "a", "notes")
    assert namespace_of(Scope("u", None, "thread-1")) is None
    store.put(("alice", "travel"), "k1", {"text": "The Oslo hotel is the Grand on Karl Johans."})
    store.put(("alice", "travel", "2025"), "k2", {"text": "Flight LH 860 leaves at 07:15."})
    store.put(("bob", "travel"), "k1", {"text": "Bob's Oslo hotel is the Thon Opera."})
    hits = store.search(("alice",), query="Oslo hotel")
    assert [h.key for h in hits] == ["k1"] and "Grand" in hits[0].value["text"]
    assert hits[0].score is not None
    assert {h.key for h in store.search(("alice", "travel"))} == {"k1", "k2"}
    assert [h.key for h in store.search(("alice", "travel", "2025"))] == ["k2"]
    assert store.list_namespaces(prefix=("alice",)) == [("alice", "travel"),
                                                        ("alice", "travel", "2025")]
    assert store.list_namespaces(prefix=("alice",), max_depth=2) == [("alice", "travel")]
    assert [h.key for h in store.search(("bob",), query="hotel")] == ["k1"]
    assert store.search(("alice",), filter={"text": "Flight LH 860 leaves at 07:15."})[0].key \
        == "k2"
    with pytest.raises(InputError, match="namespace"):
        store.put(("a", "b", "c", "d"), "k", {"x": 1})
    with pytest.raises(InputError, match="prefix"):
        store.list_namespaces()


def test_old_values_are_paged_and_still_found(store):
    for i in range(40):
        store.put(("carol",), f"note-{i}", {"text": f"Note {i}: the courier code is C{i:03d} "
                                                    + "and the depot opens at nine. " * 30})
    assert store.memory.list_pages(user_id="carol")  # older values now live on page images
    (hit,) = store.search(("carol",), query="courier code C007", limit=1)
    assert hit.key == "note-7" and "C007" in hit.value["text"]


async def test_async_and_in_a_graph(store):
    from langgraph.graph import START, StateGraph
    from typing_extensions import TypedDict

    class S(TypedDict):
        q: str
        a: str

    def node(state: S, *, store: BaseStore) -> dict:
        store.put(("dora",), "last", {"text": state["q"]})
        found = store.search(("dora",), query=state["q"])
        return {"a": found[0].value["text"]}

    g = StateGraph(S)
    g.add_node("n", node)
    g.add_edge(START, "n")
    graph = g.compile(store=store)
    assert (await graph.ainvoke({"q": "purple lighthouse", "a": ""}))["a"] == "purple lighthouse"
    await store.aput(("dora",), "x", {"text": "async put"})
    assert (await store.aget(("dora",), "x")).value == {"text": "async put"}
