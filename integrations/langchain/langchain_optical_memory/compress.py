"""``compress_messages``: old chat turns → page images, as a message transformer.

Works like :func:`langchain_core.messages.trim_messages`: given messages it
returns messages; given none it returns a Runnable, so it sits in a chain::

    chain = prompt | compress_messages(max_tokens=4000) | model

The output is the input's leading system message(s), then one
``HumanMessage`` holding the older turns as page images (standard image
blocks ``{"type": "image", "base64": ..., "mime_type": "image/png"}`` after a
one-line text header), then the most recent turns as the *original* message
objects. Rendering, aging, the budget cut and the accounting are
:meth:`optical_memory.OpticalMemory.context`'s; this module only maps
messages in and out.

Rules (the core's): the system message and the last ``keep_last`` turns stay
text; the text window is moved back so a tool result never loses its
``AIMessage`` tool call; pages linked by a call/result pair are kept or
dropped together; when the budget is short the oldest pages are dropped.
If the system message and the kept turns alone exceed ``max_tokens``,
``keep_last`` is halved until they fit (the turns it lets go become pages);
with ``keep_last=0`` still over budget, or when not even the newest message
fits as pages, :class:`optical_memory.InputError` is raised.

Accounting (text tokens of the history against what the returned messages
cost, per age tier) is reported three ways: in the page message's
``response_metadata["optical_memory"]``, to an ``on_accounting`` callable,
and, in the Runnable form, as the custom callback event
``"optical_memory_accounting"`` (see ``astream_events``).
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, overload

from langchain_core.callbacks import dispatch_custom_event
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage, convert_to_messages
from langchain_core.prompt_values import PromptValue
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda

from langchain_optical_memory._messages import (
    image_sizes,
    role_of,
    split_system,
    system_text,
    to_memory_message,
)
from optical_memory import InputError, OpticalMemory, turn_message
from optical_memory.config import DEFAULT_KEEP_LAST
from optical_memory.context import Accounting
from optical_memory.scope import Scope
from optical_memory.tokens import DEFAULT_TARGET, DEFAULT_TOKENIZER, VisionTarget, get_target
from optical_memory.tokens.billing import image_tokens

logger = logging.getLogger(__name__)

#: Key of the accounting in the page message's ``response_metadata``.
METADATA_KEY = "optical_memory"
#: Name of the custom callback event the Runnable form dispatches.
ACCOUNTING_EVENT = "optical_memory_accounting"

MessagesInput = Sequence[Any] | PromptValue


@dataclass(frozen=True)
class Compressed:
    """One compression: the messages, the core's accounting, the
    ``keep_last`` actually used (lower than asked when the budget forced it)
    and the ids of the stored pages in the page message (``None`` for a
    page rendered on the fly)."""

    messages: list[BaseMessage]
    accounting: Accounting
    keep_last: int
    page_ids: tuple[str | None, ...]


def sync_history(memory: OpticalMemory, history: Sequence[BaseMessage], scope: Scope) -> int:
    """Store the messages of ``history`` the scope does not hold yet.

    The scope's stored turns must be a prefix of ``history`` (same count or
    fewer, same roles, same leading text); the rest is added. Returns how
    many messages were added. Raises :class:`InputError` when the scope holds
    another conversation (give each conversation its own ``session_id``).
    """
    stored = memory.list_turns(**scope.as_kwargs())
    if len(stored) > len(history):
        raise InputError(
            f"scope {scope} holds {len(stored)} turns but the conversation has "
            f"{len(history)} messages: it is another conversation; use a session_id "
            "of its own per conversation"
        )
    for i, (rec, msg) in enumerate(zip(stored, history)):
        want = to_memory_message(msg, i)
        if rec.role != want["role"] or (
                rec.text is not None and turn_message(rec)["content"] != want["content"]):
            raise InputError(
                f"scope {scope} holds another conversation: stored turn {i} is a "
                f"{rec.role!r} turn that differs from message {i} ({want['role']!r}); "
                "use a session_id of its own per conversation"
            )
    new = history[len(stored):]
    if new:
        memory.add([to_memory_message(m, len(stored) + j) for j, m in enumerate(new)],
                   user_id=scope.user_id, agent_id=scope.agent_id, session_id=scope.session_id)
    return len(new)


def compress(
    history: Sequence[BaseMessage],
    *,
    system: Sequence[SystemMessage] = (),
    max_tokens: int,
    memory: OpticalMemory,
    scope: Scope,
    target: str | None = None,
    keep_last: int = DEFAULT_KEEP_LAST,
    sync: bool = True,
    query: str | None = None,
) -> Compressed:
    """Compress ``history`` (no leading system messages) with ``memory``.

    ``sync``: store the new messages of ``history`` first (see
    :func:`sync_history`); pass ``False`` when the scope already holds them.
    ``query``: passages matching it on pages the context does not show at the
    fresh tier come too, after the page message (``OpticalMemory.context(query=...)``).
    """
    if isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 0:
        raise InputError(f"keep_last must be an int >= 0 (got {keep_last!r})")
    if sync and history:
        sync_history(memory, history, scope)
    text = system_text(system)
    tgt = memory.target if target is None else get_target(target)
    keep, budget = keep_last, max_tokens
    for _ in range(_FIT_ROUNDS):
        try:
            ctx = memory.context(budget, target=target, keep_last=keep, system=text,
                                 user_id=scope.user_id, agent_id=scope.agent_id,
                                 session_id=scope.session_id, query=query)
        except InputError:
            if keep == 0 or isinstance(max_tokens, bool) or not isinstance(max_tokens, int) \
                    or max_tokens < 1:
                raise
            keep, budget = keep // 2, max_tokens
            logger.info("system + recent turns exceed %d tokens; keep_last lowered to %d",
                        max_tokens, keep)
            continue
        n = ctx.accounting.kept_turns
        images = kept_image_tokens(history[len(history) - n:] if n else [], tgt)
        if ctx.accounting.context_tokens + images <= max_tokens:
            break
        # the images of the kept turns leave less room for pages (or turns)
        budget = max_tokens - images
        if budget < 1:
            if keep == 0:
                raise InputError(f"the images in the recent turns alone cost {images} tokens, "
                                 f"over max_tokens {max_tokens}")
            keep, budget = keep // 2, max_tokens
    else:
        raise InputError(f"could not fit the messages into max_tokens {max_tokens}")
    acc = replace(ctx.accounting, context_tokens=ctx.accounting.context_tokens + images,
                  kept_image_tokens=images)
    if history and not acc.kept_turns:
        _check_newest_kept(memory, scope, ctx)
    kept = list(history[len(history) - acc.kept_turns:]) if acc.kept_turns else []
    for msg, turn in zip(kept, ctx.messages[len(ctx.messages) - acc.kept_turns:]):
        if role_of(msg) != turn["role"]:  # the 1:1 message↔turn mapping broke
            raise InputError(f"kept turn {turn['role']!r} does not match message "
                             f"{role_of(msg)!r}; the scope holds turns of another conversation")
    out: list[BaseMessage] = list(system)
    page_ids = tuple(p.page_id for p in ctx.pages)
    if ctx.pages:
        blocks = next(m["content"] for m in ctx.messages if isinstance(m["content"], list))
        meta = {**acc.to_dict(), "keep_last": keep, "page_ids": list(page_ids)}
        out.append(HumanMessage(content=blocks, response_metadata={METADATA_KEY: meta}))
    if ctx.query is not None and ctx.query.mode != "none":
        out.append(HumanMessage(content=ctx.query.message()["content"],
                                response_metadata={METADATA_KEY: {"query": ctx.query.to_dict()}}))
    out += kept
    return Compressed(out, acc, keep, page_ids)


#: Tries at fitting the budget (images in kept turns shrink the room for pages).
_FIT_ROUNDS = 12


def kept_image_tokens(messages: Sequence[BaseMessage], target: VisionTarget) -> int:
    """Vision tokens ``target`` bills for the image blocks of ``messages``
    (returned as they are): an inline image at its size; one whose size is
    not known here (a remote URL) as one full page of the target."""
    total = 0
    for msg in messages:
        for size in image_sizes(msg.content):
            total += target.page_tokens if size is None else image_tokens(target, *size)
    return total


def _check_newest_kept(memory: OpticalMemory, scope: Scope, ctx: Any) -> None:
    """With no turn left as text, the newest message must at least be on a
    page in the context: a model called without it answers a question nobody
    asked. :class:`InputError` otherwise (the budget cannot hold it)."""
    newest = memory.list_turns(**scope.as_kwargs(), newest_first=True, limit=1)
    if newest and not any(newest[0].id in p.item_ids for p in ctx.pages):
        raise InputError(
            f"max_tokens {ctx.accounting.budget_tokens} cannot hold the newest message "
            f"({newest[0].text_tokens} text tokens), not even as page images; raise max_tokens "
            "or shorten the message")


def _compress_messages(
    messages: MessagesInput,
    *,
    max_tokens: int,
    target: str | None,
    keep_last: int,
    memory: OpticalMemory | None,
    tokenizer: str | None,
    user_id: str,
    agent_id: str | None,
    session_id: str | None,
    on_accounting: Callable[[Accounting], None] | None,
) -> Compressed:
    msgs = convert_to_messages(messages)
    system, history = split_system(msgs)
    scope = Scope(user_id, agent_id, session_id)
    if memory is not None:
        if tokenizer is not None and tokenizer != memory.counter.name:
            raise InputError(f"tokenizer {tokenizer!r} differs from the memory's "
                             f"{memory.counter.name!r}; leave it out when passing a memory")
        result = compress(history, system=system, max_tokens=max_tokens, memory=memory,
                          scope=scope, target=target, keep_last=keep_last)
    else:
        with OpticalMemory(":memory:", target=target or DEFAULT_TARGET,
                           tokenizer=tokenizer or DEFAULT_TOKENIZER, keep_last=keep_last) as mem:
            result = compress(history, system=system, max_tokens=max_tokens, memory=mem,
                              scope=scope, target=None, keep_last=keep_last)
    if on_accounting is not None:
        on_accounting(result.accounting)
    return result


def _runnable_step(
    messages: MessagesInput, config: RunnableConfig, **options: Any
) -> list[BaseMessage]:
    result = _compress_messages(messages, **options)
    dispatch_custom_event(ACCOUNTING_EVENT, {**result.accounting.to_dict(),
                                             "keep_last": result.keep_last}, config=config)
    return result.messages


@overload
def compress_messages(
    messages: MessagesInput,
    *,
    max_tokens: int,
    target: str | None = ...,
    keep_last: int = ...,
    memory: OpticalMemory | None = ...,
    tokenizer: str | None = ...,
    user_id: str = ...,
    agent_id: str | None = ...,
    session_id: str | None = ...,
    on_accounting: Callable[[Accounting], None] | None = ...,
) -> list[BaseMessage]: ...


@overload
def compress_messages(
    messages: None = None,
    *,
    max_tokens: int,
    target: str | None = ...,
    keep_last: int = ...,
    memory: OpticalMemory | None = ...,
    tokenizer: str | None = ...,
    user_id: str = ...,
    agent_id: str | None = ...,
    session_id: str | None = ...,
    on_accounting: Callable[[Accounting], None] | None = ...,
) -> Runnable[MessagesInput, list[BaseMessage]]: ...


def compress_messages(
    messages: MessagesInput | None = None,
    *,
    max_tokens: int,
    target: str | None = None,
    keep_last: int = DEFAULT_KEEP_LAST,
    memory: OpticalMemory | None = None,
    tokenizer: str | None = None,
    user_id: str = "default",
    agent_id: str | None = None,
    session_id: str | None = None,
    on_accounting: Callable[[Accounting], None] | None = None,
) -> list[BaseMessage] | Runnable[MessagesInput, list[BaseMessage]]:
    """Replace older turns by page images so the messages fit ``max_tokens``.

    Args:
        messages: messages (or message-like values, or a ``PromptValue``).
            ``None`` returns a Runnable doing the same to its input.
        max_tokens: budget for the returned messages: text tokens of
            ``tokenizer`` (+4 per message) plus the vision tokens ``target``
            bills for the pages and for images in the turns kept as text (an
            image given by remote URL counts as one full page of ``target``).
            Never exceeded; audio and file blocks are not counted.
        target: vision model the pages are sized and billed for; default
            ``"deepseek-ocr:base"``, or the memory's own target when a
            ``memory`` is given (a different name re-bills its pages).
        keep_last: recent turns kept as text (moved back to keep a tool
            result with its call; lowered when the budget cannot hold them).
        memory: an :class:`~optical_memory.OpticalMemory` to store the turns
            in, under ``user_id`` / ``agent_id`` / ``session_id``; the scope
            must hold nothing but this conversation (new messages are added
            on each call, so pass the growing conversation every time).
            ``None``: a throw-away in-memory store per call.
        tokenizer: text tokenizer (default ``"o200k_base"``; with a memory,
            the memory's).
        on_accounting: called with the :class:`~optical_memory.Accounting`.

    Returns:
        The system message(s), a ``HumanMessage`` holding the pages (only
        when there are pages; its ``response_metadata["optical_memory"]``
        holds the accounting), then the kept turns (the input's objects).
    """
    options: dict[str, Any] = {
        "max_tokens": max_tokens, "target": target, "keep_last": keep_last, "memory": memory,
        "tokenizer": tokenizer, "user_id": user_id, "agent_id": agent_id,
        "session_id": session_id, "on_accounting": on_accounting,
    }
    if messages is None:
        return RunnableLambda(partial(_runnable_step, **options), name="compress_messages")
    return _compress_messages(messages, **options).messages


__all__ = ["ACCOUNTING_EVENT", "METADATA_KEY", "Compressed", "compress", "compress_messages",
           "sync_history"]
