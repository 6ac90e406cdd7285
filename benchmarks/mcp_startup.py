"""How fast the MCP server's command answers, and what ``memory_context`` sends.

1. Wall time of ``python -m optical_memory_mcp --help`` (a fresh process each
   run; the command imports only click until it serves) against a bare
   ``python -c pass``.
2. Wall time from launching ``optical-memory-mcp`` over stdio to the answer
   of the first ``tools/list`` (the SDK and the library load, the store does not
   open until the first tool call).
3. For one stored conversation, ``memory_context``'s reported
   ``context_tokens`` against an independent count of the parts it sends
   (o200k_base tokens of each text part, DeepSeek-OCR base's vision tokens of
   each image at its size).

Run: ``python benchmarks/mcp_startup.py [--runs 10]``; prints a markdown
table and writes ``benchmarks/results/mcp_startup.md``.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import io
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def wall(cmd: list[str], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out.append(time.perf_counter() - t)
    return out


async def first_list(home: Path, runs: int) -> list[float]:
    from mcp import Client, StdioServerParameters

    script = Path(sys.executable).with_name("optical-memory-mcp")
    out = []
    for i in range(runs):
        params = StdioServerParameters(
            command=str(script), args=["--user", "bench", "--store", str(home / f"s{i}.db")],
            env={"OPTICAL_MEMORY_HOME": str(home), "PYTHONPATH": os.environ.get("PYTHONPATH", "")})
        t = time.perf_counter()
        async with Client(params) as client:
            await client.list_tools()
            out.append(time.perf_counter() - t)
    return out


async def context_check(home: Path) -> list[tuple[int, int, int, int]]:
    """(budget, reported context_tokens, independent count, pages) per budget."""
    from mcp import Client
    from mcp.types import TextContent
    from PIL import Image

    from optical_memory.conversation import generate_conversation
    from optical_memory.tokens import get_counter, get_target
    from optical_memory.tokens.billing import image_tokens
    from optical_memory_mcp import ServerConfig, create_server

    o200k, tgt = get_counter("o200k_base"), get_target("deepseek-ocr:base")
    rows = []
    server = create_server(ServerConfig(store=str(home / "ctx.db"), user_id="bench"))
    async with Client(server) as client:
        msgs = generate_conversation(tokens=20_000, seed=3).messages
        await client.call_tool("memory_add", {"messages": msgs})
        for budget in (1000, 2000, 4000, 8000):
            res = await client.call_tool("memory_context", {"budget_tokens": budget})
            sent = 0
            for part in res.content:
                if isinstance(part, TextContent):
                    sent += o200k.count(part.text)
                else:
                    with Image.open(io.BytesIO(base64.b64decode(part.data))) as im:
                        sent += image_tokens(tgt, *im.size)
            acc = res.structured_content["accounting"]
            rows.append((budget, acc["context_tokens"], sent, acc["pages"]))
    return rows


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "mcp_startup.md")
    args = ap.parse_args(argv)
    bare = wall([sys.executable, "-c", "pass"], args.runs)
    helps = wall([sys.executable, "-m", "optical_memory_mcp", "--help"], args.runs)
    with tempfile.TemporaryDirectory() as tmp:
        lists = asyncio.run(first_list(Path(tmp), max(3, args.runs // 3)))
        ctx = asyncio.run(context_check(Path(tmp)))

    def cell(xs: list[float]) -> str:
        return f"{statistics.median(xs):.3f} | {min(xs):.3f} | {max(xs):.3f}"

    out = [
        "# MCP server: start-up and what memory_context sends",
        "",
        f"Python {platform.python_version()}, {platform.machine()}, {args.runs} fresh processes "
        "each (the machine is shared, so maxima are noisy).",
        "",
        "| what | median s | min s | max s |",
        "|---|---:|---:|---:|",
        f"| `python -c pass` (interpreter start) | {cell(bare)} |",
        f"| `python -m optical_memory_mcp --help` | {cell(helps)} |",
        f"| launch over stdio → first `tools/list` answered ({len(lists)} runs) | {cell(lists)} |",
        "",
        "`memory_context` on a 20,000-token synthetic session (deepseek-ocr:base, keep_last 8): "
        "the accounting's `context_tokens` against an independent count of the parts sent "
        "(o200k_base tokens of each text part + DeepSeek-OCR's vision tokens of each image at "
        "its size, in the cheapest mode holding it).",
        "",
        "| budget | reported context_tokens | independent count | pages |",
        "|---:|---:|---:|---:|",
        *[f"| {b} | {r} | {s} | {p} |" for b, r, s, p in ctx],
    ]
    report = "\n".join(out) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    print(report)  # benchmark script output (not library code)
    return report


if __name__ == "__main__":
    main()
