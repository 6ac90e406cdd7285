"""The optional answer stage: ask a vision model the needle question over the
haystack's page images, through an OpenAI-compatible chat endpoint.

The prompt is RULER's NIAH template with the context given as page images
(in reading order, at the cell's tier) instead of text. :func:`ask_context`
asks instead over a whole context (``OpticalMemory.context(...).messages``
or a text baseline's messages), its image blocks sent as OpenAI
``image_url`` parts (:func:`openai_messages`), the question as a last user
message. The HTTP exchange is
that of :class:`optical_memory.decode.openai_compat.OpenAICompatDecoder`
(standard library only, same errors), so anything that serves DeepSeek-OCR,
Qwen-VL or GPT-4o-style image input works.
"""
from __future__ import annotations

import base64
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from optical_memory.errors import InputError

PREAMBLE = ("Some special magic {type} are hidden within the following pages of text. "
            "Make sure to memorize it. I will quiz you about the {type} afterwards.")


@dataclass(frozen=True)
class AnswerEndpoint:
    """Where and how to ask.

    base_url: API root ending in /v1 (e.g. ``http://127.0.0.1:8000/v1``).
    model:    served model name.
    api_key:  bearer token; empty sends none (local servers).
    max_tokens: completion limit (RULER allows 128 for NIAH answers).
    """

    base_url: str
    model: str
    api_key: str = ""
    timeout: float = 300.0
    max_tokens: int | None = 128
    temperature: float = 0.0
    extra_body: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.base_url, str) or not self.base_url.startswith(("http://", "https://")):
            raise InputError(f"answer base_url must be an http(s) URL (got {self.base_url!r})")
        if not isinstance(self.model, str) or not self.model:
            raise InputError(f"answer model must be a non-empty string (got {self.model!r})")


@dataclass(frozen=True)
class Answer:
    text: str
    model: str
    seconds: float
    usage: dict[str, Any]


def build_request(endpoint: AnswerEndpoint, pages: Sequence[bytes], question: str,
                  value_type: str = "number") -> dict[str, Any]:
    """The chat completion body: preamble, one image part per page, question."""
    plural = {"number": "numbers", "word": "words", "uuid": "uuids"}.get(value_type, value_type)
    parts: list[dict[str, Any]] = [{"type": "text", "text": PREAMBLE.format(type=plural)}]
    for png in pages:
        url = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
        parts.append({"type": "image_url", "image_url": {"url": url}})
    parts.append({"type": "text", "text": question})
    body: dict[str, Any] = {
        "model": endpoint.model,
        "messages": [{"role": "user", "content": parts}],
        "temperature": endpoint.temperature,
    }
    if endpoint.max_tokens is not None:
        body["max_tokens"] = endpoint.max_tokens
    body.update(endpoint.extra_body)
    return body


CONTEXT_PREAMBLE = ("Some special magic {type} are hidden in the conversation above, in its "
                    "text or on its page images. Answer from it.")


def openai_content(content: Any) -> Any:
    """A message's content in OpenAI's chat format: a string as is; image
    blocks in the memory's (LangChain's standard) shape ``{"type": "image",
    "base64": ..., "mime_type": ...}`` as ``image_url`` parts with a data URL;
    other parts (text, ``image_url``) as given."""
    if isinstance(content, str) or content is None:
        return content
    out = []
    for block in content:
        if isinstance(block, dict) and block.get("type") == "image" and "base64" in block:
            url = f"data:{block.get('mime_type', 'image/png')};base64,{block['base64']}"
            out.append({"type": "image_url", "image_url": {"url": url}})
        else:
            out.append(block)
    return out


def openai_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Chat messages (a context's, as the memory hands them) in OpenAI's
    chat format: every field kept, image blocks converted (:func:`openai_content`)."""
    return [dict(m, content=openai_content(m.get("content"))) for m in messages]


def context_request(endpoint: AnswerEndpoint, messages: Sequence[Mapping[str, Any]],
                    question: str, value_type: str = "number",
                    after: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """The chat completion body asking ``question`` over a context: its
    ``messages`` (OpenAI format), a user message with the preamble and the
    question, then ``after`` (e.g. a tool call and its result)."""
    plural = {"number": "numbers", "word": "words", "uuid": "uuids"}.get(value_type, value_type)
    ask_msg = {"role": "user", "content": f"{CONTEXT_PREAMBLE.format(type=plural)} {question}"}
    body: dict[str, Any] = {
        "model": endpoint.model,
        "messages": [*openai_messages(messages), ask_msg, *openai_messages(after)],
        "temperature": endpoint.temperature,
    }
    if endpoint.max_tokens is not None:
        body["max_tokens"] = endpoint.max_tokens
    body.update(endpoint.extra_body)
    return body


def post(endpoint: AnswerEndpoint, body: dict[str, Any]) -> Answer:
    """POST a chat completion body to ``endpoint``; raises
    :class:`~optical_memory.errors.DecodeError` on HTTP or reply errors."""
    from optical_memory.decode.openai_compat import OpenAICompatDecoder, completion_text

    client = OpenAICompatDecoder(base_url=endpoint.base_url, api_key=endpoint.api_key,
                                 model=endpoint.model, timeout=endpoint.timeout)
    t0 = time.perf_counter()
    reply = client.post(body)
    text, _ = completion_text(reply)
    return Answer(text.strip(), str(reply.get("model") or endpoint.model),
                  time.perf_counter() - t0, dict(reply.get("usage") or {}))


def ask_context(endpoint: AnswerEndpoint, messages: Sequence[Mapping[str, Any]], question: str,
                value_type: str = "number", after: Sequence[Mapping[str, Any]] = ()) -> Answer:
    """Ask ``question`` over a context's ``messages`` (:func:`context_request`)."""
    return post(endpoint, context_request(endpoint, messages, question, value_type, after))


def ask(endpoint: AnswerEndpoint, pages: Sequence[bytes], question: str,
        value_type: str = "number") -> Answer:
    """POST the question over ``pages`` (PNG bytes); raises
    :class:`~optical_memory.errors.DecodeError` on HTTP or reply errors."""
    if not pages:
        raise InputError("the answer stage needs at least one page image")
    return post(endpoint, build_request(endpoint, pages, question, value_type))


__all__ = ["CONTEXT_PREAMBLE", "PREAMBLE", "Answer", "AnswerEndpoint", "ask", "ask_context",
           "build_request", "context_request", "openai_content", "openai_messages", "post"]
