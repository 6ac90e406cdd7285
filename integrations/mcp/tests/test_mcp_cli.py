"""The ``optical-memory-mcp`` command: help, usage errors, and real servers
started as subprocesses (stdio, and streamable HTTP on loopback) with their
scope from ``--user``."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest
from click.testing import CliRunner
from mcp import Client, StdioServerParameters

from optical_memory_mcp.cli import main

SCRIPT = Path(sys.executable).with_name("optical-memory-mcp")


def test_help_lists_every_option():
    res = CliRunner().invoke(main, ["--help"])
    assert res.exit_code == 0, res.output
    for flag in ("--store", "--user", "--agent", "--session", "--target", "--http", "--host",
                 "--port", "--keep-last"):
        assert flag in res.output
    assert "127.0.0.1" in res.output
    assert "postgresql://" in res.output  # the server opens a PostgreSQL store as well


@pytest.mark.parametrize(("args", "says"), [
    (["--host", "0.0.0.0"], "--host only applies with --http"),
    (["--target", "no-such-model"], "no-such-model"),
    (["--user", "  "], "user_id"),
    (["--keep-last", "-1"], "keep-last"),
])
def test_bad_flags_are_usage_errors(args, says):
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 2 and says in res.output, res.output


def _stdio(user: str, store: Path, home: Path) -> Client:
    return Client(StdioServerParameters(
        command=str(SCRIPT), args=["--user", user, "--store", str(store)],
        env={"OPTICAL_MEMORY_HOME": str(home)}))


@pytest.mark.anyio
async def test_stdio_servers_with_different_users_are_isolated(tmp_path, memory_home):
    """Two server processes over one store file; only ``--user`` differs."""
    assert SCRIPT.exists(), f"console script missing: {SCRIPT}"
    store = tmp_path / "shared.db"
    async with _stdio("alice", store, memory_home) as alice:
        res = await alice.call_tool("memory_add", {"text": "the otter password is copper"})
        assert not res.is_error, res.content
        hits = (await alice.call_tool("memory_search", {"query": "otter"})).structured_content
        assert len(hits["hits"]) == 1
    async with _stdio("bob", store, memory_home) as bob:
        assert (await bob.call_tool("memory_search", {"query": "otter"})
                ).structured_content["hits"] == []
        assert (await bob.call_tool("memory_stats", {})).structured_content["items"] == 0
    assert not (memory_home / "memory.db").exists(), "--store is used, not the default file"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.anyio
async def test_http_serves_on_loopback(tmp_path, memory_home):
    port = _free_port()
    env = {**os.environ, "OPTICAL_MEMORY_HOME": str(memory_home),
           "OPTICAL_MEMORY_MCP_USER": "carol"}
    proc = subprocess.Popen(
        [str(SCRIPT), "--http", "--port", str(port), "--store", str(tmp_path / "m.db")],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                assert proc.poll() is None, proc.communicate()[1].decode()
                assert time.monotonic() < deadline, "server did not start listening"
                await anyio.sleep(0.1)
        async with Client(f"http://127.0.0.1:{port}/mcp") as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert "memory_context" in names
            res = await client.call_tool("memory_stats", {})
            assert res.structured_content["user_id"] == "carol"
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert out == b"", "nothing may be printed to stdout"
