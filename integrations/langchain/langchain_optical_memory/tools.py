"""Agent tools over an optical memory whose answers can carry page images.

    tools = create_memory_tools(memory, user_id="alice")   # search, recall, remember
    agent = create_agent(model, tools=tools)

- ``search_memory``: the best passages for a query, each as a text block
  (exact source text, page id, age tier) followed by its page as a standard
  image block ``{"type": "image", "base64": ..., "mime_type": "image/png"}``
  (the full-resolution master, so an aged page is readable again). The
  ``ToolMessage`` content is that list of blocks.
- ``recall_memory``: the exact passages as plain text
  (:mod:`~langchain_optical_memory.recall`).
- ``remember``: store a fact or note (a text item) for later searches.

:func:`create_retriever_image_tool` turns an
:class:`~langchain_optical_memory.OpticalMemoryRetriever` into a tool of the
same shape (its Documents' text, then their page images).

Every tool searches or writes one scope, given here or, for the middleware's
tools, resolved per run (see
:class:`~langchain_optical_memory.OpticalMemoryMiddleware`).
"""
from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from typing import Annotated, Any

from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables.config import run_in_executor
from langchain_core.tools import BaseTool, StructuredTool
from pydantic import Field

from langchain_optical_memory.recall import (
    MAX_PASSAGE_CHARS,
    OVERFETCH,
    check_options,
    create_recall_tool,
    hit_text,
)
from optical_memory import Hit, InputError, OpticalMemory
from optical_memory.scope import Scope

SEARCH_TOOL_NAME = "search_memory"
SEARCH_DESCRIPTION = (
    "Search long-term memory (earlier conversation, notes, documents) for a topic. Returns the "
    "best matching passages as exact text, each followed by an image of the memory page "
    "holding it. Use keywords of what you are looking for."
)
REMEMBER_TOOL_NAME = "remember"
REMEMBER_DESCRIPTION = (
    "Store a fact or note in long-term memory so it can be searched later (e.g. a user's "
    "preference, a decision, a number). Give it as one self-contained sentence or paragraph."
)
RETRIEVER_DESCRIPTION = (
    "Search the memory for passages about a query. Returns each passage's text followed by an "
    "image of the page holding it."
)

Query = Annotated[str, Field(description="Keywords of what to look for.")]
Note = Annotated[str, Field(description="The fact or note to remember, self-contained.")]
Blocks = list[str | dict[str, Any]]


def _cut(text: str, max_chars: int) -> str:
    text = text.strip()
    return text if len(text) <= max_chars else text[: max(0, max_chars - 1)].rstrip() + "…"


def _image(png: bytes) -> dict[str, Any]:
    return {"type": "image", "base64": base64.b64encode(png).decode("ascii"),
            "mime_type": "image/png"}


def search_blocks(memory: OpticalMemory, query: str, scope: Scope, *, k: int,
                  images: bool = True, max_chars: int = MAX_PASSAGE_CHARS) -> Blocks:
    """The search tool's answer: per hit (passages on pages first), a text
    block ``[n] page <id> (tier <t>): <exact text>`` (its page's best passages,
    :func:`~langchain_optical_memory.recall.hit_text`) and, with ``images``, the
    page's master PNG as an image block (once per page)."""
    if not isinstance(query, str):
        raise InputError(f"query must be a string (got {type(query).__name__})")
    if not query.strip():
        return [{"type": "text", "text": "Give keywords to search for."}]
    hits = memory.retrieve(query, k=OVERFETCH * k, **scope.as_kwargs())
    ordered = [h for h in hits if h.page_id is not None] + [h for h in hits if h.page_id is None]
    if not ordered:
        return [{"type": "text", "text": f"No stored passage matches {query!r}."}]
    blocks: Blocks = []
    shown: set[str] = set()
    for n, hit in enumerate(ordered[:k], 1):
        blocks.append({"type": "text", "text": f"[{n}] {_where(hit)}: {_text(hit, max_chars)}"})
        if images and hit.page_id is not None and hit.page_id not in shown:
            png = _master_png(memory, hit)
            if png is not None:
                shown.add(hit.page_id)
                blocks.append(_image(png))
    return blocks


def _where(hit: Hit) -> str:
    if hit.page_id is None:
        return "recent turn"
    where = f"page {hit.page_id} (tier {hit.tier})"
    return where if hit.text is not None else where + ", read back from the page image"


def _text(hit: Hit, max_chars: int) -> str:
    return _cut(hit_text(hit) if hit.text is not None else hit.snippet, max_chars)


def _master_png(memory: OpticalMemory, hit: Hit) -> bytes | None:
    page = hit.page
    if page is not None and page.png is not None:
        return page.png
    if page is None or hit.page_id is None:
        return None
    full = memory.get_page(hit.page_id, **page.scope.as_kwargs())
    return full.png if full is not None else None


def remember(memory: OpticalMemory, note: str, scope: Scope) -> str:
    """Store ``note`` as a text item under ``scope``; the tool's answer."""
    if not isinstance(note, str) or not note.strip():
        return "Give the fact or note to remember."
    result = memory.add(note, kind="text", **scope.as_kwargs())
    return f"Remembered (item {result.item_ids[0]})."


def _query_tool(run: Callable[[str], Any], *, name: str, description: str) -> BaseTool:
    def call(query: Query) -> Any:
        return run(query)

    async def acall(query: Query) -> Any:
        return await run_in_executor(None, run, query)

    return StructuredTool.from_function(func=call, coroutine=acall, name=name,
                                        description=description)


def _note_tool(run: Callable[[str], Any], *, name: str, description: str) -> BaseTool:
    def call(note: Note) -> Any:
        return run(note)

    async def acall(note: Note) -> Any:
        return await run_in_executor(None, run, note)

    return StructuredTool.from_function(func=call, coroutine=acall, name=name,
                                        description=description)


def create_search_tool(memory: OpticalMemory, *, user_id: str = "default",
                       agent_id: str | None = None, session_id: str | None = None, k: int = 3,
                       images: bool = True, max_chars: int = MAX_PASSAGE_CHARS,
                       name: str = SEARCH_TOOL_NAME,
                       description: str = SEARCH_DESCRIPTION) -> BaseTool:
    """``search_memory``: passages as text blocks, each page as an image block."""
    check_options(k, max_chars)
    scope = Scope(user_id, agent_id, session_id)
    return _query_tool(lambda q: search_blocks(memory, q, scope, k=k, images=images,
                                               max_chars=max_chars),
                       name=name, description=description)


def create_remember_tool(memory: OpticalMemory, *, user_id: str = "default",
                         agent_id: str | None = None, session_id: str | None = None,
                         name: str = REMEMBER_TOOL_NAME,
                         description: str = REMEMBER_DESCRIPTION) -> BaseTool:
    """``remember``: store a note under the scope."""
    scope = Scope(user_id, agent_id, session_id)
    return _note_tool(lambda note: remember(memory, note, scope), name=name,
                      description=description)


def create_memory_tools(memory: OpticalMemory, *, user_id: str = "default",
                        agent_id: str | None = None, session_id: str | None = None,
                        k: int = 3, images: bool = True) -> list[BaseTool]:
    """``search_memory`` (text + page images), ``recall_memory`` (exact text)
    and ``remember`` over one scope."""
    kw: dict[str, Any] = {"user_id": user_id, "agent_id": agent_id, "session_id": session_id}
    return [create_search_tool(memory, k=k, images=images, **kw),
            create_recall_tool(memory, k=k, **kw), create_remember_tool(memory, **kw)]


def document_blocks(docs: Sequence[Document], query: str,
                    max_chars: int = MAX_PASSAGE_CHARS) -> Blocks:
    """A retriever tool's answer: each Document's text, then its page image."""
    if not docs:
        return [{"type": "text", "text": f"No stored passage matches {query!r}."}]
    blocks: Blocks = []
    for n, doc in enumerate(docs, 1):
        meta = doc.metadata
        where = (f"page {meta['page_id']} (tier {meta.get('tier')})" if meta.get("page_id")
                 else "recent turn")
        text = _cut(doc.page_content, max_chars)
        blocks.append({"type": "text", "text": f"[{n}] {where}: {text}"})
        if meta.get("image_base64"):
            blocks.append({"type": "image", "base64": meta["image_base64"],
                           "mime_type": meta.get("mime_type", "image/png")})
    return blocks


def create_retriever_image_tool(retriever: BaseRetriever, *, name: str = SEARCH_TOOL_NAME,
                                description: str = RETRIEVER_DESCRIPTION,
                                max_chars: int = MAX_PASSAGE_CHARS) -> BaseTool:
    """Like ``langchain_core.tools.create_retriever_tool``, but the answer is
    content blocks: each Document's text, then its page image (from
    ``metadata["image_base64"]``, as :class:`OpticalMemoryRetriever` gives)."""
    check_options(1, max_chars)

    def call(query: Query) -> Blocks:
        return document_blocks(retriever.invoke(query), query, max_chars)

    async def acall(query: Query) -> Blocks:
        return document_blocks(await retriever.ainvoke(query), query, max_chars)

    return StructuredTool.from_function(func=call, coroutine=acall, name=name,
                                        description=description)


__all__ = ["REMEMBER_TOOL_NAME", "SEARCH_TOOL_NAME", "create_memory_tools",
           "create_remember_tool", "create_retriever_image_tool", "create_search_tool",
           "document_blocks", "remember", "search_blocks"]
