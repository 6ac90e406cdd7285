"""OpticalMemoryMiddleware inside langchain.agents.create_agent, with a
recording fake chat model: pages reach the model, state stays text, every
turn is stored, tool calls stay with their results."""
from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool

from optical_memory import InputError, OpticalMemory

pytest.importorskip("langchain.agents", reason="the middleware needs the 'agents' extra")
from langchain.agents import create_agent
from langgraph.checkpoint.memory import InMemorySaver

from langchain_optical_memory import OpticalMemoryMiddleware

SYSTEM = "You are a careful operations assistant."


@tool
def lookup_vault(name: str) -> str:
    """Look up the passphrase of a vault."""
    return f"vault {name}: passphrase amber falcon"


def _replies():
    return [
        AIMessage("", tool_calls=[{"id": "call_vault_1", "name": "lookup_vault",
                                   "args": {"name": "Kestrel"}}]),
        AIMessage("The passphrase is amber falcon."),
    ]


def _images(message) -> list[dict]:
    if not isinstance(message.content, list):
        return []
    return [b for b in message.content if isinstance(b, dict) and b.get("type") == "image"]


def test_agent_model_receives_pages_and_state_keeps_text(conversation, recorder):
    model = recorder(_replies())
    memory = OpticalMemory(":memory:")
    mw = OpticalMemoryMiddleware(max_tokens=5000, keep_last=6, memory=memory, session_id="s1")
    agent = create_agent(model, tools=[lookup_vault], system_prompt=SYSTEM, middleware=[mw])
    history = [*conversation[:100], HumanMessage("What is the Kestrel vault passphrase?")]
    result = agent.invoke({"messages": history})

    assert len(model.calls) == 2
    for sent in model.calls:
        assert isinstance(sent[0], SystemMessage) and sent[0].content == SYSTEM
        images = _images(sent[1])
        assert len(images) >= 2
        assert all(set(b) == {"type", "base64", "mime_type"} and b["mime_type"] == "image/png"
                   for b in images)
        assert len(sent) < 20  # 100 turns became a page message + recent turns
    # second call: the tool result travels with its call, as text
    second = model.calls[1]
    assert isinstance(second[-1], ToolMessage) and second[-1].tool_call_id == "call_vault_1"
    assert any(isinstance(m, AIMessage) and m.tool_calls
               and m.tool_calls[0]["id"] == "call_vault_1" for m in second)

    msgs = result["messages"]
    assert msgs[-1].content == "The passphrase is amber falcon."
    assert not any(_images(m) for m in msgs)  # the graph state is untouched text
    assert [m.content for m in msgs[:101]] == [m.content for m in history]
    # every turn is stored, the final answer included
    assert memory.stats(session_id="s1").items == len(msgs)
    meta = [m.response_metadata["optical_memory"] for m in msgs[101:] if isinstance(m, AIMessage)]
    assert len(meta) == 2
    for call in meta:
        assert call["compressed"] and call["tokens_out"] <= 5000
        assert call["tokens_out"] < call["tokens_in"]
        assert call["accounting"]["pages"] >= 2 and call["scope"]["session_id"] == "s1"


def test_thread_id_scopes_conversations(conversation, recorder):
    model = recorder([AIMessage("one"), AIMessage("two"), AIMessage("three")])
    memory = OpticalMemory(":memory:")
    mw = OpticalMemoryMiddleware(max_tokens=4000, memory=memory)
    agent = create_agent(model, middleware=[mw], checkpointer=InMemorySaver())
    cfg = {"configurable": {"thread_id": "t-1"}}
    agent.invoke({"messages": list(conversation[:60])}, cfg)
    agent.invoke({"messages": [HumanMessage("and now?")]}, cfg)
    assert memory.stats(session_id="t-1").items == 60 + 1 + 1 + 1
    assert _images(model.calls[1][0])
    # another thread is another conversation
    agent.invoke({"messages": [HumanMessage("fresh start")]},
                 {"configurable": {"thread_id": "t-2"}})
    assert memory.stats(session_id="t-2").items == 2
    assert model.calls[2] == [HumanMessage("fresh start", id=model.calls[2][0].id)]


def test_runs_without_a_thread_get_a_scope_each(recorder):
    """Before: a thread-less run after a threaded one (or after another
    thread-less run) saw the other conversation's turns and raised."""
    model = recorder([AIMessage("a1"), AIMessage("a2"), AIMessage("a3")])
    memory = OpticalMemory(":memory:")
    mw = OpticalMemoryMiddleware(max_tokens=4000, memory=memory)
    agent = create_agent(model, middleware=[mw])
    agent.invoke({"messages": [HumanMessage("hello in thread one")]},
                 {"configurable": {"thread_id": "t1"}})
    agent.invoke({"messages": [HumanMessage("hello without a thread")]})
    agent.invoke({"messages": [HumanMessage("another run, no thread either")]})
    assert len(model.calls) == 3
    sessions = {i.scope.session_id for i in memory.store.list_items(mw.scope())}
    assert len(sessions) == 3 and "t1" in sessions
    assert memory.stats().items == 6  # each run: its question and the reply


def test_trigger_tokens_leaves_short_histories_alone(conversation, recorder):
    model = recorder([AIMessage("ok")])
    mw = OpticalMemoryMiddleware(max_tokens=4000, trigger_tokens=1_000_000)
    agent = create_agent(model, middleware=[mw])
    result = agent.invoke({"messages": list(conversation[:40])})
    (sent,) = model.calls
    assert len(sent) == 40 and not any(_images(m) for m in sent)
    meta = result["messages"][-1].response_metadata["optical_memory"]
    assert meta["reason"] == "below trigger" and meta["tokens_out"] == meta["tokens_in"]


async def test_async_agent(conversation, recorder):
    model = recorder(_replies())
    mw = OpticalMemoryMiddleware(max_tokens=5000, session_id="a1")
    agent = create_agent(model, tools=[lookup_vault], middleware=[mw])
    result = await agent.ainvoke({"messages": [*conversation[:80], HumanMessage("vault?")]})
    assert result["messages"][-1].content == "The passphrase is amber falcon."
    assert all(_images(sent[0]) for sent in model.calls)
    assert mw.memory.stats(session_id="a1").items == len(result["messages"])


def test_bad_arguments_raise():
    with pytest.raises(InputError, match="max_tokens"):
        OpticalMemoryMiddleware(max_tokens=0)
    with pytest.raises(InputError, match="trigger_tokens"):
        OpticalMemoryMiddleware(max_tokens=10, trigger_tokens=-1)
    with OpticalMemory(":memory:") as mem, pytest.raises(InputError, match="tokenizer"):
        OpticalMemoryMiddleware(max_tokens=10, memory=mem, tokenizer="cl100k_base")
