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

Rules (this module's):

- never more tokens out than in: the input comes back unchanged when the
  compressed form would not cost fewer tokens (or, with ``trigger_tokens``,
  when the input costs at most that);
- ``start_on="human"``: the first message after the system message(s) is a
  human message (the page message, the note below, or the text window moved
  forward to a human turn, the turns before it paged);
- turns left out for the budget are named in a note (the page message's first
  text block, or a ``HumanMessage`` of its own when no page is left);
- images the user sent in paged turns follow the pages as image blocks,
  billed by the target; those of turns left out are counted in the note;
- the memory scope is made to hold exactly the messages given, by content
  (:mod:`~langchain_optical_memory._sync`).

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
from typing import Any, Literal, overload

from langchain_core.callbacks import dispatch_custom_event
from langchain_core.language_models import BaseLanguageModel
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage, convert_to_messages
from langchain_core.prompt_values import PromptValue
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda

from langchain_optical_memory._messages import (
    image_blocks,
    image_sizes,
    role_of,
    split_system,
    system_text,
)
from langchain_optical_memory._sync import sync_history
from optical_memory import InputError, OpticalMemory
from optical_memory.config import DEFAULT_KEEP_LAST
from optical_memory.context import MESSAGE_OVERHEAD, Accounting
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
    """One call of the compressor.

    messages: what to send: the compressed messages, or the input's own
        messages when compressing would not help (``compressed`` False).
    accounting: the core's accounting of the compressed form (``None`` when
        the trigger was not reached; its ``context_tokens`` include the
        images and the marker this module adds).
    keep_last: the recent turns asked to stay text, after any lowering for
        the budget or the move to a human turn.
    page_ids: ids of the stored pages in the page message (``None`` for a
        page rendered on the fly).
    tokens_in / tokens_out: what the messages given and the messages
        returned cost, in the same units (see :func:`compress`);
        ``tokens_out <= tokens_in`` always, unless the input was over
        ``max_tokens`` (then ``tokens_out <= max_tokens``).
    reason: ``"compressed"``, ``"below trigger"`` or ``"no saving"``.
    dropped_turns: turns left out for the budget (named by the marker).
    old_images: image blocks from paged turns sent after the pages;
        dropped_images: those left out with dropped turns (named by the marker).
    """

    messages: list[BaseMessage]
    accounting: Accounting | None
    keep_last: int
    page_ids: tuple[str | None, ...]
    tokens_in: int = 0
    tokens_out: int = 0
    reason: str = "compressed"
    dropped_turns: int = 0
    old_images: int = 0
    dropped_images: int = 0

    @property
    def compressed(self) -> bool:
        return self.reason == "compressed"

    def metadata(self) -> dict[str, Any]:
        """Plain JSON for ``response_metadata``."""
        out: dict[str, Any] = {
            "compressed": self.compressed, "reason": self.reason,
            "tokens_in": self.tokens_in, "tokens_out": self.tokens_out,
            "keep_last": self.keep_last, "page_ids": list(self.page_ids),
            "dropped_turns": self.dropped_turns, "old_images": self.old_images,
            "dropped_images": self.dropped_images,
        }
        if self.accounting is not None:
            out["accounting"] = self.accounting.to_dict()
        return out


#: Text that opens the image blocks of earlier turns in the page message.
OLD_IMAGES_HEADER = "Images sent in those earlier turns (oldest first):"


def marker_text(turns: int, text_tokens: int, images: int, max_tokens: int) -> str:
    """The note sent when turns were left out for the budget."""
    imgs = f" and {images} image{'s' if images != 1 else ''}" if images else ""
    return (f"[{turns} earlier turn{'s' if turns != 1 else ''} ({text_tokens} tokens as "
            f"text{imgs}) left out to fit the {max_tokens}-token budget; they are still "
            "stored in memory and can be searched.]")


TokenCounter = Callable[[list[BaseMessage]], int]


def compress(
    history: Sequence[BaseMessage],
    *,
    system: Sequence[SystemMessage] = (),
    max_tokens: int,
    memory: OpticalMemory,
    scope: Scope,
    target: str | None = None,
    keep_last: int = DEFAULT_KEEP_LAST,
    trigger_tokens: int | None = None,
    start_on: str | None = "human",
    token_counter: TokenCounter | None = None,
    query: str | None = None,
) -> Compressed:
    """Compress ``history`` (no leading system messages) with ``memory``.

    The scope is first made to hold exactly ``history``
    (:func:`~langchain_optical_memory._sync.sync_history`). Costs
    (``tokens_in`` / ``tokens_out`` and the budget): by default the memory's
    rule, tokenizer count + 4 per text message, the target's vision tokens
    per image (pages, and images in the turns, an image by remote URL billed
    as one full page); with ``token_counter`` (``messages -> int``) the text
    messages and the page message's text are counted by it instead, and
    images in the turns are left to it. Returns the input's messages
    unchanged when ``trigger_tokens`` is not exceeded or compressing would
    not cost fewer tokens. ``query``: passages matching it on pages the
    context does not show at the fresh tier come too, after the page message
    (``OpticalMemory.context(query=...)``), billed inside ``max_tokens``.
    """
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise InputError(f"max_tokens must be a positive int (got {max_tokens!r})")
    check_count_option("keep_last", keep_last)
    if trigger_tokens is not None:
        check_count_option("trigger_tokens", trigger_tokens)
    if start_on not in ("human", None):
        raise InputError(f"start_on must be 'human' or None (got {start_on!r})")
    synced = sync_history(memory, history, scope)
    tgt = memory.target if target is None else get_target(target)
    text = system_text(system)
    original: list[BaseMessage] = [*system, *history]
    if token_counter is not None:
        tokens_in = int(token_counter(original))
    else:
        sys_cost = memory.counter.count(text) + MESSAGE_OVERHEAD if text else 0
        tokens_in = (sys_cost + synced.text_tokens + MESSAGE_OVERHEAD * len(history)
                     + kept_image_tokens(history, tgt))
    keep = _human_start(history, keep_last) if start_on == "human" else keep_last
    if trigger_tokens is not None and tokens_in <= trigger_tokens:
        return Compressed(original, None, keep, (), tokens_in, tokens_in, "below trigger")
    try:
        fit = _fit(history, synced.item_ids, system, text, max_tokens, memory, scope, target,
                   tgt, keep, token_counter, query)
    except InputError:
        if tokens_in > max_tokens:
            raise
        # the input fits as it is: never worse than sending it
        return Compressed(original, None, keep, (), tokens_in, tokens_in, "no saving")
    if fit.tokens_out >= tokens_in:  # paging would not save tokens: send the input as it is
        return replace(fit, messages=original, page_ids=(), tokens_in=tokens_in,
                       tokens_out=tokens_in, reason="no saving", dropped_turns=0, old_images=0,
                       dropped_images=0)
    fit = replace(fit, tokens_in=tokens_in)
    if len(fit.messages) > len(system):
        page = fit.messages[len(system)]
        if page not in history and METADATA_KEY in page.response_metadata:
            page.response_metadata[METADATA_KEY] = fit.metadata()
    return fit


def check_count_option(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InputError(f"{name} must be an int >= 0 (got {value!r})")


def _human_start(history: Sequence[BaseMessage], keep_last: int) -> int:
    """``keep_last`` lowered so the text window starts on a human turn, when
    the window holds one (the turns before it go to pages)."""
    start = max(0, len(history) - keep_last)
    for i in range(start, len(history)):
        if isinstance(history[i], HumanMessage) or role_of(history[i]) == "user":
            return len(history) - i
    return keep_last


#: Tries at fitting the budget (images and the marker shrink the room for pages).
_FIT_ROUNDS = 12


def _fit(history: Sequence[BaseMessage], item_ids: Sequence[str],
         system: Sequence[SystemMessage], text: str | None, max_tokens: int,
         memory: OpticalMemory, scope: Scope, target: str | None, tgt: VisionTarget,
         keep_last: int, token_counter: TokenCounter | None,
         query: str | None = None) -> Compressed:
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise InputError(f"max_tokens must be a positive int (got {max_tokens!r})")
    keep, budget = keep_last, max_tokens
    for _ in range(_FIT_ROUNDS):
        try:
            # the output is built from pages, query and turns: no exact-value block
            ctx = memory.context(budget, target=target, keep_last=keep, system=text,
                                 query=query, exact_spans="off", **scope.as_kwargs())
        except InputError:
            if keep == 0:
                raise
            keep, budget = keep // 2, max_tokens
            logger.info("system + recent turns exceed %d tokens; keep_last lowered to %d",
                        max_tokens, keep)
            continue
        out = _assemble(ctx, history, item_ids, system, max_tokens, memory, tgt, keep,
                        token_counter)
        if out.tokens_out <= max_tokens:
            if history and not ctx.accounting.kept_turns:
                _check_newest_kept(memory, scope, ctx)
            return out
        budget -= out.tokens_out - max_tokens  # images / marker / counter: less for pages
        if budget < 1:
            if keep == 0:
                raise InputError(f"the images and text that must stay cost {out.tokens_out} "
                                 f"tokens, over max_tokens {max_tokens}")
            keep, budget = keep // 2, max_tokens
    raise InputError(f"could not fit the messages into max_tokens {max_tokens}")


def _assemble(ctx: Any, history: Sequence[BaseMessage], item_ids: Sequence[str],
              system: Sequence[SystemMessage], max_tokens: int, memory: OpticalMemory,
              tgt: VisionTarget, keep: int, token_counter: TokenCounter | None) -> Compressed:
    """The output messages for one context, and what they cost."""
    acc = ctx.accounting
    n = acc.kept_turns
    kept = list(history[len(history) - n:]) if n else []
    for msg, turn in zip(kept, ctx.messages[len(ctx.messages) - n:]):
        if role_of(msg) != turn["role"]:  # the 1:1 message↔turn mapping broke
            raise InputError(f"kept turn {turn['role']!r} does not match message "
                             f"{role_of(msg)!r}; the scope holds turns of another conversation")
    index = {item_id: i for i, item_id in enumerate(item_ids)}
    on_pages = sorted({index[i] for p in ctx.pages for i in p.item_ids if i in index})
    paged_or_kept = set(on_pages) | set(range(len(history) - n, len(history)))
    dropped = [i for i in range(len(history)) if i not in paged_or_kept]
    old_blocks = [b for i in on_pages for b in image_blocks(history[i].content)]
    old_cost = kept_image_tokens([history[i] for i in on_pages], tgt)
    dropped_images = sum(len(image_blocks(history[i].content)) for i in dropped)
    marker = marker_text(len(dropped), acc.dropped_text_tokens, dropped_images,
                         max_tokens) if dropped else None

    out: list[BaseMessage] = list(system)
    page_msg: HumanMessage | None = None
    lead: list[dict[str, Any]] = [{"type": "text", "text": marker}] if marker else []
    if ctx.pages:
        blocks = next(m["content"] for m in ctx.messages if isinstance(m["content"], list))
        tail: list[dict[str, Any]] = []
        if old_blocks:
            tail = [{"type": "text", "text": OLD_IMAGES_HEADER}, *old_blocks]
        page_msg = HumanMessage(content=[*lead, *blocks, *tail],
                                response_metadata={METADATA_KEY: {}})
        out.append(page_msg)
    elif marker:
        out.append(HumanMessage(content=marker, response_metadata={METADATA_KEY: {}}))
    query_msg: HumanMessage | None = None
    if ctx.query is not None and ctx.query.mode != "none":
        query_msg = HumanMessage(content=ctx.query.message()["content"],
                                 response_metadata={METADATA_KEY: {"query": ctx.query.to_dict()}})
        out.append(query_msg)
    out += kept
    extra_text = [memory.counter.count(marker)] if marker else []
    if old_blocks:
        extra_text.append(memory.counter.count(OLD_IMAGES_HEADER))
    if token_counter is None:
        images = kept_image_tokens(kept, tgt)
        extra = sum(extra_text) + (MESSAGE_OVERHEAD if marker and not ctx.pages else 0)
        cost = acc.context_tokens + images + old_cost + extra
    else:
        images = 0
        texts = [m for m in out if m is not page_msg and m is not query_msg]
        cost = (int(token_counter(texts)) + acc.page_vision_tokens + old_cost
                + acc.query_tokens)
        if page_msg is not None:
            only_text: list[str | dict[Any, Any]] = [
                b for b in page_msg.content if isinstance(b, dict) and b.get("type") == "text"]
            cost += int(token_counter([HumanMessage(content=only_text)]))
    # the marker and the old images' header are page-message framing; the
    # images the turns carry (kept or paged) are kept_image_tokens
    frame = (acc.page_message_tokens
             + (sum(extra_text) + (MESSAGE_OVERHEAD if marker and not ctx.pages else 0)
                if token_counter is None else 0))
    accounting = replace(acc, context_tokens=cost, kept_image_tokens=images + old_cost,
                         page_message_tokens=frame)
    page_ids = tuple(p.page_id for p in ctx.pages)
    return Compressed(out, accounting, keep, page_ids, 0, cost, "compressed", len(dropped),
                      len(old_blocks), dropped_images)


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


def _counter(token_counter: TokenCounter | BaseLanguageModel | None) -> TokenCounter | None:
    if isinstance(token_counter, BaseLanguageModel):
        return token_counter.get_num_tokens_from_messages
    if token_counter is None or callable(token_counter):
        return token_counter
    raise InputError("token_counter must be a callable (messages -> int) or a language model "
                     f"(got {type(token_counter).__name__})")


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
    trigger_tokens: int | None,
    start_on: str | None,
    token_counter: TokenCounter | BaseLanguageModel | None,
) -> Compressed:
    msgs = convert_to_messages(messages)
    system, history = split_system(msgs)
    scope = Scope(user_id, agent_id, session_id)
    options: dict[str, Any] = {"system": system, "max_tokens": max_tokens, "scope": scope,
                               "keep_last": keep_last, "trigger_tokens": trigger_tokens,
                               "start_on": start_on, "token_counter": _counter(token_counter)}
    if memory is not None:
        if tokenizer is not None and tokenizer != memory.counter.name:
            raise InputError(f"tokenizer {tokenizer!r} differs from the memory's "
                             f"{memory.counter.name!r}; leave it out when passing a memory")
        result = compress(history, memory=memory, target=target, **options)
    else:
        with OpticalMemory(":memory:", target=target or DEFAULT_TARGET,
                           tokenizer=tokenizer or DEFAULT_TOKENIZER, keep_last=keep_last) as mem:
            result = compress(history, memory=mem, target=None, **options)
    if on_accounting is not None and result.accounting is not None and result.compressed:
        on_accounting(result.accounting)
    return result


def _runnable_step(
    messages: MessagesInput, config: RunnableConfig, **options: Any
) -> list[BaseMessage]:
    result = _compress_messages(messages, **options)
    dispatch_custom_event(ACCOUNTING_EVENT, result.metadata(), config=config)
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
    trigger_tokens: int | None = ...,
    start_on: Literal["human"] | None = ...,
    token_counter: TokenCounter | BaseLanguageModel | None = ...,
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
    trigger_tokens: int | None = ...,
    start_on: Literal["human"] | None = ...,
    token_counter: TokenCounter | BaseLanguageModel | None = ...,
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
    trigger_tokens: int | None = None,
    start_on: Literal["human"] | None = "human",
    token_counter: TokenCounter | BaseLanguageModel | None = None,
) -> list[BaseMessage] | Runnable[MessagesInput, list[BaseMessage]]:
    """Replace older turns by page images so the messages fit ``max_tokens``.

    Args:
        messages: messages (or message-like values, or a ``PromptValue``).
            ``None`` returns a Runnable doing the same to its input.
        max_tokens: budget for the returned messages: text tokens of
            ``tokenizer`` (+4 per message) plus the vision tokens ``target``
            bills for the pages and for images in the turns (an image given
            by remote URL counts as one full page of ``target``). Never
            exceeded; audio and file blocks are not counted.
        target: vision model the pages are sized and billed for; default
            ``"deepseek-ocr:base"``, or the memory's own target when a
            ``memory`` is given (a different name re-bills its pages).
        keep_last: recent turns kept as text (moved back to keep a tool
            result with its call, forward to start on a human turn; lowered
            when the budget cannot hold them).
        memory: an :class:`~optical_memory.OpticalMemory` to store the turns
            in, under ``user_id`` / ``agent_id`` / ``session_id``; the scope
            is made to hold exactly the messages given, by content (turns no
            longer given are deleted from it, new ones added), so pass the
            whole conversation every time. ``None``: a throw-away in-memory
            store per call.
        tokenizer: text tokenizer (default ``"o200k_base"``; with a memory,
            the memory's).
        on_accounting: called with the :class:`~optical_memory.Accounting`
            when the messages were compressed.
        trigger_tokens: compress only when the messages cost more than this;
            ``None`` (default): whenever compressing costs fewer tokens. In
            every case the messages are returned unchanged when the
            compressed form would not cost fewer tokens than they do.
        start_on: ``"human"`` (default): the first message after the system
            message(s) is a human message: the page message, the marker of
            turns left out, or the text window moved forward to a human turn
            (the turns before it are paged). ``None``: the window is not moved.
        token_counter: like ``trim_messages``'s: a callable ``messages ->
            int`` or a chat model (``get_num_tokens_from_messages``) counting
            the text messages and the page message's text; the pages and the
            images of paged turns are still billed by ``target``.

    Returns:
        The system message(s); a ``HumanMessage`` holding the pages (when
        there are pages: a note of any turns left out for the budget, the
        header, the page images, then the images the paged turns carried;
        its ``response_metadata["optical_memory"]`` holds the accounting),
        or a ``HumanMessage`` note alone when every older turn was left out;
        then the kept turns (the input's objects).
    """
    options: dict[str, Any] = {
        "max_tokens": max_tokens, "target": target, "keep_last": keep_last, "memory": memory,
        "tokenizer": tokenizer, "user_id": user_id, "agent_id": agent_id,
        "session_id": session_id, "on_accounting": on_accounting,
        "trigger_tokens": trigger_tokens, "start_on": start_on, "token_counter": token_counter,
    }
    if messages is None:
        return RunnableLambda(partial(_runnable_step, **options), name="compress_messages")
    return _compress_messages(messages, **options).messages


__all__ = ["ACCOUNTING_EVENT", "METADATA_KEY", "OLD_IMAGES_HEADER", "Compressed", "compress",
           "compress_messages", "marker_text", "sync_history"]
