"""The README's Python examples run as written (on a fresh data home)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from optical_memory.decode import available_decoders

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"),
                    re.S)
# blocks that need model weights the machine cannot have (a DeepSeek-OCR checkpoint)
RUNNABLE = [b for b in BLOCKS if "/path/to/" not in b]


def test_the_readme_has_a_library_example():
    assert any("OpticalMemory" in b for b in RUNNABLE)
    assert len(BLOCKS) - len(RUNNABLE) <= 1  # only the checkpoint example is skipped


@pytest.mark.skipif(available_decoders().get("tesseract") is not True,
                    reason="the README examples read pages back with tesseract")
@pytest.mark.parametrize("block", RUNNABLE, ids=[f"block{i}" for i in range(len(RUNNABLE))])
def test_readme_python_example_runs(block, tmp_path):
    env = dict(os.environ, OPTICAL_MEMORY_HOME=str(tmp_path / "home"))
    proc = subprocess.run([sys.executable, "-c", block], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


LIBRARY = [b for b in RUNNABLE if "OpticalMemory" in b and "langchain" not in b]


@pytest.mark.skipif(available_decoders().get("tesseract") is not True,
                    reason="the README examples read pages back with tesseract")
def test_readme_library_examples_run_one_after_another_in_one_home(tmp_path):
    """A reader runs the examples in order in their own data folder: one
    example's data must not break the next one's asserts."""
    assert len(LIBRARY) >= 3
    env = dict(os.environ, OPTICAL_MEMORY_HOME=str(tmp_path / "home"))
    for i, block in enumerate(LIBRARY):
        proc = subprocess.run([sys.executable, "-c", block], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"example {i}: {proc.stderr[-3000:]}"
