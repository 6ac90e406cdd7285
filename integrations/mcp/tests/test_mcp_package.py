"""Package surface: pinned exports, version, typing marker, no side effects,
and the README's commands and client snippet parse with the real CLI."""
from __future__ import annotations

import json
import re
import shlex
from importlib.metadata import version
from pathlib import Path

import pytest
from mcp import Client

import optical_memory_mcp
from optical_memory_mcp import ServerConfig, create_server
from optical_memory_mcp.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"


def test_public_api_is_pinned():
    assert optical_memory_mcp.__all__ == [
        "PAGE_URI_TEMPLATE", "ServerConfig", "__version__", "create_server", "page_uri"]
    assert optical_memory_mcp.__version__ == version("optical-memory-mcp")
    assert (Path(optical_memory_mcp.__file__).parent / "py.typed").exists()
    assert optical_memory_mcp.page_uri("abc") == "optical-memory://page/abc"


@pytest.mark.anyio
async def test_memory_opens_on_first_use_only(memory_home):
    server = create_server(ServerConfig(user_id="alice"))
    db = memory_home / "memory.db"
    async with Client(server, mode="legacy") as client:
        await client.list_tools()
        assert not db.exists(), "listing tools must not open the store"
        res = await client.call_tool("memory_stats", {})
        assert not res.is_error and res.structured_content["items"] == 0
    assert db.exists(), "the default store lives in $OPTICAL_MEMORY_HOME"


def test_config_rejects_bad_values():
    from optical_memory.errors import InputError

    with pytest.raises(InputError, match="user_id"):
        ServerConfig(user_id="")
    with pytest.raises(InputError, match="keep_last"):
        ServerConfig(keep_last=-1)


def _readme_blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_commands_parse():
    lines = [ln.split("#")[0].strip() for block in _readme_blocks("bash") for ln in block.splitlines()]
    commands = [shlex.split(ln) for ln in lines if ln.startswith("optical-memory-mcp")]
    assert len(commands) >= 3
    for argv in commands:
        ctx = main.make_context("optical-memory-mcp", argv[1:])
        assert ctx.params["user_id"] == "alice"


def test_readme_client_snippet_is_valid():
    (snippet,) = _readme_blocks("json")
    server = json.loads(snippet)["mcpServers"]["optical-memory"]
    assert server["command"] == "optical-memory-mcp"
    ctx = main.make_context("optical-memory-mcp", server["args"])
    assert ctx.params["user_id"] == "alice" and ctx.params["store"].endswith("memory.db")
    assert not ctx.params["http"], "desktop clients launch it over stdio"
