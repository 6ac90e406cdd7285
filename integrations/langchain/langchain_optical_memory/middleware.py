"""``OpticalMemoryMiddleware``: optical context compression for ``create_agent``.

    from langchain.agents import create_agent
    agent = create_agent(model, tools, middleware=[OpticalMemoryMiddleware(max_tokens=8000)])

The optical counterpart of ``SummarizationMiddleware``, with no model call
to compress: before each model call the conversation is stored in an
:class:`~optical_memory.OpticalMemory` and the request is rewritten by
:func:`~langchain_optical_memory.compress.compress`: the recent turns stay
text, older ones reach the model as page images, and the request fits
``max_tokens``. After each model call the reply is stored too. The agent's
state is left untouched (the full text history stays in the graph and its
checkpoints); only what the model is sent changes.

**The memory mirrors the conversation, by content.** Turns are matched by
their content (role, text, tool calls), never by position or message id, and
the scope is re-synced on every call
(:mod:`~langchain_optical_memory._sync`): a message removed from the state
(``RemoveMessage``, trimming, a "forget" action) is deleted from the memory,
its pixels included (pages it shared are re-rendered); turns a
``SummarizationMiddleware`` (placed before this one) replaced by a summary
are replaced in the memory too; a run that reuses message objects, or sends
the same messages again, stores nothing twice. There is no branch: history
the state no longer holds is forgotten.

**Scope** (``user_id`` / ``agent_id`` / ``session_id``), per run, first found
of: the run's context (``context=`` of ``invoke``, a mapping or an object
with those attributes), the config's ``configurable``, the constructor's
values (defaults). Without a ``session_id`` the run's ``thread_id`` is the
session; a run without either is keyed by the content of its first message
(runs that start alike share a scope, re-synced to each run's messages).

**Never more tokens out than in.** A request is rewritten only when the
compressed form costs fewer tokens than the request as it came (same units:
the memory's tokenizer + 4 per message, the target's vision tokens per
image) and, with ``trigger_tokens``, only once the request costs more than
that. Each call's accounting is put in the reply's
``response_metadata["optical_memory"]`` (``compressed``, ``reason``,
``tokens_in``, ``tokens_out``, ``target``, ``scope``, the core's
``accounting``), so it lives in the state with the message it belongs to.

**Target**: the vision model billing the pages is ``target=`` if given, else
inferred from the bound chat model (:mod:`~langchain_optical_memory._targets`:
provider / model name → target; ``model_targets=`` adds entries), else the
memory's. The middleware's own memory is created on the first model call,
for that target (page size follows it); a memory passed in keeps its page
size and is re-billed for the inferred target.

With ``recall_tool=True`` the middleware also gives the agent a
``recall_memory`` tool (:mod:`~langchain_optical_memory.recall`), searching
the run's scope.
"""
from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, cast

from langchain.agents.middleware import AgentMiddleware, AgentState, ModelRequest, ModelResponse
from langchain.tools import ToolRuntime
from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, SystemMessage
from langchain_core.runnables.config import run_in_executor
from langchain_core.tools import BaseTool, StructuredTool
from langgraph.runtime import Runtime

from langchain_optical_memory._messages import split_system, to_memory_message
from langchain_optical_memory._sync import identity, sync_history
from langchain_optical_memory._targets import infer_target
from langchain_optical_memory.compress import METADATA_KEY, Compressed, compress
from langchain_optical_memory.recall import (
    MAX_PASSAGE_CHARS,
    RECALL_DESCRIPTION,
    RECALL_TOOL_NAME,
    Query,
    check_options,
    recall,
)
from langchain_optical_memory.tools import (
    REMEMBER_DESCRIPTION,
    REMEMBER_TOOL_NAME,
    SEARCH_DESCRIPTION,
    SEARCH_TOOL_NAME,
    Blocks,
    Note,
    remember,
    search_blocks,
)
from optical_memory import InputError, OpticalMemory
from optical_memory.config import DEFAULT_KEEP_LAST
from optical_memory.scope import Scope
from optical_memory.tokens import DEFAULT_TARGET, DEFAULT_TOKENIZER, get_target

_SCOPE_KEYS = ("user_id", "agent_id", "session_id")


def _configurable(runtime: Any = None) -> Mapping[str, Any]:
    """The running graph's ``configurable`` (a tool runtime's own config first)."""
    config = getattr(runtime, "config", None)
    if isinstance(config, Mapping):
        return config.get("configurable") or {}
    try:
        from langgraph.config import get_config

        return get_config().get("configurable") or {}
    except RuntimeError:  # called outside a runnable context
        return {}


def run_values(runtime: Any = None) -> dict[str, str]:
    """``user_id`` / ``agent_id`` / ``session_id`` / ``thread_id`` the run
    gives: from its context first, then its config's ``configurable``."""
    context = getattr(runtime, "context", None)
    conf = _configurable(runtime)
    out: dict[str, str] = {}
    for key in (*_SCOPE_KEYS, "thread_id"):
        value = None
        if key != "thread_id" and context is not None:
            value = (context.get(key) if isinstance(context, Mapping)
                     else getattr(context, key, None))
        if value is None:
            value = conf.get(key)
        if value is not None:
            out[key] = str(value)
    return out


def conversation_key(first: BaseMessage) -> str:
    """A session name for a thread-less run: a digest of its first
    message's content (never its id, which LangGraph assigns in place)."""
    import hashlib

    digest = hashlib.sha256(identity(to_memory_message(first)).encode(
        "utf-8", "surrogatepass")).hexdigest()
    return f"run-{digest[:24]}"


def run_scoped_tools(memory: Callable[[], OpticalMemory], scope_of: Callable[[Any], Scope], *,
                     k: int, images: bool = True) -> list[BaseTool]:
    """``search_memory`` and ``remember`` whose scope is ``scope_of(runtime)``
    for each call (the middleware's tools)."""
    check_options(k, MAX_PASSAGE_CHARS)

    def search(query: Query, runtime: ToolRuntime) -> Blocks:
        return search_blocks(memory(), query, scope_of(runtime), k=k, images=images)

    async def asearch(query: Query, runtime: ToolRuntime) -> Blocks:
        return await run_in_executor(None, search, query, runtime)

    def remember_note(note: Note, runtime: ToolRuntime) -> str:
        return remember(memory(), note, scope_of(runtime))

    async def aremember_note(note: Note, runtime: ToolRuntime) -> str:
        return await run_in_executor(None, remember, memory(), note, scope_of(runtime))

    return [StructuredTool.from_function(func=search, coroutine=asearch, name=SEARCH_TOOL_NAME,
                                         description=SEARCH_DESCRIPTION),
            StructuredTool.from_function(func=remember_note, coroutine=aremember_note,
                                         name=REMEMBER_TOOL_NAME,
                                         description=REMEMBER_DESCRIPTION)]


class OpticalMemoryMiddleware(AgentMiddleware):
    """Store every turn; send the model old turns as page images.

    Args:
        max_tokens: budget of each model request (system message + pages +
            recent turns; text tokens of the memory's tokenizer, vision
            tokens of the target). Tool definitions are not counted.
        keep_last: recent turns sent as text.
        trigger_tokens: compress only once the request costs more than this
            many tokens; ``None`` (default): whenever compressing saves
            tokens. A request is never made costlier (see module doc).
        memory: where turns are stored (and can later be retrieved from);
            default an in-process ``":memory:"`` store owned by the
            middleware, created on the first model call.
        target: the vision target billing the pages (default: inferred from
            the chat model, see module doc). model_targets: extra entries
            for the inference (model-name substring or provider → target).
        tokenizer: text tokenizer of the default memory.
        user_id / agent_id / session_id: the default scope (the run's
            context or configurable take precedence; see module doc).
        recall_tool: add a ``recall_memory`` tool to the agent (in
            :attr:`tools`), searching the run's scope; recall_k: passages it
            (and ``search_memory``) returns.
        memory_tools: add ``search_memory`` (passages as text, each page as
            an image block in the ``ToolMessage``) and ``remember`` (store a
            note), over the run's user / agent in every session
            (:mod:`~langchain_optical_memory.tools`).
    """

    def __init__(
        self,
        *,
        max_tokens: int,
        keep_last: int = DEFAULT_KEEP_LAST,
        trigger_tokens: int | None = None,
        memory: OpticalMemory | None = None,
        target: str | None = None,
        model_targets: Mapping[str, str] | None = None,
        tokenizer: str | None = None,
        user_id: str = "default",
        agent_id: str | None = None,
        session_id: str | None = None,
        recall_tool: bool = False,
        recall_k: int = 4,
        memory_tools: bool = False,
    ) -> None:
        super().__init__()
        for flag, value in (("recall_tool", recall_tool), ("memory_tools", memory_tools)):
            if not isinstance(value, bool):
                raise InputError(f"{flag} must be True or False (got {value!r})")
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
        if target is not None:
            get_target(target)  # an unknown name fails here
        for name in (model_targets or {}).values():
            get_target(name)
        Scope(user_id, agent_id, session_id)  # bad ids fail here
        self.max_tokens = max_tokens
        self.keep_last = keep_last
        self.trigger_tokens = trigger_tokens
        self.target = target
        self.model_targets = dict(model_targets or {})
        self.tokenizer = tokenizer or DEFAULT_TOKENIZER
        self.user_id, self.agent_id, self.session_id = user_id, agent_id, session_id
        self._memory = memory
        self._lock = threading.Lock()  # guards the memory's creation and the scope locks
        self._scope_locks: dict[Scope, threading.Lock] = {}
        self.recall_k = recall_k
        #: Tools the middleware adds to the agent (the recall tool, the memory tools).
        self.tools: list[BaseTool] = [self._recall_tool()] if recall_tool else []
        if memory_tools:
            self.tools += run_scoped_tools(lambda: self.memory, self.user_scope, k=recall_k)

    # -- memory, scope, target ------------------------------------------------

    def memory_for(self, target: str | None = None) -> OpticalMemory:
        """The memory; the middleware's own is created on first use, for
        ``target`` (default: the constructor's, else DeepSeek-OCR base)."""
        with self._lock:
            if self._memory is None:
                self._memory = OpticalMemory(":memory:", target=target or self.target
                                             or DEFAULT_TARGET, tokenizer=self.tokenizer,
                                             keep_last=self.keep_last)
            return self._memory

    @property
    def memory(self) -> OpticalMemory:
        """The memory turns are stored in (see :meth:`memory_for`)."""
        return self.memory_for()

    def target_for(self, model: Any) -> str | None:
        """The target billing ``model``'s pages: ``target=``, else inferred,
        else ``None`` (the memory's own)."""
        return self.target or infer_target(model, self.model_targets)

    def scope(self, messages: Sequence[BaseMessage] = (), runtime: Any = None) -> Scope:
        """The scope the turns of a run (its ``messages``, its ``runtime``) are stored under."""
        run = run_values(runtime)
        session = run.get("session_id") or self.session_id or run.get("thread_id")
        if session is None:
            _, history = split_system(messages)
            session = conversation_key(history[0]) if history else None
        return Scope(run.get("user_id") or self.user_id, run.get("agent_id") or self.agent_id,
                     session)

    def user_scope(self, runtime: Any = None) -> Scope:
        """The run's user / agent, every session: what the memory tools
        search and where ``remember`` stores."""
        run = run_values(runtime)
        return Scope(run.get("user_id") or self.user_id, run.get("agent_id") or self.agent_id)

    def _scope_lock(self, scope: Scope) -> threading.Lock:
        with self._lock:
            return self._scope_locks.setdefault(scope, threading.Lock())

    # -- the work, shared by the sync and async hooks -----------------------

    def _store(self, messages: Sequence[BaseMessage], scope: Scope) -> None:
        _, history = split_system(messages)
        if history:
            with self._scope_lock(scope):
                sync_history(self.memory, history, scope)

    def _rewrite(self, request: ModelRequest, scope: Scope
                 ) -> tuple[list[AnyMessage] | None, Compressed | None, str]:
        """The request's new messages (``None``: send it as it is), the
        compression, and the target that billed it."""
        lead, history = split_system(request.messages)
        target = self.target_for(request.model)
        memory = self.memory_for(target)
        target = target or memory.target.name
        if not history:
            return None, None, target
        system: list[SystemMessage] = [request.system_message] if request.system_message else []
        system += lead
        with self._scope_lock(scope):
            result = compress(history, system=system, max_tokens=self.max_tokens,
                              memory=memory, scope=scope, target=target,
                              keep_last=self.keep_last, trigger_tokens=self.trigger_tokens)
        if not result.compressed:
            return None, result, target
        n_sys = 1 if request.system_message else 0
        # the request's own messages, plus compress()'s page message (a HumanMessage)
        return (cast("list[AnyMessage]", [*lead, *result.messages[n_sys + len(lead):]]),
                result, target)

    @staticmethod
    def _annotate(response: Any, result: Compressed | None, target: str,
                  scope: Scope) -> Any:
        """The response with this call's accounting in its AI message's
        ``response_metadata["optical_memory"]``."""
        if result is None:
            return response
        meta = {**result.metadata(), "target": target, "scope": scope.as_kwargs()}

        def mark(msg: Any) -> Any:
            if not isinstance(msg, AIMessage):
                return msg
            return msg.model_copy(update={"response_metadata": {
                **msg.response_metadata, METADATA_KEY: meta}})

        if isinstance(response, ModelResponse):
            response.result = [mark(m) for m in response.result]
            return response
        return mark(response)

    def recall(self, query: str, messages: Sequence[BaseMessage] = (),
               runtime: Any = None) -> str:
        """The recall tool's answer to ``query`` in the scope of the run
        whose state holds ``messages``."""
        return recall(self.memory, query, self.scope(messages, runtime), k=self.recall_k)

    def _recall_tool(self) -> BaseTool:
        def recall_memory(query: Query, runtime: ToolRuntime) -> str:
            return self.recall(query, runtime.state["messages"], runtime)

        async def arecall_memory(query: Query, runtime: ToolRuntime) -> str:
            return await asyncio.to_thread(self.recall, query, runtime.state["messages"],
                                           runtime)

        return StructuredTool.from_function(func=recall_memory, coroutine=arecall_memory,
                                            name=RECALL_TOOL_NAME, description=RECALL_DESCRIPTION)

    # -- hooks ---------------------------------------------------------------

    def wrap_model_call(
        self,
        request: ModelRequest,
        handler: Callable[[ModelRequest], ModelResponse],
    ) -> ModelResponse:
        scope = self.scope(request.messages, request.runtime)
        messages, result, target = self._rewrite(request, scope)
        response = handler(request if messages is None else request.override(messages=messages))
        return cast(ModelResponse, self._annotate(response, result, target, scope))

    async def awrap_model_call(
        self,
        request: ModelRequest,
        handler: Callable[[ModelRequest], Awaitable[ModelResponse]],
    ) -> ModelResponse:
        scope = self.scope(request.messages, request.runtime)
        messages, result, target = await asyncio.to_thread(self._rewrite, request, scope)
        response = await handler(request if messages is None
                                 else request.override(messages=messages))
        return cast(ModelResponse, self._annotate(response, result, target, scope))

    def after_model(self, state: AgentState, runtime: Runtime[Any]) -> dict[str, Any] | None:
        self._store(state["messages"], self.scope(state["messages"], runtime))
        return None

    async def aafter_model(self, state: AgentState, runtime: Runtime[Any]) -> dict[str, Any] | None:
        await asyncio.to_thread(self._store, state["messages"],
                                self.scope(state["messages"], runtime))
        return None


__all__ = ["OpticalMemoryMiddleware", "conversation_key", "run_values"]
