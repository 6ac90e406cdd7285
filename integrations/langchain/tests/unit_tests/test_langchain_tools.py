"""Tools whose ToolMessage carries page images: search_memory, remember, the
retriever image tool, and the middleware's run-scoped memory tools; the
retriever's page_content is the matched passage's clean source text."""
from __future__ import annotations

import base64
import io

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from PIL import Image

from langchain_optical_memory import (
    OpticalMemoryRetriever,
    create_memory_tools,
    create_retriever_image_tool,
    create_search_tool,
)
from optical_memory import OpticalMemory

FACT = "The Lindholm depot access code is 739215.\nIt changes every March."


@pytest.fixture
def memory(conversation):
    mem = OpticalMemory(":memory:", keep_last=8)
    mem.add([{"role": "user", "content": FACT}], user_id="alice", session_id="s1")
    mem.add(list(conversation[:80]), user_id="alice", session_id="s1")
    yield mem
    mem.close()


def _call(tool, args: dict) -> ToolMessage:
    return tool.invoke({"type": "tool_call", "id": "c1", "name": tool.name, "args": args})


def _png_size(block: dict) -> tuple[int, int]:
    assert block["mime_type"] == "image/png"
    with Image.open(io.BytesIO(base64.b64decode(block["base64"]))) as im:
        return im.size


def test_retriever_page_content_is_the_clean_passage(memory):
    """Before: the whole page's rendered text with » markers (11k characters)."""
    (doc, *_) = OpticalMemoryRetriever(memory=memory, k=2, user_id="alice").invoke(
        "Lindholm depot access code")
    assert doc.page_content == FACT  # real newline, no marker, not the whole page
    assert "»" not in doc.page_content and doc.metadata["exact"] is True
    assert doc.metadata["page_id"] and doc.metadata["image_base64"]


def test_search_tool_message_carries_page_images(memory):
    msg = _call(create_search_tool(memory, user_id="alice", k=2), {"query": "Lindholm depot"})
    assert isinstance(msg, ToolMessage) and isinstance(msg.content, list)
    texts = [b["text"] for b in msg.content if b["type"] == "text"]
    images = [b for b in msg.content if b["type"] == "image"]
    assert FACT in texts[0] and texts[0].startswith("[1] page ")
    assert images and _png_size(images[0]) == memory.master_size
    assert _call(create_search_tool(memory, user_id="bob"), {"query": "Lindholm"}).content[0][
        "text"].startswith("No stored passage")


def test_remember_then_search(memory):
    search, recall, remember = create_memory_tools(memory, user_id="carol")
    assert [t.name for t in (search, recall, remember)] == ["search_memory", "recall_memory",
                                                            "remember"]
    assert _call(remember, {"note": "Carol prefers window seats."}).content.startswith(
        "Remembered (item ")
    assert "window seats" in _call(recall, {"query": "window seats"}).content
    assert "window seats" in _call(search, {"query": "window seats"}).content[0]["text"]


async def test_retriever_image_tool(memory):
    tool = create_retriever_image_tool(OpticalMemoryRetriever(memory=memory, k=2,
                                                              user_id="alice"))
    msg = _call(tool, {"query": "Lindholm depot access code"})
    assert msg.content[0]["text"].endswith(FACT) and msg.content[1]["type"] == "image"
    amsg = await tool.ainvoke({"type": "tool_call", "id": "c2", "name": tool.name,
                               "args": {"query": "Lindholm depot access code"}})
    assert amsg.content == msg.content


def test_middleware_memory_tools_use_the_runs_user(conversation):
    pytest.importorskip("langchain.agents")
    from langchain.agents import create_agent
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langgraph.checkpoint.memory import InMemorySaver

    from langchain_optical_memory import OpticalMemoryMiddleware

    class Model(GenericFakeChatModel):
        def bind_tools(self, tools, **kwargs):
            return self

    replies = [
        AIMessage("", tool_calls=[{"id": "r1", "name": "remember",
                                   "args": {"note": "Dana's badge number is 5521."}}]),
        AIMessage("Saved."),
        AIMessage("", tool_calls=[{"id": "s1", "name": "search_memory",
                                   "args": {"query": "badge number"}}]),
        AIMessage("It is 5521."),
    ]
    mem = OpticalMemory(":memory:")
    mw = OpticalMemoryMiddleware(max_tokens=4000, memory=mem, memory_tools=True)
    assert [t.name for t in mw.tools] == ["search_memory", "remember"]
    agent = create_agent(Model(messages=iter(replies)), middleware=[mw],
                         checkpointer=InMemorySaver())
    agent.invoke({"messages": [HumanMessage("remember my badge: 5521")]},
                 {"configurable": {"thread_id": "t1", "user_id": "dana"}})
    out = agent.invoke({"messages": [HumanMessage("what is my badge?")]},
                       {"configurable": {"thread_id": "t2", "user_id": "dana"}})
    tool_msg = next(m for m in out["messages"] if isinstance(m, ToolMessage))
    assert "5521" in tool_msg.content[0]["text"]  # found from another thread: user-level
    assert mem.retrieve("badge", user_id="dana")
    assert not mem.retrieve("badge", user_id="default")
