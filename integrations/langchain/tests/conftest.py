"""Shared test helpers for langchain-optical-memory.

- Async tests run under pytest-asyncio in strict mode too (the root
  project's pytest config does not set ``asyncio_mode = "auto"``): coroutine
  tests under this folder get the ``asyncio`` mark at collection.
- ``RecordingChatModel``: a fake chat model (langchain-core's
  ``GenericFakeChatModel``) that records every message list it is sent.
- ``conversation``: the core's synthetic 200-turn agent conversation as
  LangChain messages (deterministic).
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import BaseMessage, convert_to_messages
from pydantic import Field

HERE = Path(__file__).resolve().parent


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_pycollect_makeitem(collector, name, obj):
    # trylast wrapper = innermost: runs before pytest-asyncio's own wrapper
    # looks for the mark on the collected items.
    result = yield
    items = result if isinstance(result, list) else [result] if result is not None else []
    for item in items:
        fn = getattr(item, "obj", None)
        if (isinstance(item, pytest.Function) and inspect.iscoroutinefunction(fn)
                and HERE in Path(str(item.path)).resolve().parents
                and item.get_closest_marker("asyncio") is None):
            item.add_marker(pytest.mark.asyncio)
    return result


class RecordingChatModel(GenericFakeChatModel):
    """Fake chat model that keeps every message list it receives."""

    calls: list[list[BaseMessage]] = Field(default_factory=list)

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any):
        self.calls.append(list(messages))
        return super()._generate(messages, *args, **kwargs)

    def _stream(self, messages: list[BaseMessage], *args: Any, **kwargs: Any):
        self.calls.append(list(messages))
        return super()._stream(messages, *args, **kwargs)

    def bind_tools(self, tools: Any, **kwargs: Any) -> RecordingChatModel:
        return self


@pytest.fixture
def recorder():
    """``recorder(replies)``: a RecordingChatModel answering ``replies`` in turn."""

    def make(replies: list[Any]) -> RecordingChatModel:
        return RecordingChatModel(messages=iter(replies))

    return make


@pytest.fixture(scope="session")
def conversation() -> list[BaseMessage]:
    from optical_memory import generate_conversation

    return convert_to_messages(generate_conversation(turns=200, seed=3).messages)
