"""OpticalMemoryRetriever: Documents carry page text, image, ids, scope, tier, score."""
from __future__ import annotations

import base64
import io

import pytest
from langchain_core.documents import Document
from PIL import Image

from langchain_optical_memory import OpticalMemoryRetriever
from optical_memory import InputError, OpticalMemory


@pytest.fixture
def memory(conversation):
    mem = OpticalMemory(":memory:", keep_last=8)
    mem.add([{"role": "user", "content": "The passphrase for vault Kestrel is amber falcon."}],
            user_id="alice", session_id="s1")
    mem.add(list(conversation[:80]), user_id="alice", session_id="s1")
    mem.add([{"role": "user", "content": "Remember: the quartz walrus moved to Tallinn."}],
            user_id="alice", session_id="s1")
    mem.add([{"role": "user", "content": "Bob's vault Kestrel passphrase is teal otter."}],
            user_id="bob")
    yield mem
    mem.close()


def test_paged_match_gives_page_document(memory):
    docs = OpticalMemoryRetriever(memory=memory, k=3, user_id="alice").invoke("Kestrel passphrase")
    assert docs and all(isinstance(d, Document) for d in docs)
    top = docs[0]
    assert "amber falcon" in top.page_content  # the page's (source) text
    meta = top.metadata
    assert meta["mime_type"] == "image/png"
    with Image.open(io.BytesIO(base64.b64decode(meta["image_base64"]))) as im:
        assert im.size == (meta["width"], meta["height"])
    assert top.id == meta["page_id"] and meta["item_id"] in meta["item_ids"]
    assert meta["scope"] == {"user_id": "alice", "agent_id": None, "session_id": "s1"}
    assert meta["tier"] == "base"
    assert isinstance(meta["score"], float)
    start, end = meta["span"]
    assert 0 <= start < end
    assert not any("teal otter" in d.page_content for d in docs)  # bob's stays bob's


def test_recent_turn_gives_text_document_without_image(memory):
    (doc,) = OpticalMemoryRetriever(memory=memory, k=1, user_id="alice").invoke("quartz walrus")
    assert doc.page_content == "Remember: the quartz walrus moved to Tallinn."
    assert doc.metadata["page_id"] is None and "image_base64" not in doc.metadata


def test_one_document_per_page_and_k(memory):
    retriever = OpticalMemoryRetriever(memory=memory, k=5, user_id="alice")
    docs = retriever.invoke("the")
    ids = [d.id for d in docs]
    assert len(ids) == len(set(ids)) and 1 <= len(docs) <= 5
    assert len(retriever.invoke("the", k=1)) == 1
    assert retriever.invoke("the", k=0) == []
    with pytest.raises(InputError):
        retriever.invoke("the", k=-2)


def test_include_image_false(memory):
    docs = OpticalMemoryRetriever(memory=memory, user_id="alice",
                                  include_image=False).invoke("Kestrel")
    assert docs and all("image_base64" not in d.metadata for d in docs)


async def test_async_matches_sync(memory):
    retriever = OpticalMemoryRetriever(memory=memory, k=3, user_id="alice")
    sync = retriever.invoke("Kestrel passphrase")
    async_ = await retriever.ainvoke("Kestrel passphrase")
    assert [d.id for d in async_] == [d.id for d in sync]


def test_keep_text_false_serves_read_back():
    with OpticalMemory(":memory:", keep_text=False) as mem:
        mem.add("Invoice 4471 was refunded to Dolores Ibarra on Tuesday.")
        (doc,) = OpticalMemoryRetriever(memory=mem, k=1).invoke("refunded")
        # the page's read-back, not stored text: what the memory's reader reads
        # (at 11 px a capital I and an l differ by a third of a pixel, so the
        # name may come back as "lbarra": README, "A reader made for our own pages")
        assert "refunded" in doc.page_content and "Dolores" in doc.page_content
        assert "barra" in doc.page_content and "4471" in doc.page_content
        assert doc.metadata["image_base64"]


def test_non_string_query_is_a_typed_error(memory):
    retriever = OpticalMemoryRetriever(memory=memory, user_id="alice")
    for bad in (None, 123, ["vault"]):
        with pytest.raises(InputError, match="query must be a string"):
            retriever.invoke(bad)
