"""Input tokens per model call over a 200-turn agent session, with and
without ``compress_messages``; writes a markdown table.

The session is optical-memory's synthetic agent conversation (200 turns,
seed 3). A model call happens before every assistant turn; its input is the
system message plus every earlier turn. "Without" is that input as text,
"with" is what ``compress_messages`` returns (memory kept across calls, as
``OpticalMemoryMiddleware`` does; the input itself when paging would not save
tokens). Both sides use the core's cost model: tokenizer count + 4 per text
message, the target's vision tokens per page. A second table gives the
session's totals per vision target (each with pages sized for it).

    python integrations/langchain/benchmarks/tokens_per_call.py [--out PATH]
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from langchain_core.messages import AIMessage, SystemMessage, convert_to_messages

from langchain_optical_memory.compress import compress
from optical_memory import OpticalMemory, generate_conversation
from optical_memory.scope import Scope

TURNS, SEED, BUDGET, KEEP_LAST = 200, 3, 8000, 8
TOKENIZER, TARGET = "o200k_base", "deepseek-ocr:base"
TARGETS = ("deepseek-ocr:base", "openai:gpt-4o", "anthropic:claude", "gemini", "qwen2.5-vl")
DEFAULT_OUT = Path(__file__).resolve().parents[3] / "benchmarks" / "results" / "langchain.md"


def measure(target: str = TARGET) -> tuple[list[tuple[int, int, int, int]], float]:
    """Rows ``(call, history turns, tokens without, tokens with)`` and the
    mean seconds per compress call."""
    history = convert_to_messages(generate_conversation(turns=TURNS, seed=SEED,
                                                        tokenizer=TOKENIZER).messages)
    system = SystemMessage("You are a careful operations assistant.")
    rows, seconds = [], []
    with OpticalMemory(":memory:", target=target, tokenizer=TOKENIZER) as mem:
        for i, msg in enumerate(history):
            if not isinstance(msg, AIMessage) or i == 0:
                continue
            t0 = time.perf_counter()
            r = compress(history[:i], system=[system], max_tokens=BUDGET, keep_last=KEEP_LAST,
                         memory=mem, scope=Scope(session_id="bench"))
            seconds.append(time.perf_counter() - t0)
            assert r.tokens_out <= r.tokens_in
            rows.append((len(rows) + 1, i, r.tokens_in, r.tokens_out))
    return rows, statistics.mean(seconds)


def table(rows: list[tuple[int, int, int, int]], secs: float) -> str:
    picks = sorted({r[0] for r in rows if r[1] in (24, 25, 50, 51, 100, 101, 150, 151)}
                   | {rows[len(rows) // 4][0], rows[len(rows) // 2][0], rows[-1][0]})
    lines = [
        "# langchain-optical-memory: input tokens per model call",
        "",
        f"{TURNS}-turn synthetic agent session (optical_memory.generate_conversation, "
        f"seed {SEED}); a model call before each assistant turn ({len(rows)} calls), "
        f"input = system + all earlier turns. Tokenizer `{TOKENIZER}`, target `{TARGET}`, "
        f"`compress_messages(max_tokens={BUDGET}, keep_last={KEEP_LAST})` with one memory "
        "kept across calls. Cost model: tokenizer count + 4 per text message; "
        "vision tokens per page image at its age tier.",
        "",
        "| call | turns before it | input tokens, text | input tokens, compressed | ratio |",
        "|---:|---:|---:|---:|---:|",
    ]
    for call, turns, without, with_ in rows:
        if call in picks:
            lines.append(f"| {call} | {turns} | {without:,} | {with_:,} | {without / with_:.1f}x |")
    tot_without = sum(r[2] for r in rows)
    tot_with = sum(r[3] for r in rows)
    n = len(rows)
    lines += [
        f"| **mean over {n} calls** | | **{tot_without / n:,.0f}** | **{tot_with / n:,.0f}** "
        f"| **{tot_without / tot_with:.1f}x** |",
        f"| total over the session | | {tot_without:,} | {tot_with:,} | "
        f"{tot_without / tot_with:.1f}x |",
        "",
        f"Mean time per `compress_messages` call (incremental, 2-core CPU): {secs * 1000:.0f} ms.",
        "",
    ]
    return "\n".join(lines)


def per_target(totals: dict[str, tuple[int, int, int]]) -> str:
    lines = [
        "Per vision target (the same session and budget; the memory's pages sized for the "
        "target, billed by its rule, `optical-memory targets`):",
        "",
        "| target | input tokens, text (session) | compressed | ratio | calls compressed |",
        "|---|---:|---:|---:|---:|",
    ]
    for target, (without, with_, n) in totals.items():
        lines.append(f"| `{target}` | {without:,} | {with_:,} | {without / with_:.1f}x | {n} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="markdown file to write")
    args = parser.parse_args()
    rows, secs = measure()
    text = table(rows, secs)
    totals = {}
    for target in TARGETS:
        trows = rows if target == TARGET else measure(target)[0]
        totals[target] = (sum(r[2] for r in trows), sum(r[3] for r in trows),
                          sum(r[3] < r[2] for r in trows))
    text += "\n" + per_target(totals)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
