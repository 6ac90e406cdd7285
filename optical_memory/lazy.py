"""Lazy package exports (PEP 562), shared by ``optical_memory`` and its
integration packages: ``import pkg`` stays cheap and a name is imported from
its module on first use, then kept in the package's namespace."""
from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, table: Mapping[str, str]
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``, whose names in ``table``
    (name → module) load on first access; call it from the package's
    ``__init__`` as ``__getattr__, __dir__ = lazy_exports(__name__, _LAZY)``."""
    namespace = sys.modules[package].__dict__

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(table))

    return __getattr__, __dir__
