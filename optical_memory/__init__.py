"""optical-memory: long-term memory for LLM agents, kept as page images.

    from optical_memory import OpticalMemory as OpticalMemory
    with OpticalMemory() as mem:
        mem.add([{"role": "user", "content": "..."}])
        ctx = mem.context(8000)

Importing the package has no side effects and loads nothing heavy: public
names are resolved on first use (PEP 562), so ``optical_memory.encoder`` can be
used on a machine without the renderer's dependencies, and vice versa.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from optical_memory.errors import (
    ConfigError as ConfigError,
    DecodeError as DecodeError,
    DependencyMissingError as DependencyMissingError,
    EmptyInputError as EmptyInputError,
    InputError as InputError,
    OpticalMemoryError as OpticalMemoryError,
    UnknownDecoderError as UnknownDecoderError,
    UnknownTargetError as UnknownTargetError,
    VisionTokensError as VisionTokensError,
)
from optical_memory.lazy import lazy_exports

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "Page": "optical_memory.types",
    "Span": "optical_memory.types",
    "AgePolicy": "optical_memory.age",
    "Tier": "optical_memory.age",
    "Accounting": "optical_memory.context",
    "Context": "optical_memory.context",
    "generate_conversation": "optical_memory.conversation",
    "AddResult": "optical_memory.memory",
    "AsyncOpticalMemory": "optical_memory.aio",
    "Deleted": "optical_memory.store",
    "ItemList": "optical_memory.items",
    "MemoryItem": "optical_memory.items",
    "NotFoundError": "optical_memory.store",
    "UpdateResult": "optical_memory.items",
    "DecodedPage": "optical_memory.memory",
    "OpticalMemory": "optical_memory.memory",
    "Hit": "optical_memory.retrieve",
    "MemoryConfig": "optical_memory.config",
    "Scope": "optical_memory.scope",
    "turn_message": "optical_memory.context.assemble",
}

__all__ = sorted([
    "ConfigError",
    "DecodeError",
    "DependencyMissingError",
    "EmptyInputError",
    "InputError",
    "OpticalMemoryError",
    "UnknownDecoderError",
    "UnknownTargetError",
    "VisionTokensError",
    "__version__",
    *_LAZY,
])


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


if TYPE_CHECKING:  # pragma: no cover
    from optical_memory.age import AgePolicy as AgePolicy, Tier as Tier
    from optical_memory.aio import AsyncOpticalMemory as AsyncOpticalMemory
    from optical_memory.config import MemoryConfig as MemoryConfig
    from optical_memory.context import Accounting as Accounting, Context as Context
    from optical_memory.context.assemble import turn_message as turn_message
    from optical_memory.conversation import generate_conversation as generate_conversation
    from optical_memory.items import (
        ItemList as ItemList,
        MemoryItem as MemoryItem,
        UpdateResult as UpdateResult,
    )
    from optical_memory.memory import (
        AddResult as AddResult,
        DecodedPage as DecodedPage,
        OpticalMemory as OpticalMemory,
    )
    from optical_memory.retrieve import Hit as Hit
    from optical_memory.scope import Scope as Scope
    from optical_memory.store import Deleted as Deleted, NotFoundError as NotFoundError
    from optical_memory.types import Page as Page, Span as Span
