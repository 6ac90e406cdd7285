"""``memory_context``'s result, and an accounting of exactly what it sends.

The library's :meth:`~optical_memory.OpticalMemory.context` bills a context
as chat messages (each text message: tokenizer count + 4). An MCP tool result
is not chat messages: it is content parts, here

1. the page header (text) and the page images, when there are pages;
2. the recent turns as one text part: ``Recent turns (oldest first):`` and
   the turns as compact JSON (no indentation, no spaces after separators);
3. a one-line summary of the accounting (text).

So the result's ``context_tokens`` is recomputed from the parts actually
sent: the memory's tokenizer count of every text part, plus the target's
vision tokens of every image, plus the system message when one is given
(the caller sends it, as a chat message: count + 4). The summary line
states that total, which includes the line itself (its count is found by
iterating to a fixed point). When the parts cost more than the budget, the
library is asked again for a context with a budget lowered by the excess,
so the result never exceeds ``budget_tokens``.
"""
from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from mcp.types import CallToolResult, ContentBlock, ImageContent, TextContent

from optical_memory.context import Accounting, Context
from optical_memory.errors import InputError
from optical_memory.memory import OpticalMemory
from optical_memory.scope import ScopeKwargs
from optical_memory_mcp.models import AccountingOut, ContextOut, ContextPageOut

#: Text opening the recent turns' part.
TURNS_LEAD = "Recent turns (oldest first):\n"
#: Tries at fitting the parts into the budget.
FIT_ROUNDS = 8
#: Per-message framing of a chat message (the system message), as the library counts it.
MESSAGE_OVERHEAD = 4


def turns_text(turns: list[dict[str, Any]]) -> str:
    """The recent turns' text part."""
    return TURNS_LEAD + json.dumps(turns, ensure_ascii=False, separators=(",", ":"))


def summary_text(acc: Accounting, total: int) -> str:
    """The accounting line, stating ``total`` tokens sent."""
    return (f"Context: {total} of {acc.budget_tokens} tokens budgeted "
            f"({acc.pages} pages, {acc.page_vision_tokens} vision tokens holding "
            f"{acc.page_text_tokens} text tokens; {acc.kept_turns} recent turns as text); "
            f"the history it carries would be {acc.carried_text_tokens} tokens as text "
            f"({acc.carried_text_tokens / total if total else 0.0:.1f}x). "
            f"{acc.dropped_pages} oldest pages ({acc.dropped_text_tokens} text tokens) "
            "left out for the budget.")


def _parts(ctx: Context, memory: OpticalMemory, system: str | None
           ) -> tuple[list[ContentBlock], int, list[dict[str, Any]]]:
    """The content parts (summary line last), their exact cost, the text messages."""
    count = memory.counter.count
    text_messages = [m for m in ctx.messages if isinstance(m.get("content"), str)]
    parts: list[ContentBlock] = []
    cost = count(system) + MESSAGE_OVERHEAD if system else 0
    if ctx.pages:
        parts.append(TextContent(type="text", text=ctx.header))
        parts += [ImageContent(type="image", data=p.png_b64, mime_type="image/png")
                  for p in ctx.pages]
        cost += count(ctx.header) + sum(p.vision_tokens for p in ctx.pages)
    turns = [m for m in text_messages if m.get("role") != "system"]
    if turns:
        text = turns_text(turns)
        parts.append(TextContent(type="text", text=text))
        cost += count(text)
    total = cost
    for _ in range(6):  # the line states a total that includes the line itself
        line = summary_text(ctx.accounting, total)
        new_total = cost + count(line)
        if new_total == total:
            break
        total = new_total
    else:
        total = cost + count(summary_text(ctx.accounting, total))
        line = summary_text(ctx.accounting, total)
    parts.append(TextContent(type="text", text=line))
    return parts, cost + count(line), text_messages


def context_result(memory: OpticalMemory, budget_tokens: int, *, target: str | None,
                   keep_last: int | None, system: str | None,
                   scope: ScopeKwargs) -> CallToolResult:
    """``memory_context``'s tool result (see the module doc)."""
    budget = budget_tokens
    for attempt in range(FIT_ROUNDS):
        try:
            # the tool result is built from pages and turns only: no exact-value block
            ctx = memory.context(budget, target=target, keep_last=keep_last, system=system,
                                 exact_spans="off", **scope)
        except InputError as exc:
            if budget == budget_tokens:
                raise
            raise InputError(f"budget {budget_tokens} tokens cannot hold the recent turns as "
                             "sent (compact JSON and the accounting line); raise the budget "
                             "or lower keep_last") from exc
        ctx = replace(ctx, accounting=replace(ctx.accounting, budget_tokens=budget_tokens))
        parts, total, text_messages = _parts(ctx, memory, system)
        if total <= budget_tokens:
            break
        # the excess, plus a margin that doubles each round: the accounting line's
        # numbers change with the pages kept, so the same excess can recur
        budget -= total - budget_tokens + (1 << attempt) - 1
        if budget < 1:
            break
    else:
        total = budget_tokens + 1
    if total > budget_tokens:
        raise InputError(f"budget {budget_tokens} tokens cannot hold the recent turns as sent "
                         f"(they cost {total} tokens with the accounting line); raise the budget "
                         "or lower keep_last")
    acc = replace(ctx.accounting, context_tokens=total)
    out = ContextOut(messages=text_messages, pages=[ContextPageOut.of(p) for p in ctx.pages],
                     accounting=AccountingOut.of(acc))
    return CallToolResult(content=parts,
                          structured_content=out.model_dump(mode="json", by_alias=True))


__all__ = ["FIT_ROUNDS", "TURNS_LEAD", "context_result", "summary_text", "turns_text"]
