"""The context a model receives: recent turns as text, older material as page
images within a token budget, and the accounting of what it costs.

:mod:`~optical_memory.context.budget` holds the pure parts (costs, the
budget cut, the accounting); :mod:`~optical_memory.context.assemble` gathers
the turns and pages of a scope and calls it; :mod:`~optical_memory.context.query`
adds, for ``context(query=...)``, the matching passages off the fresh pages;
:mod:`~optical_memory.context.routing`, for ``context(exact_spans=...)``, the
IDs and numbers on the pages that read back poorly, as exact text.
"""
from __future__ import annotations

from optical_memory.context.budget import (
    MESSAGE_OVERHEAD,
    PAGES_HEADER,
    RECALL_NOTE,
    Accounting,
    Context,
    ContextPage,
    KeptTurn,
    TierRow,
    atomic_groups,
    build_context,
    extend_window,
    pages_header,
    text_message_tokens,
)
from optical_memory.context.query import QueryPassage, QueryView
from optical_memory.context.routing import ExactBlock, ExactSpanPolicy

__all__ = [
    "MESSAGE_OVERHEAD",
    "PAGES_HEADER",
    "RECALL_NOTE",
    "Accounting",
    "Context",
    "ContextPage",
    "ExactBlock",
    "ExactSpanPolicy",
    "KeptTurn",
    "QueryPassage",
    "QueryView",
    "TierRow",
    "atomic_groups",
    "build_context",
    "extend_window",
    "pages_header",
    "text_message_tokens",
]
