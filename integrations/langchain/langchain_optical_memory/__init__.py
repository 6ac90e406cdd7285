"""LangChain integration of optical-memory.

- :func:`compress_messages`: a ``trim_messages``-style transformer that
  replaces older turns by page images (standard image content blocks).
- :class:`OpticalMemoryRetriever`: pages as ``Document``s (text + image).
- :func:`create_recall_tool`: a ``recall_memory`` tool giving an agent the
  exact text of stored passages (for pages too small to read).
- :func:`create_memory_tools` (``search_memory`` with page images,
  ``recall_memory``, ``remember``) and :func:`create_retriever_image_tool`:
  tools whose ``ToolMessage`` carries page image blocks.
- :class:`OpticalMemoryMiddleware`: ``create_agent`` middleware (needs the
  ``agents`` extra, i.e. the ``langchain`` package; imported on first use).
- :class:`OpticalMemoryStore`: a LangGraph ``BaseStore`` kept in the memory
  (``langgraph``, which the ``agents`` extra brings; imported on first use).

Importing this package loads only ``langchain-core`` and ``optical-memory``.
"""
from __future__ import annotations

from importlib import metadata
from typing import TYPE_CHECKING

from optical_memory.lazy import lazy_exports

try:
    __version__ = metadata.version("langchain-optical-memory")
except metadata.PackageNotFoundError:  # running from a source tree, not installed
    __version__ = ""

_LAZY = {
    "compress_messages": "langchain_optical_memory.compress",
    "OpticalMemoryRetriever": "langchain_optical_memory.retriever",
    "OpticalMemoryMiddleware": "langchain_optical_memory.middleware",
    "OpticalMemoryStore": "langchain_optical_memory.store",
    "create_recall_tool": "langchain_optical_memory.recall",
    "create_memory_tools": "langchain_optical_memory.tools",
    "create_search_tool": "langchain_optical_memory.tools",
    "create_remember_tool": "langchain_optical_memory.tools",
    "create_retriever_image_tool": "langchain_optical_memory.tools",
}

__all__ = [
    "OpticalMemoryMiddleware",
    "OpticalMemoryRetriever",
    "OpticalMemoryStore",
    "__version__",
    "compress_messages",
    "create_memory_tools",
    "create_recall_tool",
    "create_remember_tool",
    "create_retriever_image_tool",
    "create_search_tool",
]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


if TYPE_CHECKING:  # pragma: no cover
    from langchain_optical_memory.compress import compress_messages
    from langchain_optical_memory.middleware import OpticalMemoryMiddleware
    from langchain_optical_memory.recall import create_recall_tool
    from langchain_optical_memory.retriever import OpticalMemoryRetriever
    from langchain_optical_memory.store import OpticalMemoryStore
    from langchain_optical_memory.tools import (
        create_memory_tools,
        create_remember_tool,
        create_retriever_image_tool,
        create_search_tool,
    )
