"""Declared dependencies are the ones used: no undeclared HTTP client, no
dead declaration, one progress library."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]


def _sources() -> str:
    return "\n".join(p.read_text(encoding="utf-8")
                     for d in ("optical_memory", "integrations")
                     for p in (ROOT / d).rglob("*.py") if "tests" not in p.parts)


def _declared() -> set[str]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return {re.split(r"[<>=\[ ;]", d, maxsplit=1)[0].lower() for d in deps}


def test_no_dead_or_missing_core_dependency():
    code, declared = _sources(), _declared()
    assert "pytesseract" not in declared and not re.search(r"^\s*(import|from) pytesseract",
                                                           code, re.M)
    assert "httpx" in declared and re.search(r"^\s*import httpx", code, re.M)
    assert not re.search(r"^\s*(import|from) (urllib\.request|requests)\b", code, re.M)


def test_one_progress_library():
    code = _sources()
    assert "rich" in _declared()
    assert not re.search(r"^\s*(import|from) tqdm", code, re.M)
    assert "click.progressbar" not in code
