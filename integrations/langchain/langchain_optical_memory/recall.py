"""``create_recall_tool``: the exact text of old facts, as a tool an agent calls.

    tool = create_recall_tool(memory, user_id="alice", k=4)
    agent = create_agent(model, tools=[tool])   # or OpticalMemoryMiddleware(recall_tool=True)
    tool.invoke({"query": "Lindholm depot access code"})
    # '[1] page 01J… (tier tiny): The Lindholm depot access code is 739215.'

Old turns reach the model as page images that shrink as they age (the page
message's header names the low-resolution ones); a fact on a page too small
to read is still stored as text. The tool searches the memory
(:meth:`~optical_memory.OpticalMemory.retrieve`) and answers with each
hit's exact passage (:attr:`~optical_memory.Hit.text`), the page holding it
and that page's age tier, as compact plain text.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated

from langchain_core.runnables.config import run_in_executor
from langchain_core.tools import BaseTool, StructuredTool
from pydantic import Field

from optical_memory import Hit, InputError, OpticalMemory
from optical_memory.scope import Scope

#: The tool's name, as the model sees it.
RECALL_TOOL_NAME = "recall_memory"
#: Longest passage given per hit (characters); the rest is cut with "…".
MAX_PASSAGE_CHARS = 2000
#: Passages shown per hit: its page's best for the query (``Hit.passages``),
#: joined by :data:`PASSAGE_GAP`; on long documents the first is often not
#: the one that answers (measured: ``benchmarks/results/longdoc.md``).
SHOWN_PASSAGES = 2
#: What stands between two passages of one hit.
PASSAGE_GAP = "\n[…]\n"
#: Hits fetched per passage returned, so recent turns matching the query
#: (the question itself) do not crowd out the passages on pages.
OVERFETCH = 2
#: The tool's description, as the model sees it.
RECALL_DESCRIPTION = (
    "Recall the exact text of something said earlier in this conversation or stored in "
    "long-term memory. Older conversation reaches you as page images that shrink with age and "
    "may be too small to read: when a page is low-resolution, or a fact (a name, number, code, "
    "date) is not in view, call this with keywords of the fact. Returns the matching passages "
    "verbatim, each with the page holding it and that page's age tier."
)


#: The tool's one argument.
Query = Annotated[str, Field(description="Keywords of the fact to recall (names, numbers, terms).")]


def hit_text(hit: Hit) -> str:
    """A hit's exact text as a tool shows it: its page's first
    :data:`SHOWN_PASSAGES` passages, joined by :data:`PASSAGE_GAP` (its
    ``text`` for a hit without passages)."""
    shown = hit.passages[:SHOWN_PASSAGES] or ((hit.text,) if hit.text is not None else ())
    return PASSAGE_GAP.join(p.strip() for p in shown)


def format_hits(hits: Sequence[Hit], query: str, max_chars: int = MAX_PASSAGE_CHARS) -> str:
    """The tool's answer: one block per hit, best first, ``[n] <where>: <text>``
    (``<where>`` is ``page <id> (tier <tier>)``, or ``recent turn`` for a turn
    no page holds yet; ``<text>``: :func:`hit_text`). A hit without exact text
    (a ``keep_text=False`` memory's read-back) gives its snippet, marked as
    read back."""
    if not hits:
        return f"No stored passage matches {query!r}."
    blocks = []
    for n, hit in enumerate(hits, 1):
        where = f"page {hit.page_id} (tier {hit.tier})" if hit.page_id else "recent turn"
        if hit.text is not None:
            text = hit_text(hit)
        else:
            where += ", read back from the page image, may be inexact"
            text = hit.snippet
        text = text.strip()
        if len(text) > max_chars:
            text = text[: max(0, max_chars - 1)].rstrip() + "…"
        blocks.append(f"[{n}] {where}: {text}")
    return "\n\n".join(blocks)


def recall(memory: OpticalMemory, query: str, scope: Scope, *, k: int,
           max_chars: int = MAX_PASSAGE_CHARS) -> str:
    """Search ``memory`` under ``scope`` for ``query``; the tool's answer
    (:func:`format_hits`): the ``k`` best passages, those on pages before
    those in recent turns no page holds yet."""
    if not isinstance(query, str):
        raise InputError(f"query must be a string (got {type(query).__name__})")
    if not query.strip():
        return "Give keywords of the fact to recall."
    hits = memory.retrieve(query, k=OVERFETCH * k, **scope.as_kwargs())
    # passages on pages first: a recent turn (the question, the tool call
    # itself) is text the model has in view; pages may be too small to read
    ordered = [h for h in hits if h.page_id is not None] + [h for h in hits if h.page_id is None]
    return format_hits(ordered[:k], query, max_chars)


def check_options(k: int, max_chars: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InputError(f"k must be an int >= 1 (got {k!r})")
    if isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 1:
        raise InputError(f"max_chars must be an int >= 1 (got {max_chars!r})")


def recall_tool(run: Callable[[str], str], *, name: str = RECALL_TOOL_NAME,
                description: str = RECALL_DESCRIPTION) -> BaseTool:
    """A tool answering ``run(query)`` (sync; the async form runs it in a thread)."""

    def recall_memory(query: Query) -> str:
        return run(query)

    async def arecall_memory(query: Query) -> str:
        return await run_in_executor(None, run, query)

    return StructuredTool.from_function(func=recall_memory, coroutine=arecall_memory, name=name,
                                        description=description)


def create_recall_tool(
    memory: OpticalMemory,
    *,
    user_id: str = "default",
    agent_id: str | None = None,
    session_id: str | None = None,
    k: int = 4,
    max_chars: int = MAX_PASSAGE_CHARS,
    name: str = RECALL_TOOL_NAME,
    description: str = RECALL_DESCRIPTION,
) -> BaseTool:
    """A tool (``recall_memory`` by default) that searches ``memory`` under
    ``user_id`` / ``agent_id`` / ``session_id`` and answers with the exact
    text of the ``k`` best passages (on pages first, see :func:`recall`),
    each with its page id and age tier,
    cut to ``max_chars`` characters (see :func:`format_hits`).

    The model gives one argument, ``query``. Give the tool to an agent
    (``create_agent(model, tools=[tool])``), or let
    :class:`~langchain_optical_memory.OpticalMemoryMiddleware` add one scoped
    like its own calls (``recall_tool=True``).
    """
    check_options(k, max_chars)
    scope = Scope(user_id, agent_id, session_id)
    return recall_tool(lambda query: recall(memory, query, scope, k=k, max_chars=max_chars),
                       name=name, description=description)


__all__ = ["MAX_PASSAGE_CHARS", "PASSAGE_GAP", "RECALL_DESCRIPTION", "RECALL_TOOL_NAME",
           "SHOWN_PASSAGES", "Query", "create_recall_tool", "format_hits", "hit_text", "recall"]
