"""Input → item drafts: chat messages (dicts, :class:`~optical_memory.render.Turn`,
LangChain messages), texts and documents are checked and turned into the
items the store keeps and the render items pages are drawn from. Also the
JSONL chat-log reader the CLI uses.

A turn's stored text is its content plus one ``→ name(arguments) [id]`` line
per tool call it makes, the same text that is drawn on pages and counted.
Every check runs before anything is stored; bad input raises
:class:`~optical_memory.errors.InputError` / :class:`EmptyInputError` naming
the message (``messages[i]`` or ``file:line``) and the value.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from optical_memory.config import MAX_ADD_CHARS, MAX_PAGES_PER_ITEM
from optical_memory.errors import EmptyInputError, InputError
from optical_memory.render.config import RenderItem, Turn
from optical_memory.store import NewItem, text_hash

if TYPE_CHECKING:  # pragma: no cover
    from optical_memory.render import Renderer
    from optical_memory.tokens import TextCounter

#: Chat roles a turn may have.
ROLES = ("user", "assistant", "system", "tool", "developer", "function")
_LC_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}


@dataclass(frozen=True)
class AddResult:
    """What one ``add`` stored: item ids in input order, the ids of pages made
    by this call (documents, and turns compacted because of it), the items'
    text tokens."""

    item_ids: tuple[str, ...]
    page_ids: tuple[str, ...]
    text_tokens: int

    @property
    def pages(self) -> int:
        return len(self.page_ids)


@dataclass(frozen=True)
class Draft:
    """One item to store, how it is drawn, and its full text (kept even when
    the memory keeps no text, for rendering and limits)."""

    item: NewItem
    render: RenderItem
    full_text: str


def text_draft(text: object, kind: str, title: object, counter: TextCounter, *,
               keep_text: bool) -> Draft:
    """A text or document draft."""
    if not isinstance(text, str):
        raise InputError(f"text must be a string (got {type(text).__name__})")
    if not text.strip():
        raise EmptyInputError(f"nothing to store: the {kind} is empty or whitespace only "
                              f"({len(text)} characters)")
    if title is not None and not isinstance(title, str):
        raise InputError(f"title must be a string (got {type(title).__name__})")
    tokens = counter.count(text)
    item = NewItem(kind=kind, text=text if keep_text else None, text_tokens=tokens,
                   name=title, content_hash=text_hash(text))
    label = f"[{title}]" if title else None
    return Draft(item, RenderItem(item.id, "document" if kind == "document" else "text",
                                  text, label), text)


def turn_draft(message: Any, index: int, counter: TextCounter, *, keep_text: bool,
               where: str | None = None) -> Draft:
    """A chat-turn draft from a message dict, a Turn or a LangChain message."""
    where = where or f"messages[{index}]"
    # unchecked input until the checks below
    role: Any
    content: Any
    name: Any
    time: Any
    if isinstance(message, Turn):
        role, content, name, time = message.role, message.content, message.name, message.time
        tool_calls: list[Any] = []
        answers = None
    elif isinstance(message, Mapping):
        role = message.get("role")
        content = message.get("content")
        name, time = message.get("name"), message.get("time")
        tool_calls = list(message.get("tool_calls") or [])
        answers = message.get("tool_call_id")
    elif hasattr(message, "type") and hasattr(message, "content"):  # LangChain BaseMessage
        lc_type: Any = getattr(message, "type", None)
        role = _LC_ROLES.get(lc_type, lc_type)
        content = message.content
        name, time = getattr(message, "name", None), None
        tool_calls = list(getattr(message, "tool_calls", None) or [])
        answers = getattr(message, "tool_call_id", None)
    else:
        raise InputError(f"{where} must be a dict, a Turn or a chat message "
                         f"(got {type(message).__name__})")
    if not isinstance(role, str) or role not in ROLES:
        raise InputError(f"{where}.role must be one of {ROLES} (got {role!r})")
    content = content_text(content, where)
    for field_name, value in (("name", name), ("time", time)):
        if value is not None and not isinstance(value, str):
            raise InputError(f"{where}.{field_name} must be a string (got {type(value).__name__})")
    calls = [tool_call(c, f"{where}.tool_calls[{j}]") for j, c in enumerate(tool_calls)]
    lines = [content] if content else []
    lines += [f"→ {fn}({args}) [{cid}]" for cid, fn, args in calls]
    text = "\n".join(lines)
    if not text.strip():
        raise EmptyInputError(f"{where} is empty (role {role!r}, no content, no tool calls)")
    if role == "tool":
        if not isinstance(answers, str) or not answers.strip():
            raise InputError(f"{where}: a tool message needs tool_call_id (got {answers!r})")
        ids: tuple[str, ...] = (answers,)
    else:
        ids = tuple(cid for cid, _, _ in calls)
    meta: dict[str, Any] = {"content_len": len(content)}
    if keep_text and tool_calls:
        meta["tool_calls"] = [jsonable(c) for c in tool_calls]
    item = NewItem(kind="turn", text=text if keep_text else None,
                   text_tokens=counter.count(text), role=role, name=name, time=time,
                   tool_call_ids=ids, meta=meta, content_hash=text_hash(text))
    label = Turn(item.id, role, text, name, time).label
    return Draft(item, RenderItem(item.id, "turn", text, label), text)


def drafts_for(messages: Any, kind: str | None, counter: TextCounter, *, keep_text: bool
               ) -> list[Draft]:
    """Drafts for what ``OpticalMemory.add`` was given: a string (``kind``
    "text" or "document"; one draft), or one or a list of chat messages."""
    if isinstance(messages, str):
        if kind not in (None, "text", "document"):
            raise InputError(f"kind for a string must be 'text' or 'document' (got {kind!r})")
        return [text_draft(messages, kind or "text", None, counter, keep_text=keep_text)]
    if kind not in (None, "turn"):
        raise InputError(f"kind for chat messages must be 'turn' (got {kind!r})")
    if isinstance(messages, Mapping | Turn):
        messages = [messages]
    if not isinstance(messages, Sequence):
        raise InputError(
            f"messages must be a string or a list of messages (got {type(messages).__name__})")
    if not messages:
        raise EmptyInputError("no messages to add (got an empty list)")
    return [turn_draft(m, i, counter, keep_text=keep_text) for i, m in enumerate(messages)]


def check_messages(messages: Any, counter: TextCounter, renderer: Renderer, *,
                   keep_text: bool, names: Sequence[str] | None = None) -> int:
    """Check chat messages as an add would, storing nothing; their text tokens.
    ``names`` name each message in errors (default ``messages[i]``)."""
    if isinstance(messages, str | Mapping) or not isinstance(messages, Sequence):
        raise InputError(f"messages must be a list of messages (got {type(messages).__name__})")
    if names is not None and len(names) != len(messages):
        raise InputError(f"names has {len(names)} entries for {len(messages)} messages")
    total = 0
    for i, message in enumerate(messages):
        where = None if names is None else names[i]
        draft = turn_draft(message, i, counter, keep_text=keep_text, where=where)
        check_limits([draft], renderer, where=where)
        total += draft.item.text_tokens
    return total


def check_limits(drafts: Sequence[Draft], renderer: Renderer, *, where: str | None = None) -> None:
    """:class:`InputError` when an add exceeds :data:`~optical_memory.config.MAX_ADD_CHARS`
    or an item would fill more than :data:`~optical_memory.config.MAX_PAGES_PER_ITEM` pages."""
    total = sum(len(d.full_text) for d in drafts)
    if total > MAX_ADD_CHARS:
        raise InputError(f"{where + ': ' if where else ''}add too large: {total} characters "
                         f"in {len(drafts)} item(s) (limit {MAX_ADD_CHARS} per add)")
    for i, d in enumerate(drafts):
        if len(d.full_text) > MAX_PAGES_PER_ITEM:  # shorter texts cannot fill more pages
            pages = len(renderer.layout([d.render]))
            if pages > MAX_PAGES_PER_ITEM:
                raise InputError(f"{where or f'item {i}'} fills {pages} pages (limit "
                                 f"{MAX_PAGES_PER_ITEM} per item); split it or use a "
                                 f"smaller font")


def content_text(content: Any, where: str) -> str:
    """A message's content as text (a string, or text blocks joined by newlines)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        parts = []
        for j, block in enumerate(content):
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, Mapping) and block.get("type") == "text":
                parts.append(str(block.get("text", "")))
            else:
                kind = block.get("type") if isinstance(block, Mapping) else type(block).__name__
                raise InputError(f"{where}.content[{j}] is a {kind!r} block; only text blocks "
                                 "can be stored")
        return "\n".join(parts)
    raise InputError(f"{where}.content must be a string or a list of text blocks "
                     f"(got {type(content).__name__})")


def tool_call(call: Any, where: str) -> tuple[str, str, str]:
    """``(id, name, arguments)`` of an OpenAI or LangChain tool call."""
    if not isinstance(call, Mapping):
        raise InputError(f"{where} must be a dict (got {type(call).__name__})")
    fn = call.get("function")
    if isinstance(fn, Mapping):
        name, args = fn.get("name"), fn.get("arguments", "")
    else:
        name, args = call.get("name"), call.get("args", call.get("arguments", ""))
    cid = call.get("id")
    if not isinstance(cid, str) or not cid.strip():
        raise InputError(f"{where} needs an id (got {cid!r})")
    if not isinstance(name, str) or not name:
        raise InputError(f"{where} needs a function name (got {name!r})")
    if not isinstance(args, str):
        args = json.dumps(args, ensure_ascii=False, sort_keys=True)
    return cid, name, args


def jsonable(value: Any) -> Any:
    """``value`` if JSON can hold it, else its JSON round-trip with ``str`` for the rest."""
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return json.loads(json.dumps(value, default=str))


def read_chat_log(text: str, source: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The messages of a JSONL chat log (one message object per non-blank
    line), and a ``source:line`` name for each. :class:`InputError` naming
    the line for a line that is not a JSON object; :class:`EmptyInputError`
    for a log with no messages."""
    messages, names = [], []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            msg = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{source}:{n}: not a JSON line ({exc.msg})") from None
        if not isinstance(msg, dict):
            raise InputError(f"{source}:{n}: expected a message object, got {type(msg).__name__}")
        messages.append(msg)
        names.append(f"{source}:{n}: message")
    if not messages:
        raise EmptyInputError(f"{source}: no messages (empty chat log)")
    return messages, names


__all__ = [
    "ROLES",
    "AddResult",
    "Draft",
    "check_limits",
    "check_messages",
    "content_text",
    "drafts_for",
    "jsonable",
    "read_chat_log",
    "text_draft",
    "tool_call",
    "turn_draft",
]
