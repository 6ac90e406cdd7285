"""OpticalMemoryMiddleware in real LangGraph use: ``create_agent`` with a
checkpointer, state edits (``RemoveMessage``), ``SummarizationMiddleware``
before it, thread-less runs reusing message objects, concurrent threads of
different users from the config, never more tokens out than in, and the
accounting of each call in its reply's ``response_metadata``.

The chat models are scripted fakes (no network)."""
from __future__ import annotations

import asyncio
import base64
import io
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    RemoveMessage,
    SystemMessage,
)
from langchain_core.outputs import ChatGeneration, ChatResult
from PIL import Image
from pydantic import Field

from optical_memory import OpticalMemory

pytest.importorskip("langchain.agents", reason="the middleware needs the 'agents' extra")
from langchain.agents import create_agent
from langchain.agents.middleware import SummarizationMiddleware
from langgraph.checkpoint.memory import InMemorySaver

from langchain_optical_memory import OpticalMemoryMiddleware
from langchain_optical_memory._messages import split_system, to_memory_message
from langchain_optical_memory._sync import identity
from langchain_optical_memory._targets import infer_target

KEY = "optical_memory"


class EchoModel(BaseChatModel):
    """Answers every call with ``re: <the last human text>``; records calls."""

    model_name: str = "echo-1"
    calls: list[list[BaseMessage]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "echo"

    def bind_tools(self, tools: Any, **kwargs: Any) -> EchoModel:
        return self

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        self.calls.append(list(messages))
        last = next((m for m in reversed(messages) if isinstance(m, HumanMessage)
                     and isinstance(m.content, str)), None)
        text = f"re: {last.content[:60]}" if last is not None else "re: (pages)"
        return ChatResult(generations=[ChatGeneration(message=AIMessage(text))])


def _images(message: BaseMessage) -> list[dict]:
    if not isinstance(message.content, list):
        return []
    return [b for b in message.content if isinstance(b, dict) and b.get("type") == "image"]


def _stored(mem: OpticalMemory, **scope: Any) -> list[str]:
    from optical_memory import turn_message

    return [identity(turn_message(t)) for t in mem.list_turns(**scope)]


def _expected(messages: list[BaseMessage]) -> list[str]:
    _, history = split_system(messages)
    return [identity(to_memory_message(m)) for m in history]


def _ai_meta(messages: list[BaseMessage]) -> list[dict]:
    return [m.response_metadata[KEY] for m in messages
            if isinstance(m, AIMessage) and KEY in m.response_metadata]


def test_remove_message_edits_resync_the_memory(conversation):
    """Before: after RemoveMessage every later run raised 'scope holds 82 turns
    but the conversation has 73 messages'."""
    mem = OpticalMemory(":memory:")
    model = EchoModel()
    mw = OpticalMemoryMiddleware(max_tokens=4000, memory=mem, keep_last=6)
    agent = create_agent(model, middleware=[mw], checkpointer=InMemorySaver())
    cfg = {"configurable": {"thread_id": "edit-1"}}
    agent.invoke({"messages": list(conversation[:80])}, cfg)
    state = agent.get_state(cfg).values["messages"]
    assert _stored(mem, session_id="edit-1") == _expected(state)
    # forget nine turns, in the middle and at the start
    doomed = [state[i] for i in (0, 1, 30, 31, 32, 33, 50, 51, 52)]
    secret = str(state[30].content)
    agent.update_state(cfg, {"messages": [RemoveMessage(id=m.id) for m in doomed]})
    out = agent.invoke({"messages": [HumanMessage("what changed?")]}, cfg)
    state = out["messages"]
    assert len(state) == 81 - 9 + 2
    assert _stored(mem, session_id="edit-1") == _expected(state)
    # the removed turns are gone from the memory, pixels and search included
    words = [w for w in secret.split() if len(w) > 6][:3]
    for hit in mem.retrieve(" ".join(words), session_id="edit-1", k=20):
        assert hit.text is None or secret[:80] not in hit.text
    # and the model was sent pages of what is left, within budget
    meta = _ai_meta(state)[-1]
    assert meta["compressed"] and meta["tokens_out"] <= 4000 < meta["tokens_in"]
    # trimming the state to its last turns (an everyday edit) also re-syncs
    agent.update_state(cfg, {"messages": [RemoveMessage(id=m.id) for m in state[:-6]]})
    agent.invoke({"messages": [HumanMessage("and now?")]}, cfg)
    state = agent.get_state(cfg).values["messages"]
    assert len(state) == 8 and _stored(mem, session_id="edit-1") == _expected(state)


def test_summarization_middleware_before_it(conversation):
    mem = OpticalMemory(":memory:")
    summarizer = GenericFakeChatModel(messages=iter(
        [AIMessage(f"SUMMARY {i}: the team discussed ledger-sync and billing-api.")
         for i in range(10)]))
    model = EchoModel()
    summarize = SummarizationMiddleware(summarizer, trigger=("messages", 60),
                                        keep=("messages", 20))
    mw = OpticalMemoryMiddleware(max_tokens=3000, memory=mem, keep_last=6)
    agent = create_agent(model, middleware=[summarize, mw], checkpointer=InMemorySaver())
    cfg = {"configurable": {"thread_id": "sum-1"}}
    agent.invoke({"messages": list(conversation[:50])}, cfg)
    assert len(_stored(mem, session_id="sum-1")) == 51
    out = agent.invoke({"messages": list(conversation[50:90])}, cfg)  # 91 > 60: summarized
    state = out["messages"]
    assert any("SUMMARY" in str(m.content) for m in state)
    assert len(state) < 40
    assert _stored(mem, session_id="sum-1") == _expected(state)
    out = agent.invoke({"messages": [HumanMessage("next step?")]}, cfg)
    assert _stored(mem, session_id="sum-1") == _expected(out["messages"])


def test_threadless_runs_reusing_message_objects(conversation):
    """Before: LangGraph assigned ids in place and the second run over the
    same list (keyed by its first message id) crashed."""
    mem = OpticalMemory(":memory:")
    model = EchoModel()
    mw = OpticalMemoryMiddleware(max_tokens=3000, memory=mem, keep_last=4)
    agent = create_agent(model, middleware=[mw])
    prefix = [HumanMessage("Example: what is 2+2?"), AIMessage("4"), *conversation[:60]]
    first = agent.invoke({"messages": [*prefix, HumanMessage("first question")]})
    assert all(m.id for m in prefix)  # ids assigned in place
    second = agent.invoke({"messages": [*prefix, HumanMessage("second question")]})
    chunks = list(agent.stream({"messages": [*prefix, HumanMessage("third")]},
                               stream_mode="values"))
    assert chunks and len(model.calls) == 3
    assert first["messages"][-1].content == "re: first question"
    assert second["messages"][-1].content == "re: second question"
    final = chunks[-1]["messages"]
    assert final[-1].content == "re: third"
    session = mw.scope(prefix).session_id
    assert _stored(mem, session_id=session) == _expected(final)


async def test_threadless_async_runs_reuse_one_list(conversation):
    mw = OpticalMemoryMiddleware(max_tokens=3000, keep_last=4)
    agent = create_agent(EchoModel(), middleware=[mw])
    msgs = [*conversation[:40], HumanMessage("again?")]
    a = await agent.ainvoke({"messages": msgs})
    chunks = [c async for c in agent.astream({"messages": msgs}, stream_mode="values")]
    assert a["messages"][-1].content == chunks[-1]["messages"][-1].content == "re: again?"


def test_five_concurrent_threads_with_users_from_config(conversation):
    mem = OpticalMemory(":memory:")
    model = EchoModel()
    mw = OpticalMemoryMiddleware(max_tokens=2500, memory=mem, keep_last=4)
    agent = create_agent(model, middleware=[mw], checkpointer=InMemorySaver())
    users = [f"user-{i}" for i in range(5)]

    def run(i: int) -> list[BaseMessage]:
        cfg = {"configurable": {"thread_id": f"t{i}", "user_id": users[i]}}
        history = [HumanMessage(f"I am {users[i]}; my locker code is {1000 + i}."),
                   *conversation[i * 20: i * 20 + 60]]
        agent.invoke({"messages": history}, cfg)
        return agent.invoke({"messages": [HumanMessage(f"{users[i]} asks again")]},
                            cfg)["messages"]

    with ThreadPoolExecutor(5) as pool:
        states = list(pool.map(run, range(5)))
    for i, state in enumerate(states):
        assert state[-1].content == f"re: {users[i]} asks again"
        assert _stored(mem, user_id=users[i], session_id=f"t{i}") == _expected(state)
        # nothing of another user is in this user's memory
        for j in range(5):
            hits = mem.retrieve(f"locker code {1000 + j}", user_id=users[i])
            assert all(str(1000 + j) not in (h.text or "") for h in hits) or i == j
        for meta in _ai_meta(state):
            assert meta["scope"]["user_id"] == users[i]
            assert meta["tokens_out"] <= meta["tokens_in"]
    assert mem.stats(user_id="default").items == 0


@dataclass
class Ctx:
    user_id: str


def test_user_from_runtime_context(conversation):
    mem = OpticalMemory(":memory:")
    mw = OpticalMemoryMiddleware(max_tokens=3000, memory=mem, user_id="fallback")
    agent = create_agent(EchoModel(), middleware=[mw], context_schema=Ctx,
                         checkpointer=InMemorySaver())
    cfg = {"configurable": {"thread_id": "c1", "user_id": "from-config"}}
    agent.invoke({"messages": list(conversation[:30])}, cfg, context=Ctx(user_id="ann"))
    assert mem.stats(user_id="ann").items == 31
    assert mem.stats(user_id="from-config").items == 0
    assert mem.stats(user_id="fallback").items == 0
    agent.invoke({"messages": [HumanMessage("hi")]}, {"configurable": {"thread_id": "c2"}},
                 context=Ctx(user_id="bob"))
    assert mem.stats(user_id="bob").items == 2


def test_never_more_tokens_out_than_in_and_per_call_metadata(conversation):
    """Before: 12 short messages (96 text tokens) were sent as 320 tokens."""
    model = EchoModel()
    mw = OpticalMemoryMiddleware(max_tokens=8000, keep_last=4)
    agent = create_agent(model, middleware=[mw], checkpointer=InMemorySaver())
    short = [HumanMessage(f"q{i}") if i % 2 == 0 else AIMessage(f"a{i}") for i in range(11)]
    out = agent.invoke({"messages": short}, {"configurable": {"thread_id": "short"}})
    assert model.calls[-1] == out["messages"][:11]  # sent as it came
    (meta,) = _ai_meta(out["messages"])
    assert not meta["compressed"] and meta["reason"] == "no saving"
    assert meta["tokens_out"] == meta["tokens_in"]
    # a long thread: every call compressed, each reply carrying its own accounting
    cfg = {"configurable": {"thread_id": "long"}}
    for n in (40, 80, 120):
        agent.invoke({"messages": list(conversation[n - 40:n])}, cfg)
    metas = _ai_meta(agent.get_state(cfg).values["messages"])
    assert len(metas) == 3
    ins = [m["tokens_in"] for m in metas]
    assert ins == sorted(ins) and len(set(ins)) == 3  # per call, not one shared value
    for m in metas:
        assert m["compressed"] and m["tokens_out"] <= min(8000, m["tokens_in"])
        assert m["accounting"]["context_tokens"] == m["tokens_out"]
    assert not hasattr(mw, "last_accounting")


def test_target_inferred_from_the_bound_model(conversation):
    model = EchoModel(model_name="gpt-4o-2024-08-06")
    mw = OpticalMemoryMiddleware(max_tokens=6000, keep_last=4)
    agent = create_agent(model, middleware=[mw])
    out = agent.invoke({"messages": list(conversation[:120])})
    (meta,) = _ai_meta(out["messages"])
    assert meta["target"] == "openai:gpt-4o" == meta["accounting"]["target"]
    assert mw.memory.target.name == "openai:gpt-4o"
    page = model.calls[0][0]
    raw = base64.b64decode(_images(page)[0]["base64"])
    with Image.open(io.BytesIO(raw)) as im:
        assert im.size == (512, 2048)  # gpt-4o's page, not DeepSeek's 1024²
    # the table, and the override
    assert infer_target(EchoModel(model_name="claude-sonnet-4-5")) == "anthropic:claude"
    assert infer_target(EchoModel(model_name="gemini-2.5-flash")) == "gemini"
    assert infer_target(EchoModel(model_name="Qwen2.5-VL-7B-Instruct")) == "qwen2.5-vl"
    assert infer_target(EchoModel(model_name="gpt-4o-mini")) is None
    assert infer_target(EchoModel(model_name="my-vlm"), {"my-vlm": "gemini"}) == "gemini"
    fixed = OpticalMemoryMiddleware(max_tokens=6000, target="qwen2.5-vl")
    assert fixed.target_for(model) == "qwen2.5-vl"


async def test_async_concurrent_threads(conversation):
    mem = OpticalMemory(":memory:")
    mw = OpticalMemoryMiddleware(max_tokens=2500, memory=mem, keep_last=4)
    agent = create_agent(EchoModel(), middleware=[mw], checkpointer=InMemorySaver())

    async def run(i: int) -> list[BaseMessage]:
        cfg = {"configurable": {"thread_id": f"a{i}", "user_id": f"u{i}"}}
        out = await agent.ainvoke({"messages": list(conversation[i * 10: i * 10 + 50])}, cfg)
        return out["messages"]

    states = await asyncio.gather(*(run(i) for i in range(5)))
    for i, state in enumerate(states):
        assert _stored(mem, user_id=f"u{i}", session_id=f"a{i}") == _expected(state)


def test_system_prompt_counts_and_is_kept(conversation):
    model = EchoModel()
    mw = OpticalMemoryMiddleware(max_tokens=3000)
    agent = create_agent(model, system_prompt="Be terse.", middleware=[mw])
    agent.invoke({"messages": list(conversation[:100])})
    sent = model.calls[0]
    assert isinstance(sent[0], SystemMessage) and sent[0].content == "Be terse."
    assert _images(sent[1])
