"""The public surface: __all__ pinned, version from metadata, typed, light import."""
from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

import langchain_optical_memory

EXPECTED_ALL = [
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


def test_all_is_pinned():
    assert sorted(langchain_optical_memory.__all__) == sorted(EXPECTED_ALL)
    for name in EXPECTED_ALL:
        assert getattr(langchain_optical_memory, name) is not None


def test_version_comes_from_package_metadata():
    assert langchain_optical_memory.__version__ == metadata.version("langchain-optical-memory")


def test_py_typed_ships():
    assert (Path(langchain_optical_memory.__file__).parent / "py.typed").is_file()


def test_import_needs_only_langchain_core():
    code = ("import sys, langchain_optical_memory as m; m.compress_messages; "
            "m.OpticalMemoryRetriever; m.create_recall_tool; m.create_memory_tools; "
            "m.create_retriever_image_tool; "
            "print(sorted(k for k in sys.modules if k == 'langchain' or k.startswith('langchain.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_runtime_requirements():
    reqs = [Requirement(r) for r in metadata.requires("langchain-optical-memory") or []]
    assert sorted(r.name for r in reqs if r.marker is None) == ["langchain-core", "optical-memory"]
    agents = [r.name for r in reqs if r.marker and r.marker.evaluate({"extra": "agents"})]
    assert agents == ["langchain"]
