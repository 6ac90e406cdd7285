"""Command-line interface: a thin layer over the library.

Every command has ``--help``; commands whose output is data take ``--json``.
User mistakes become clean ``click`` errors, never tracebacks.
"""
from __future__ import annotations

from optical_memory.cli import (
    browse as _browse,  # noqa: F401  (registers commands)
    calibrate as _calibrate,  # noqa: F401  (registers commands)
    codec as _codec,  # noqa: F401  (registers commands)
    edit as _edit,  # noqa: F401  (registers commands)
    memory as _memory,  # noqa: F401  (registers commands)
    niah as _niah,  # noqa: F401  (registers commands)
    serve as _serve,  # noqa: F401  (registers commands)
)
from optical_memory.cli._group import main

__all__ = ["main"]
