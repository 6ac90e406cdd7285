"""What the server says about itself is true: memory_context's accounting is
exactly what it sends, the budget holds, descriptions read cleanly, no empty
prompts capability, and the SDK's own runner (``mcp run``) loads the server."""
from __future__ import annotations

import base64
import io
import os
import re
import sys
from pathlib import Path

import pytest
from mcp import Client, MCPError, StdioServerParameters
from mcp.types import ImageContent, TextContent
from PIL import Image

import optical_memory_mcp
from optical_memory.conversation import generate_conversation
from optical_memory.tokens import get_counter, get_target
from optical_memory.tokens.billing import image_tokens

pytestmark = pytest.mark.anyio

APP = Path(optical_memory_mcp.__file__).with_name("app.py")


def _chat() -> list[dict]:
    return generate_conversation(tokens=4000, seed=11).messages


def _sent_tokens(res, target: str, system: str | None = None) -> int:
    """An independent count of what a tool result sends: o200k_base tokens of
    every text part, the target's vision tokens of every image (from the
    PNG's own size; an aged DeepSeek-OCR page in the cheapest mode holding it), and the system message as a chat message (+4)."""
    o200k = get_counter("o200k_base")
    tgt = get_target(target)
    total = o200k.count(system) + 4 if system else 0
    for part in res.content:
        if isinstance(part, TextContent):
            total += o200k.count(part.text)
        else:
            assert isinstance(part, ImageContent)
            with Image.open(io.BytesIO(base64.b64decode(part.data))) as im:
                total += image_tokens(tgt, *im.size)  # DeepSeek: the mode holding it
    return total


@pytest.mark.parametrize("budget", [700, 1200, 3000, 50_000])
async def test_context_accounting_equals_what_is_sent(connect, budget):
    """Before: the turns went out as indented JSON costing 888 tokens while the
    accounting said 576, and the caller's budget could be exceeded."""
    async with connect() as client:
        await client.call_tool("memory_add", {"messages": _chat()})
        for target, system in (("deepseek-ocr:base", None), ("openai:gpt-4o", "Be brief.")):
            res = await client.call_tool("memory_context", {
                "budget_tokens": budget, "target": target, "system": system, "keep_last": 3})
            assert not res.is_error, res.content
            acc = res.structured_content["accounting"]
            sent = _sent_tokens(res, target, system)
            assert acc["context_tokens"] == sent <= budget
            assert acc["budget_tokens"] == budget
            texts = [p.text for p in res.content if isinstance(p, TextContent)]
            assert f"Context: {sent} of {budget} tokens" in texts[-1]
            turns = [t for t in texts if t.startswith("Recent turns")]
            if turns:  # compact JSON: no indentation, no ", " / ": " separators between keys
                assert "\n " not in turns[0] and '", "' not in turns[0]


async def test_tool_descriptions_titles_and_no_prompts(connect):
    async with connect() as client:
        tools = (await client.list_tools()).tools
        caps = client.server_capabilities
        with pytest.raises(MCPError):
            await client.list_prompts()
    assert caps.prompts is None, "no prompts: the capability must not be advertised"
    assert caps.tools is not None and caps.resources is not None
    for tool in tools:
        assert tool.title and tool.annotations.title == tool.title, tool.name
        assert tool.description and not re.search(r"\n[ \t]", tool.description), tool.name
        assert tool.description == tool.description.strip()
    ctx = next(t for t in tools if t.name == "memory_context")
    assert ctx.annotations.read_only_hint is False  # it ages pages
    assert ctx.annotations.destructive_hint is False


def test_the_sdk_loader_finds_the_server():
    """``mcp run`` / ``mcp dev`` / ``mcp install`` all load the server through
    the SDK's ``_import_server``: it must find an MCPServer in app.py."""
    from mcp.cli.cli import _import_server
    from mcp.server.mcpserver import MCPServer

    server = _import_server(APP)
    assert isinstance(server, MCPServer) and server.name == "optical-memory"


async def test_mcp_run_serves_over_stdio(tmp_path, memory_home):
    mcp_cli = Path(sys.executable).with_name("mcp")
    assert mcp_cli.exists(), f"the SDK's command is missing: {mcp_cli}"
    env = {"OPTICAL_MEMORY_HOME": str(memory_home), "OPTICAL_MEMORY_MCP_USER": "dora",
           "OPTICAL_MEMORY_MCP_STORE": str(tmp_path / "run.db"),
           "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    params = StdioServerParameters(command=str(mcp_cli), args=["run", str(APP)], env=env)
    async with Client(params) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert "memory_context" in names
        res = await client.call_tool("memory_add", {"text": "the heron code is 4471"})
        assert not res.is_error, res.content
        stats = (await client.call_tool("memory_stats", {})).structured_content
    assert stats["user_id"] == "dora" and stats["items"] == 1
    assert (tmp_path / "run.db").exists()


def test_config_from_env_and_cli_defaults_match_the_library():
    from optical_memory.config import DEFAULT_DECODER, DEFAULT_KEEP_LAST
    from optical_memory.errors import InputError
    from optical_memory.tokens import DEFAULT_TARGET, DEFAULT_TOKENIZER
    from optical_memory_mcp import ServerConfig, cli, config

    assert (cli.DEFAULT_TARGET, cli.DEFAULT_TOKENIZER, cli.DEFAULT_DECODER,
            cli.DEFAULT_KEEP_LAST) == (DEFAULT_TARGET, DEFAULT_TOKENIZER, DEFAULT_DECODER,
                                       DEFAULT_KEEP_LAST)
    assert cli.ENV_PREFIX == config.ENV_PREFIX
    assert ServerConfig.from_env({}) == ServerConfig()
    cfg = ServerConfig.from_env({"OPTICAL_MEMORY_MCP_USER": "eve", "OPTICAL_MEMORY_MCP_KEEP_LAST": "3",
                                 "OPTICAL_MEMORY_MCP_TARGET": "gemini"})
    assert (cfg.user_id, cfg.keep_last, cfg.target) == ("eve", 3, "gemini")
    with pytest.raises(InputError, match="KEEP_LAST"):
        ServerConfig.from_env({"OPTICAL_MEMORY_MCP_KEEP_LAST": "many"})


def test_importing_the_package_loads_neither_the_sdk_nor_the_library():
    import subprocess

    code = ("import sys, optical_memory_mcp, optical_memory_mcp.cli; "
            "print(sorted(m for m in ('mcp', 'optical_memory.memory', 'tiktoken') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ})
    assert out.stdout.strip() == "[]", out.stdout
