"""Input → item drafts: chat messages (dicts, :class:`~optical_memory.render.Turn`,
LangChain messages and their dict serialisations), texts and documents are
checked and turned into the items the store keeps and the render items pages
are drawn from. Also the JSONL chat-log reader the CLI uses.

A turn's stored text is its content plus one ``→ name(arguments) [id]`` line
per tool call it makes, the same text that is drawn on pages and counted.
Every check runs before anything is stored; bad input raises
:class:`~optical_memory.errors.InputError` / :class:`EmptyInputError` naming
the message (``messages[i]`` or ``file:line``) and the value.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from optical_memory.config import (
    MAX_ADD_CHARS,
    MAX_NAME_CHARS,
    MAX_NESTING,
    MAX_PAGES_PER_ITEM,
    MAX_TIME_CHARS,
    MAX_TITLE_CHARS,
)
from optical_memory.errors import EmptyInputError, InputError
from optical_memory.render.config import RenderItem, Turn
from optical_memory.store import NewItem, text_hash
from optical_memory.store.metadata import META_KEY, check_metadata

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
    text tokens. ``warnings``: follow-up work (paging, aging, tier images)
    that failed after the items were stored; the items are stored all the
    same (do not add them again) and the next ``add`` / ``compact`` finishes
    that work."""

    item_ids: tuple[str, ...]
    page_ids: tuple[str, ...]
    text_tokens: int
    warnings: tuple[str, ...] = ()

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
    """A text or document draft (its size checked before it is tokenized)."""
    if not isinstance(text, str):
        raise InputError(f"text must be a string (got {type(text).__name__})")
    if not text.strip():
        raise EmptyInputError(f"nothing to store: the {kind} is empty or whitespace only "
                              f"({len(text)} characters)")
    _check_chars(len(text), 1)
    _check_label("title", title, MAX_TITLE_CHARS)
    tokens = counter.count(text)
    item = NewItem(kind=kind, text=text if keep_text else None, text_tokens=tokens,
                   name=title, content_hash=text_hash(text))  # type: ignore[arg-type]
    label = f"[{title}]" if title else None
    return Draft(item, RenderItem(item.id, "document" if kind == "document" else "text",
                                  text, label), text)


@dataclass(frozen=True)
class _Turn:
    """A chat message checked and flattened, not yet tokenized."""

    role: str
    text: str
    content_len: int
    name: str | None
    time: str | None
    ids: tuple[str, ...]
    tool_calls: tuple[Any, ...]


def _turn_parts(message: Any, where: str) -> _Turn:
    # unchecked input until the checks below
    role: Any
    content: Any
    name: Any
    time: Any
    tool_calls: Any
    if isinstance(message, Turn):
        role, content, name, time = message.role, message.content, message.name, message.time
        tool_calls, answers = (), None
    elif isinstance(message, Mapping):
        if "role" not in message and "type" in message:
            message = _langchain_dict(message, where)
        role = message.get("role")
        content = message.get("content")
        name, time = message.get("name"), message.get("time")
        tool_calls = message.get("tool_calls") or ()
        answers = message.get("tool_call_id")
    elif hasattr(message, "type") and hasattr(message, "content"):  # LangChain BaseMessage
        lc_type: Any = getattr(message, "type", None)
        role = _LC_ROLES.get(lc_type, lc_type)
        content = message.content
        name, time = getattr(message, "name", None), None
        tool_calls = getattr(message, "tool_calls", None) or ()
        answers = getattr(message, "tool_call_id", None)
    else:
        raise InputError(f"{where} must be a dict, a Turn or a chat message "
                         f"(got {type(message).__name__})")
    if not isinstance(role, str) or role not in ROLES:
        raise InputError(f"{where}.role must be one of {ROLES} (got {_short(role)})")
    content = content_text(content, where)
    _check_label(f"{where}.name", name, MAX_NAME_CHARS)
    _check_label(f"{where}.time", time, MAX_TIME_CHARS)
    if isinstance(tool_calls, str | bytes | Mapping) or not isinstance(tool_calls, Sequence):
        raise InputError(f"{where}.tool_calls must be a list of tool calls "
                         f"(got {type(tool_calls).__name__})")
    calls = [tool_call(c, f"{where}.tool_calls[{j}]") for j, c in enumerate(tool_calls)]
    lines = [content] if content else []
    lines += [f"→ {fn}({args}) [{cid}]" for cid, fn, args in calls]
    text = "\n".join(lines)
    if not text.strip():
        raise EmptyInputError(f"{where} is empty (role {role!r}, no content, no tool calls)")
    if role == "tool":
        if not isinstance(answers, str) or not answers.strip():
            raise InputError(f"{where}: a tool message needs tool_call_id (got {_short(answers)})")
        _check_label(f"{where}.tool_call_id", answers, MAX_NAME_CHARS)
        ids: tuple[str, ...] = (answers,)
    else:
        ids = tuple(cid for cid, _, _ in calls)
    return _Turn(role, text, len(content), name, time, ids, tuple(tool_calls))


def _langchain_dict(message: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A LangChain message serialised as a dict, ``messages_to_dict``'s
    ``{"type": "human", "data": {"content": ...}}`` or the flat
    ``{"type": "ai", "content": ...}``, as the role-keyed dict ``_turn_parts``
    reads (human → user, ai → assistant; tool calls, ``tool_call_id`` and
    ``name`` kept)."""
    kind = message.get("type")
    data = message.get("data", message)
    if not isinstance(data, Mapping):
        raise InputError(f"{where}.data must be an object (got {type(data).__name__})")
    if not isinstance(kind, str) or kind not in _LC_ROLES:
        raise InputError(f"{where}: a message needs role {ROLES}, or a LangChain type "
                         f"{tuple(_LC_ROLES)} (got type {_short(kind)})")
    calls = data.get("tool_calls")
    extra = data.get("additional_kwargs")
    if not calls and isinstance(extra, Mapping):  # older exports: OpenAI-shaped, here
        calls = extra.get("tool_calls")
    return {"role": _LC_ROLES[kind], "content": data.get("content"), "name": data.get("name"),
            "tool_calls": calls or (), "tool_call_id": data.get("tool_call_id")}


def _turn_draft(parts: _Turn, counter: TextCounter, keep_text: bool) -> Draft:
    meta: dict[str, Any] = {"content_len": parts.content_len}
    if keep_text and parts.tool_calls:
        meta["tool_calls"] = [jsonable(c) for c in parts.tool_calls]
    item = NewItem(kind="turn", text=parts.text if keep_text else None,
                   text_tokens=counter.count(parts.text), role=parts.role, name=parts.name,
                   time=parts.time, tool_call_ids=parts.ids, meta=meta,
                   content_hash=text_hash(parts.text))
    label = Turn(item.id, parts.role, parts.text, parts.name, parts.time).label
    return Draft(item, RenderItem(item.id, "turn", parts.text, label), parts.text)


def turn_draft(message: Any, index: int, counter: TextCounter, *, keep_text: bool,
               where: str | None = None) -> Draft:
    """A chat-turn draft from a message dict, a Turn or a LangChain message."""
    parts = _turn_parts(message, where or f"messages[{index}]")
    _check_chars(len(parts.text), 1, where)
    return _turn_draft(parts, counter, keep_text)


def drafts_for(messages: Any, kind: str | None, counter: TextCounter, *, keep_text: bool
               ) -> list[Draft]:
    """Drafts for what ``OpticalMemory.add`` was given: a string (``kind``
    "text" or "document"; one draft), or one or a list of chat messages.
    Every check, the size limit included, runs before any text is tokenized."""
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
    parts, total = [], 0
    for i, m in enumerate(messages):
        parts.append(_turn_parts(m, f"messages[{i}]"))
        total += len(parts[-1].text)
        _check_chars(total, i + 1)
    return [_turn_draft(p, counter, keep_text) for p in parts]


def with_metadata(drafts: list[Draft], metadata: Mapping[str, Any] | None) -> list[Draft]:
    """``drafts`` with the caller's ``metadata`` (checked,
    :func:`~optical_memory.store.metadata.check_metadata`) on every item."""
    if metadata is None:
        return drafts
    value = check_metadata(metadata)
    return [replace(d, item=replace(d.item, meta={**d.item.meta, META_KEY: value}))
            for d in drafts]


def _check_chars(total: int, items: int, where: str | None = None) -> None:
    if total > MAX_ADD_CHARS:
        raise InputError(f"{where + ': ' if where else ''}add too large: more than "
                         f"{MAX_ADD_CHARS} characters in {items} item(s) (got {total}; "
                         f"limit {MAX_ADD_CHARS} per add)")


def _check_label(name: str, value: object, limit: int) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise InputError(f"{name} must be a string (got {type(value).__name__})")
    if len(value) > limit:
        raise InputError(f"{name} is too long: {len(value)} characters (limit {limit})")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


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
                text = block.get("text", "")
                if not isinstance(text, str):
                    raise InputError(f"{where}.content[{j}].text must be a string "
                                     f"(got {type(text).__name__})")
                parts.append(text)
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
    check_nesting(call, where)
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
    _check_label(f"{where}.id", cid, MAX_NAME_CHARS)
    _check_label(f"{where} function name", name, MAX_NAME_CHARS)
    if not isinstance(args, str):
        check_nesting(args, f"{where} arguments")
        try:
            args = json.dumps(args, ensure_ascii=False, sort_keys=True, default=str)
        except (TypeError, ValueError):  # e.g. keys of mixed types cannot be sorted
            try:
                args = json.dumps(args, ensure_ascii=False, default=str)
            except (TypeError, ValueError) as exc:
                raise InputError(f"{where} arguments cannot be written as JSON: {exc}") from None
    return cid, name, args


def check_nesting(value: Any, where: str, limit: int = MAX_NESTING) -> None:
    """:class:`InputError` when lists / dicts in ``value`` nest deeper than ``limit``
    (checked without recursion, so any depth is refused cleanly)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, Mapping):
            children = list(node.values())
        elif isinstance(node, list | tuple):
            children = list(node)
        else:
            continue
        if depth > limit:
            raise InputError(f"{where} nest deeper than {limit} levels")
        stack.extend((c, depth + 1) for c in children)


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON (its JSON round trip: keys become strings, values
    JSON cannot hold become their ``str``), so it stores and reads back the same."""
    return json.loads(json.dumps(value, ensure_ascii=False, default=str))


def read_chat_log(text: str, source: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The messages of a chat log, and a name for each (``source:line`` for
    JSONL, ``source: messages[i]`` otherwise). Three shapes are read:

    * JSONL: one message object per non-blank line;
    * a JSON array of message objects;
    * a JSON object ``{"messages": [...]}`` (an OpenAI request body, an export).

    :class:`InputError` names the line or index that is not a message object;
    :class:`EmptyInputError` for a log with no messages."""
    whole = _whole_json(text, source)
    if whole is None:
        return _read_jsonl(text, source)
    if isinstance(whole, dict):
        if "messages" not in whole:  # one JSONL line holding one message
            return _read_jsonl(text, source)
        whole, where = whole["messages"], "messages"
        if not isinstance(whole, list):
            raise InputError(f"{source}: \"messages\" must be a list of message objects, "
                             f"got {type(whole).__name__}")
    else:
        where = ""
    messages, names = [], []
    for i, msg in enumerate(whole):
        name = f"{source}: {where}[{i}]"
        if not isinstance(msg, dict):
            raise InputError(f"{name}: expected a message object, got {type(msg).__name__}")
        messages.append(msg)
        names.append(name)
    if not messages:
        raise EmptyInputError(f"{source}: no messages (empty chat log)")
    return messages, names


def _whole_json(text: str, source: str) -> list[Any] | dict[str, Any] | None:
    """``text`` as one JSON array, or one object holding ``"messages"``;
    ``None`` for JSONL (an object per line, or one line's object)."""
    head = text.lstrip()[:1]
    if head not in ("[", "{"):
        return None
    try:
        value = json.loads(text)
    except RecursionError:
        raise InputError(f"{source}: JSON nested too deeply") from None
    except json.JSONDecodeError as exc:
        if head == "{":
            return None  # several lines: JSONL
        raise InputError(f"{source}:{exc.lineno}: not a JSON array ({exc.msg})") from None
    except ValueError as exc:  # e.g. an integer longer than Python converts
        raise InputError(f"{source}: not usable JSON ({exc})") from None
    if isinstance(value, list) or (isinstance(value, dict) and "messages" in value):
        return value
    return None


def _read_jsonl(text: str, source: str) -> tuple[list[dict[str, Any]], list[str]]:
    messages, names = [], []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            msg = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{source}:{n}: not a JSON line ({exc.msg})") from None
        except RecursionError:
            raise InputError(f"{source}:{n}: JSON nested too deeply") from None
        except ValueError as exc:  # e.g. an integer longer than Python converts
            raise InputError(f"{source}:{n}: not a usable JSON line ({exc})") from None
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
    "check_nesting",
    "content_text",
    "drafts_for",
    "jsonable",
    "read_chat_log",
    "text_draft",
    "tool_call",
    "turn_draft",
    "with_metadata",
]
