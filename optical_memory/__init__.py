"""optical-memory: long-term memory for LLM agents, kept as page images."""
from __future__ import annotations

from optical_memory.errors import (
    ConfigError,
    DecodeError,
    DependencyMissingError,
    EmptyInputError,
    InputError,
    OpticalMemoryError,
    UnknownTargetError,
)
from optical_memory.types import Page, Span

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DecodeError",
    "DependencyMissingError",
    "EmptyInputError",
    "InputError",
    "OpticalMemoryError",
    "Page",
    "Span",
    "UnknownTargetError",
    "__version__",
]
