"""Hostile tool arguments and failures inside tools: every call either works
or comes back as a tool error *with a message* (never the SDK's bare
"Error executing tool <name>"), booleans are strict, and the server keeps
serving afterwards."""
from __future__ import annotations

import logging
import re

import pytest
from mcp import MCPError

from optical_memory import OpticalMemory
from optical_memory_mcp import models as models_module
from optical_memory_mcp.server import MAX_ERROR_CHARS

pytestmark = pytest.mark.anyio

BARE = re.compile(r"^Error executing tool \w+$")


async def _ok(client, tool: str, args: dict | None = None):
    res = await client.call_tool(tool, args or {})
    assert not res.is_error, res.content
    return res


def _message(res) -> str:
    """The text of an error result; fails on a bare SDK crash message."""
    assert res.is_error
    text = " ".join(getattr(c, "text", "") for c in res.content).strip()
    assert text and not BARE.match(text), f"no message reached the client: {text!r}"
    return text


async def _items(client) -> int:
    return (await _ok(client, "memory_stats")).structured_content["items"]


# -- strict booleans -------------------------------------------------------------


@pytest.mark.parametrize("mode", ["legacy", "auto"])
@pytest.mark.parametrize("value", ["yes", "true", "True", "1", 1, 1.0, "on", [True], {"x": 1}])
async def test_delete_all_takes_only_json_true(connect, mode, value):
    async with connect(mode=mode) as client:
        await _ok(client, "memory_add", {"text": "keep me"})
        res = await client.call_tool("memory_delete", {"delete_all": value})
        assert "delete_all" in _message(res)
        assert await _items(client) == 1, "a non-boolean must not wipe the scope"


@pytest.mark.parametrize("value", ["false", "no", 0, ""])
async def test_delete_all_false_lookalikes_are_refused_too(connect, value):
    async with connect() as client:
        await _ok(client, "memory_add", {"text": "keep me"})
        res = await client.call_tool("memory_delete", {"item_ids": ["x"], "delete_all": value})
        assert "delete_all" in _message(res)
        assert await _items(client) == 1


async def test_delete_all_true_still_deletes(connect):
    async with connect() as client:
        await _ok(client, "memory_add", {"text": "forget me"})
        gone = (await _ok(client, "memory_delete", {"delete_all": True})).structured_content
        assert gone["items"] == 1 and await _items(client) == 0


# -- huge and mistyped numbers ---------------------------------------------------


@pytest.mark.parametrize(("tool", "args"), [
    ("memory_search", {"query": "x", "k": 2**63}),
    ("memory_search", {"query": "x", "k": 10**400}),
    ("memory_search", {"query": "x", "k": -2**63}),
    ("memory_search", {"query": "x", "k": 1.5}),
    ("memory_search", {"query": "x", "k": "many"}),
    ("memory_search", {"query": "x", "max_chars": 2**70}),
    ("memory_search", {"query": "x", "max_chars": -1}),
    ("memory_context", {"budget_tokens": 2**63}),
    ("memory_context", {"budget_tokens": 10**400}),
    ("memory_context", {"budget_tokens": 1.5}),
    ("memory_context", {"budget_tokens": 100_000, "keep_last": 2**63}),
    ("memory_context", {"budget_tokens": 100_000, "keep_last": 10**400}),
    ("memory_context", {"budget_tokens": 100_000, "keep_last": [1]}),
])
async def test_huge_or_mistyped_numbers_give_a_message(connect, tool, args):
    async with connect() as client:
        await _ok(client, "memory_add", {"text": "some remembered text"})
        res = await client.call_tool(tool, args)
        if res.is_error:
            _message(res)
        await _ok(client, "memory_stats")  # still serving


async def test_huge_k_names_k(connect):
    async with connect() as client:
        res = await client.call_tool("memory_search", {"query": "x", "k": 2**63})
        assert "k" in _message(res)


# -- hostile messages --------------------------------------------------------------


def _nested(depth: int) -> object:
    value: object = "leaf"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("message", [
    {"role": "assistant", "content": "", "tool_calls": 1.5},
    {"role": "assistant", "content": "", "tool_calls": [1.5]},
    {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "name": "f", "arguments": 2**70}]},
    {"role": "assistant", "content": "",
     "tool_calls": [{"id": "c1", "name": "f", "arguments": {"n": 10**300}}]},
    {"role": "assistant", "content": "",
     "tool_calls": [{"id": "c1", "name": "f", "arguments": {"deep": _nested(100)}}]},
    {"role": "assistant", "content": "",
     "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\": 1}"}}]},
    {"role": "user", "content": "x" * 2_000_000},
    {"role": "user", "content": "nul\x00byte and \ud800 lone surrogate"},
    {"role": "user", "content": "hi", "name": "n" * 10_000},
    {"role": "user", "content": "hi", "time": "t" * 10_000},
    {"role": "user", "content": ["not", "a", "string"]},
    {"role": "user", "content": {"nested": _nested(50)}},
])
async def test_hostile_messages_work_or_give_a_message(connect, message):
    async with connect(mode="auto") as client:
        res = await client.call_tool("memory_add", {"messages": [message]})
        if res.is_error:
            _message(res)
        await _ok(client, "memory_stats")


async def test_deep_arguments_over_json_rpc(connect):
    async with connect(mode="legacy") as client:
        res = await client.call_tool("memory_add", {"messages": [
            {"role": "assistant", "content": "",
             "tool_calls": [{"id": "c1", "name": "f", "arguments": {"deep": _nested(150)}}]}]})
        if res.is_error:
            _message(res)
        await _ok(client, "memory_stats")


# -- unexpected failures inside tools ------------------------------------------------


@pytest.mark.parametrize("mode", ["legacy", "auto"])
@pytest.mark.parametrize(("exc", "says"), [
    (RecursionError("maximum recursion depth exceeded"), "RecursionError: maximum recursion"),
    (OverflowError("Python int too large to convert to C long"), "OverflowError: Python int"),
    (TypeError("unhashable type: 'dict'"), "TypeError: unhashable"),
    (OSError(28, "No space left on device"), "No space left on device"),
    (MemoryError(), "MemoryError"),
    (ValueError("x" * 100_000), "ValueError: xxx"),
])
async def test_unexpected_errors_reach_the_client_as_messages(connect, monkeypatch, mode, exc,
                                                              says):
    def broken(self, *args, **kwargs):
        raise exc

    async with connect(mode=mode) as client:
        monkeypatch.setattr(OpticalMemory, "retrieve", broken)
        res = await client.call_tool("memory_search", {"query": "anything"})
        text = _message(res)
        assert says in text and len(text) <= MAX_ERROR_CHARS + 100
        await _ok(client, "memory_stats")


async def test_errors_outside_the_memory_call_also_reach_the_client(connect, monkeypatch):
    def broken(*args, **kwargs):
        raise KeyError("accounting field")

    async with connect() as client:
        await _ok(client, "memory_add", {"text": "some text"})
        monkeypatch.setattr(models_module.AccountingOut, "of", broken)
        res = await client.call_tool("memory_context", {"budget_tokens": 50_000})
        assert "KeyError" in _message(res) and "accounting field" in _message(res)


async def test_unexpected_error_traceback_is_logged_at_debug(connect, monkeypatch, caplog):
    def broken(self, *args, **kwargs):
        raise OverflowError("boom")

    caplog.set_level(logging.DEBUG, logger="optical_memory_mcp.server")
    async with connect(mode="auto") as client:
        monkeypatch.setattr(OpticalMemory, "stats", broken)
        assert "OverflowError: boom" in _message(await client.call_tool("memory_stats", {}))
    records = [r for r in caplog.records if r.name == "optical_memory_mcp.server" and r.exc_info]
    assert records and records[0].levelno == logging.DEBUG


async def test_resource_failure_is_an_error_with_a_message(connect, monkeypatch):
    def broken(self, *args, **kwargs):
        raise OSError(5, "Input/output error")

    async with connect() as client:
        doc = (await _ok(client, "memory_add", {"text": "a page", "kind": "document"})
               ).structured_content
        monkeypatch.setattr(OpticalMemory, "tier_png", broken)
        with pytest.raises(MCPError, match="Input/output error"):
            await client.read_resource(doc["page_uris"][0])
        await _ok(client, "memory_stats")
