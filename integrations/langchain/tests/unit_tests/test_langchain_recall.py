"""Exact recall for agents: ``create_recall_tool`` and the middleware's
``recall_tool=True``. A fact stored early sits on a page aged to the smallest
tier; the model is told the page is low-resolution, calls ``recall_memory``
and answers with the exact value from the tool result."""
from __future__ import annotations

import re
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import BaseTool
from pydantic import Field

from langchain_optical_memory import create_recall_tool
from langchain_optical_memory._messages import to_memory_message
from langchain_optical_memory.recall import (
    PASSAGE_GAP,
    RECALL_TOOL_NAME,
    SHOWN_PASSAGES,
    format_hits,
    hit_text,
)
from optical_memory import AgePolicy, Hit, InputError, OpticalMemory, Tier
from optical_memory.render import RenderConfig

FACT = "The Lindholm depot access code is 739215."
QUESTION = "What is the Lindholm depot access code?"
#: Ages counted in turns: past 4 newer turns a page is "small", past 12 "tiny".
POLICY = AgePolicy((Tier("base", 4, 1.0), Tier("small", 12, 0.625), Tier("tiny", None, 0.5)),
                   mode="fade")
SMALL = RenderConfig(width=512, height=512, font_size=14, newline_mode="marker")


def _memory() -> OpticalMemory:
    return OpticalMemory(":memory:", render_config=SMALL, aging=POLICY, keep_last=6)


def _history(conversation: list[BaseMessage], turns: int = 60) -> list[BaseMessage]:
    """The fact first, then ``turns``-odd turns of work (cut before a user
    turn, so no tool call is left unanswered)."""
    cut = next(i for i in range(turns, len(conversation)) if conversation[i].type == "human")
    return [HumanMessage(FACT), AIMessage("Noted."), *conversation[:cut]]


def _as_dicts(messages: list[BaseMessage]) -> list[dict[str, Any]]:
    return [to_memory_message(m, i) for i, m in enumerate(messages)]


# -- the tool -----------------------------------------------------------------


def test_recall_tool_returns_the_exact_passage_of_an_aged_page(conversation):
    with _memory() as mem:
        mem.add(_as_dicts(_history(conversation)), session_id="s1")
        (hit,) = mem.retrieve("Lindholm depot access code", k=1, session_id="s1")
        assert hit.tier == "tiny" and hit.text == FACT  # the page is at the smallest tier
        tool = create_recall_tool(mem, session_id="s1", k=2)
        assert isinstance(tool, BaseTool) and tool.name == RECALL_TOOL_NAME == "recall_memory"
        assert set(tool.tool_call_schema.model_json_schema()["properties"]) == {"query"}
        out = tool.invoke({"query": "Lindholm depot access code"})
        assert out.startswith(f"[1] page {hit.page_id} (tier tiny): {FACT}")
        # scoped: another session holds nothing
        other = create_recall_tool(mem, session_id="s2")
        assert other.invoke({"query": "Lindholm depot"}).startswith("No stored passage matches")


async def test_recall_tool_async_and_cut():
    with _memory() as mem:
        mem.add(FACT, user_id="u")
        tool = create_recall_tool(mem, user_id="u", max_chars=20)
        out = await tool.ainvoke({"query": "Lindholm"})
        assert out.startswith("[1] page ") and out.endswith(": The Lindholm depot…")
        assert (await tool.ainvoke({"query": "   "})) == "Give keywords of the fact to recall."


def test_format_hits_marks_read_back_and_recent_turns():
    read_back = Hit(None, "p1", 2.0, "access c0de 739215", None, None, "tiny", None)
    recent = Hit("i2", None, 1.0, "code", None, None, None, "the code is new")
    out = format_hits([read_back, recent], "code")
    assert out == ("[1] page p1 (tier tiny), read back from the page image, may be inexact: "
                   "access c0de 739215\n\n[2] recent turn: the code is new")
    assert format_hits([], "x") == "No stored passage matches 'x'."


def test_a_hit_shows_its_pages_first_passages():
    hit = Hit("i1", "p1", 1.0, "code", None, None, "tiny", "first passage",
              ("first passage", "second passage", "third passage"))
    assert hit_text(hit) == "first passage" + PASSAGE_GAP + "second passage"
    assert SHOWN_PASSAGES == 2
    assert format_hits([hit], "code") == f"[1] page p1 (tier tiny): {hit_text(hit)}"
    bare = Hit("i1", "p1", 1.0, "code", None, None, "tiny", "only text")
    assert hit_text(bare) == "only text"


def test_bad_options_raise():
    with _memory() as mem:
        with pytest.raises(InputError, match="k must be"):
            create_recall_tool(mem, k=0)
        with pytest.raises(InputError, match="max_chars"):
            create_recall_tool(mem, max_chars=True)


# -- an agent that recalls ------------------------------------------------------

agents = pytest.importorskip("langchain.agents", reason="the middleware needs the 'agents' extra")


class RecallingModel(BaseChatModel):
    """A scripted tool-calling model: asked a question, it calls
    ``recall_memory``; given the tool's answer, it replies with the code it
    reads there (six digits), or says it found none."""

    calls: list[list[BaseMessage]] = Field(default_factory=list)
    bound: list[str] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "recalling-fake"

    def bind_tools(self, tools: Any, **kwargs: Any) -> RecallingModel:
        self.bound = [t.name if isinstance(t, BaseTool) else t["name"] for t in tools]
        return self

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        self.calls.append(list(messages))
        last = messages[-1]
        if isinstance(last, ToolMessage):
            found = re.search(r"access code is (\d{6})", str(last.content))
            reply = AIMessage(f"The code is {found.group(1)}." if found else "I cannot recall it.")
        else:
            reply = AIMessage("", tool_calls=[{"id": "call_recall_1", "name": "recall_memory",
                                               "args": {"query": "Lindholm depot access code"}}])
        return ChatResult(generations=[ChatGeneration(message=reply)])


def _check_run(model: RecallingModel, mw: Any, result: dict[str, Any], n_history: int) -> None:
    assert "recall_memory" in model.bound  # the middleware's tool reached the model
    assert len(model.calls) == 2
    first = model.calls[0]
    # the fact reached the model only as a page image, at the smallest tier...
    assert not any(FACT in str(m.content) for m in first if isinstance(m.content, str))
    header = first[0].content[0]["text"]
    assert "tier tiny: page" in header and "recalled with the memory's search/recall tool" in header
    meta = result["messages"][n_history].response_metadata["optical_memory"]
    assert meta["accounting"]["per_tier"]["tiny"]["pages"] >= 1
    # ...the tool handed back its exact text, and the answer holds the value
    tool_msg = result["messages"][n_history + 1]
    assert isinstance(tool_msg, ToolMessage) and tool_msg.name == "recall_memory"
    assert re.search(r"\[1\] page \S+ \(tier tiny\): " + re.escape(FACT), tool_msg.content)
    assert result["messages"][-1].content == "The code is 739215."


def test_agent_recalls_a_fact_from_a_tiny_page(conversation):
    from langchain_optical_memory import OpticalMemoryMiddleware

    model = RecallingModel()
    mw = OpticalMemoryMiddleware(max_tokens=100_000, keep_last=6, memory=_memory(),
                                 recall_tool=True)
    assert [t.name for t in mw.tools] == ["recall_memory"]
    agent = agents.create_agent(model, middleware=[mw])
    history = [*_history(conversation), HumanMessage(QUESTION)]
    # no session_id, no thread: the tool finds the run's scope from the graph state
    result = agent.invoke({"messages": history})
    _check_run(model, mw, result, len(history))
    session = mw.scope(result["messages"]).session_id
    assert mw.memory.stats(session_id=session).items == len(result["messages"])
    mw.memory.close()


async def test_async_agent_recalls_in_the_thread_scope(conversation):
    from langgraph.checkpoint.memory import InMemorySaver

    from langchain_optical_memory import OpticalMemoryMiddleware

    model = RecallingModel()
    with _memory() as mem:
        mem.add(FACT, session_id="t-other")  # another thread's fact: not found
        mw = OpticalMemoryMiddleware(max_tokens=100_000, keep_last=6, memory=mem,
                                     recall_tool=True, recall_k=3)
        agent = agents.create_agent(model, middleware=[mw], checkpointer=InMemorySaver())
        history = [*_history(conversation), HumanMessage(QUESTION)]
        result = await agent.ainvoke({"messages": history},
                                     {"configurable": {"thread_id": "t-1"}})
        _check_run(model, mw, result, len(history))
        assert mem.stats(session_id="t-1").items == len(result["messages"])
        # searched in the thread's scope only, k=3
        found = re.findall(r"^\[\d\] page (\S+) ", result["messages"][-2].content, re.M)
        assert 1 <= len(found) <= 3
        assert set(found) <= {p.id for p in mem.list_pages(session_id="t-1")}


def test_middleware_without_recall_adds_no_tool():
    from langchain_optical_memory import OpticalMemoryMiddleware

    assert OpticalMemoryMiddleware(max_tokens=100).tools == []
    with pytest.raises(InputError, match="recall_tool"):
        OpticalMemoryMiddleware(max_tokens=100, recall_tool="yes")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="k must be"):
        OpticalMemoryMiddleware(max_tokens=100, recall_k=0)
