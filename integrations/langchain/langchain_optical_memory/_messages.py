"""LangChain messages ↔ the chat dicts :meth:`OpticalMemory.add` stores.

One LangChain message becomes exactly one stored turn, so the ``n`` most
recent stored turns are always the ``n`` most recent messages: the
compressor can hand back the *original* message objects for the turns it
keeps as text (ids, metadata and any non-text blocks intact).

What a page can show is text, so content blocks are flattened: text blocks
keep their text, tool-call blocks are dropped (the message's ``tool_calls``
carry them), any other block (image, audio, file, reasoning) leaves a
``[<type> block]`` marker. A message with nothing to draw is stored as
``[empty message]``, since the memory refuses empty turns.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    SystemMessage,
    ToolMessage,
)

EMPTY_MARKER = "[empty message]"
_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool",
          "function": "function"}
_CHAT_ROLES = ("user", "assistant", "system", "tool", "developer", "function")
_SKIPPED_BLOCKS = ("tool_call", "tool_use", "tool_call_chunk", "function_call")


def content_text(content: str | Sequence[Any]) -> str:
    """The drawable text of a message's ``content`` (string or blocks)."""
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict):
            kind = block.get("type")
            if kind == "text":
                parts.append(str(block.get("text", "")))
            elif kind not in _SKIPPED_BLOCKS:
                parts.append(f"[{kind or 'unknown'} block]")
    return "\n".join(p for p in parts if p)


def image_blocks(content: str | Sequence[Any]) -> list[dict[str, Any]]:
    """The image blocks of a message's ``content`` (any image block shape:
    LangChain's standard ``image``, OpenAI's ``image_url``), as given."""
    if isinstance(content, str):
        return []
    return [b for b in content if isinstance(b, dict) and b.get("type") in ("image", "image_url")]


def image_sizes(content: str | Sequence[Any]) -> list[tuple[int, int] | None]:
    """One entry per image block of ``content``: its ``(width, height)`` when
    the block carries the image inline (base64 or a ``data:`` URL), else
    ``None`` (a remote URL or file id: the size is not known here)."""
    if isinstance(content, str):
        return []
    out: list[tuple[int, int] | None] = []
    for block in image_blocks(content):
        data = block.get("base64") or block.get("data")
        image_url = block.get("image_url")  # OpenAI: {"url": ...} or a bare string
        url = block.get("url") or (image_url.get("url") if isinstance(image_url, dict)
                                   else image_url)
        if not data and isinstance(url, str) and url.startswith("data:") and "," in url:
            data = url.split(",", 1)[1]
        out.append(_inline_size(data) if isinstance(data, str) else None)
    return out


def _inline_size(data: str) -> tuple[int, int] | None:
    import base64
    import binascii
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(base64.b64decode(data, validate=False))) as img:
            return img.size
    except (binascii.Error, ValueError, OSError, UnidentifiedImageError):
        return None


def role_of(message: BaseMessage) -> str:
    """The chat role a message is stored under."""
    if isinstance(message, ChatMessage):
        return message.role if message.role in _CHAT_ROLES else "user"
    return _ROLES.get(message.type, "user")


def to_memory_message(message: BaseMessage, index: int | None = None) -> dict[str, Any]:
    """The dict :meth:`OpticalMemory.add` stores for ``message``.

    A tool call that carries no id (LangChain allows it; the memory pairs
    calls with results by id) is named from the message's content, never
    from its position, so the same message always gives the same dict.
    ``index`` is accepted for compatibility and not used.
    """
    out: dict[str, Any] = {"role": role_of(message), "content": content_text(message.content)}
    if message.name:
        out["name"] = message.name
    if isinstance(message, AIMessage) and message.tool_calls:
        anon = hashlib.sha256(json.dumps(
            [out["content"], [[c["name"], c.get("args", {})] for c in message.tool_calls]],
            sort_keys=True, default=str).encode("utf-8", "surrogatepass")).hexdigest()[:12]
        out["tool_calls"] = [
            {"id": call.get("id") or f"call_unidentified_{anon}_{j}",
             "name": call["name"], "args": call.get("args", {})}
            for j, call in enumerate(message.tool_calls)
        ]
    if isinstance(message, ToolMessage):
        out["tool_call_id"] = message.tool_call_id
    if not out["content"].strip() and not out.get("tool_calls"):
        out["content"] = EMPTY_MARKER
    return out


def split_system(messages: Sequence[BaseMessage]) -> tuple[list[SystemMessage], list[BaseMessage]]:
    """Leading system messages, and the history after them. A system message
    further down is an ordinary turn of the history."""
    i = 0
    while i < len(messages) and isinstance(messages[i], SystemMessage):
        i += 1
    return list(messages[:i]), list(messages[i:])  # type: ignore[arg-type]


def system_text(system: Sequence[SystemMessage]) -> str | None:
    """The system messages' text as one string (``None`` when there is none)."""
    text = "\n\n".join(content_text(m.content) for m in system)
    return text if text.strip() else None


__all__ = ["EMPTY_MARKER", "content_text", "image_blocks", "image_sizes", "role_of",
           "split_system", "system_text", "to_memory_message"]
