"""``OpticalMemoryMiddleware``: optical context compression for ``create_agent``.

    from langchain.agents import create_agent
    agent = create_agent(model, tools, middleware=[OpticalMemoryMiddleware(max_tokens=8000)])

The optical counterpart of ``SummarizationMiddleware``, with no model call
to compress: every turn of the conversation is stored in an
:class:`~optical_memory.OpticalMemory` (after each model call, and before
each model call for the turns added since, e.g. tool results), and each
model request is rewritten by :func:`~langchain_optical_memory.compress`:
the recent turns stay text, older ones reach the model as page images,
and the request fits ``max_tokens``.

With ``recall_tool=True`` the middleware also gives the agent a
``recall_memory`` tool (:mod:`~langchain_optical_memory.recall`): the exact
text of stored passages, for facts on pages too small to read, searched in
the same scope as the turns are stored.

The agent's state is left untouched (the full text history stays in the
graph and its checkpoints); only what the model is sent changes.

Scope: turns are stored under ``user_id`` / ``agent_id`` / ``session_id``;
without a ``session_id`` the run's ``thread_id`` (from the LangGraph config)
is used, so each thread is its own conversation; a run without either is
keyed by its first message (its ``id``, which LangGraph assigns, else its
role and text), so separate thread-less runs do not share a scope. One
conversation per scope: a scope already holding a different conversation
raises :class:`optical_memory.InputError`.
"""
from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

from langchain.agents.middleware import AgentMiddleware, AgentState, ModelRequest, ModelResponse
from langchain.tools import ToolRuntime
from langchain_core.messages import AnyMessage, BaseMessage, SystemMessage
from langchain_core.tools import BaseTool, StructuredTool
from langgraph.runtime import Runtime

from langchain_optical_memory._messages import content_text, role_of, split_system
from langchain_optical_memory.compress import compress, sync_history
from langchain_optical_memory.recall import (
    MAX_PASSAGE_CHARS,
    RECALL_DESCRIPTION,
    RECALL_TOOL_NAME,
    Query,
    check_options,
    recall,
)
from optical_memory import InputError, OpticalMemory
from optical_memory.config import DEFAULT_KEEP_LAST
from optical_memory.context import Accounting
from optical_memory.scope import Scope
from optical_memory.tokens import DEFAULT_TARGET, DEFAULT_TOKENIZER


def _thread_id() -> str | None:
    """The running graph's ``thread_id``, if any."""
    try:
        from langgraph.config import get_config

        value = get_config().get("configurable", {}).get("thread_id")
    except RuntimeError:  # called outside a runnable context
        return None
    return str(value) if value is not None else None


def _latest_user_text(history: Sequence[BaseMessage]) -> str | None:
    """The text of the latest user message (the question), if it has any."""
    for msg in reversed(history):
        if role_of(msg) == "user":
            text = content_text(msg.content).strip()
            return text or None
    return None


def _conversation_key(first: BaseMessage) -> str:
    """A session name for a thread-less run: its first message's id, else a
    hash of that message's role and text."""
    if first.id:
        return f"run-{first.id}"[:256]
    digest = hashlib.sha256(f"{role_of(first)}\n{content_text(first.content)}".encode(
        "utf-8", "surrogatepass")).hexdigest()
    return f"run-{digest[:24]}"


class OpticalMemoryMiddleware(AgentMiddleware):
    """Store every turn; send the model old turns as page images.

    Args:
        max_tokens: budget of each model request (system message + pages +
            recent turns; text tokens of the memory's tokenizer, vision
            tokens of ``target``). Tool definitions are not counted.
        keep_last: recent turns sent as text.
        trigger_tokens: compress only once the history as text exceeds this
            many tokens; ``None`` (default): always, as soon as turns are
            older than ``keep_last``.
        memory: where turns are stored (and can later be retrieved from,
            e.g. with :class:`~langchain_optical_memory.OpticalMemoryRetriever`);
            default an in-process ``":memory:"`` store owned by the middleware.
        target / tokenizer: vision target and tokenizer of the default
            memory (with ``memory`` given, ``target`` re-bills its pages).
        user_id / agent_id / session_id: the memory scope (see module doc).
        recall_tool: add a ``recall_memory`` tool to the agent (in
            :attr:`tools`): it searches the memory in the run's scope and
            answers with the exact text of the ``recall_k`` best passages
            (see :func:`~langchain_optical_memory.create_recall_tool`).
        recall_k: passages the recall tool returns.
        query_aware: send, after the pages, the passages matching the latest
            user message that sit on pages not shown at the fresh tier,
            re-drawn at full resolution or as exact text, whichever the target
            bills less (``OpticalMemory.context(query=...)``; billed inside
            ``max_tokens``).
    """

    def __init__(
        self,
        *,
        max_tokens: int,
        keep_last: int = DEFAULT_KEEP_LAST,
        trigger_tokens: int | None = None,
        memory: OpticalMemory | None = None,
        target: str | None = None,
        tokenizer: str | None = None,
        user_id: str = "default",
        agent_id: str | None = None,
        session_id: str | None = None,
        recall_tool: bool = False,
        recall_k: int = 4,
        query_aware: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(query_aware, bool):
            raise InputError(f"query_aware must be True or False (got {query_aware!r})")
        self.query_aware = query_aware
        if not isinstance(recall_tool, bool):
            raise InputError(f"recall_tool must be True or False (got {recall_tool!r})")
        check_options(recall_k, MAX_PASSAGE_CHARS)
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise InputError(f"max_tokens must be a positive int (got {max_tokens!r})")
        if trigger_tokens is not None and (isinstance(trigger_tokens, bool)
                                           or not isinstance(trigger_tokens, int)
                                           or trigger_tokens < 0):
            raise InputError(f"trigger_tokens must be None or an int >= 0 (got {trigger_tokens!r})")
        if memory is not None and tokenizer is not None and tokenizer != memory.counter.name:
            raise InputError(f"tokenizer {tokenizer!r} differs from the memory's "
                             f"{memory.counter.name!r}; leave it out when passing a memory")
        self.max_tokens = max_tokens
        self.keep_last = keep_last
        self.trigger_tokens = trigger_tokens
        self.memory = memory if memory is not None else OpticalMemory(
            ":memory:", target=target or DEFAULT_TARGET, tokenizer=tokenizer or DEFAULT_TOKENIZER,
            keep_last=keep_last)
        self.target = target if memory is not None else None
        self.user_id, self.agent_id, self.session_id = user_id, agent_id, session_id
        self.last_accounting: Accounting | None = None
        self._lock = threading.Lock()
        self.recall_k = recall_k
        #: Tools the middleware adds to the agent (the recall tool, if asked for).
        self.tools: list[BaseTool] = [self._recall_tool()] if recall_tool else []

    # -- the work, shared by the sync and async hooks -----------------------

    def scope(self, messages: Sequence[BaseMessage] = ()) -> Scope:
        """The scope turns of the current run (``messages``) are stored under."""
        session = self.session_id or _thread_id()
        if session is None:
            _, history = split_system(messages)
            session = _conversation_key(history[0]) if history else None
        return Scope(self.user_id, self.agent_id, session)

    def _store(self, messages: Sequence[BaseMessage], scope: Scope) -> None:
        _, history = split_system(messages)
        if history:
            with self._lock:
                sync_history(self.memory, history, scope)

    def _rewrite(self, request: ModelRequest, scope: Scope) -> list[AnyMessage] | None:
        """The request's new messages, or ``None`` to send it as it is."""
        lead, history = split_system(request.messages)
        if not history:
            return None
        system: list[SystemMessage] = [request.system_message] if request.system_message else []
        system += lead
        with self._lock:
            sync_history(self.memory, history, scope)
            if self.trigger_tokens is not None:
                st = self.memory.stats(user_id=scope.user_id, agent_id=scope.agent_id,
                                       session_id=scope.session_id)
                if st.text_tokens + 4 * st.items <= self.trigger_tokens:
                    return None
            result = compress(history, system=system, max_tokens=self.max_tokens,
                              memory=self.memory, scope=scope, target=self.target,
                              keep_last=self.keep_last, sync=False,
                              query=_latest_user_text(history) if self.query_aware else None)
        self.last_accounting = result.accounting
        n_sys = 1 if request.system_message else 0
        # the request's own messages, plus compress()'s page message (a HumanMessage)
        return cast("list[AnyMessage]", [*lead, *result.messages[n_sys + len(lead):]])

    def recall(self, query: str, messages: Sequence[BaseMessage] = ()) -> str:
        """The recall tool's answer to ``query`` in the scope of the run
        whose state holds ``messages``."""
        return recall(self.memory, query, self.scope(messages), k=self.recall_k)

    def _recall_tool(self) -> BaseTool:
        def recall_memory(query: Query, runtime: ToolRuntime) -> str:
            return self.recall(query, runtime.state["messages"])

        async def arecall_memory(query: Query, runtime: ToolRuntime) -> str:
            return await asyncio.to_thread(self.recall, query, runtime.state["messages"])

        return StructuredTool.from_function(func=recall_memory, coroutine=arecall_memory,
                                            name=RECALL_TOOL_NAME, description=RECALL_DESCRIPTION)

    # -- hooks ---------------------------------------------------------------

    def wrap_model_call(
        self,
        request: ModelRequest,
        handler: Callable[[ModelRequest], ModelResponse],
    ) -> ModelResponse:
        messages = self._rewrite(request, self.scope(request.messages))
        return handler(request if messages is None else request.override(messages=messages))

    async def awrap_model_call(
        self,
        request: ModelRequest,
        handler: Callable[[ModelRequest], Awaitable[ModelResponse]],
    ) -> ModelResponse:
        messages = await asyncio.to_thread(self._rewrite, request, self.scope(request.messages))
        return await handler(request if messages is None else request.override(messages=messages))

    def after_model(self, state: AgentState, runtime: Runtime[Any]) -> dict[str, Any] | None:
        self._store(state["messages"], self.scope(state["messages"]))
        return None

    async def aafter_model(self, state: AgentState, runtime: Runtime[Any]) -> dict[str, Any] | None:
        await asyncio.to_thread(self._store, state["messages"], self.scope(state["messages"]))
        return None


__all__ = ["OpticalMemoryMiddleware"]
