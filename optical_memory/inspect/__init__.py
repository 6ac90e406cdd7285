"""The memory inspector: a local web page over a store (``optical-memory serve``).

Scopes with their counts; a scope's timeline (its pages by tier, as
thumbnails, with the turns each holds); a page at every tier side by side with
each item's region highlighted and its source text beside it, and the page
read back per tier; search with the hit highlighted on its page; the context
for a budget / target / keep_last, exactly as the model receives it, with its
accounting; NIAH result folders as their plots.

Server-rendered (Starlette + Jinja, templates and CSS shipped in the package,
no JavaScript), offline, read-only unless started with ``allow_writes``, bound
to loopback unless told otherwise. It uses only the memory's public API.
Needs the ``inspect`` extra (``starlette``, ``jinja2``, ``uvicorn``).
"""
from __future__ import annotations

from optical_memory.inspect.app import check_host, create_app, is_loopback

__all__ = ["check_host", "create_app", "is_loopback"]
