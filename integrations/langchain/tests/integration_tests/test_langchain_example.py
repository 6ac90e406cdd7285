"""The example and the benchmark script run offline and print what they claim."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_compress_chat_example_runs_offline():
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "compress_chat.py")],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    without = int(re.search(r"without compression:\s+(\d+)", out).group(1))
    with_ = int(re.search(r"with compression:\s+(\d+)", out).group(1))
    assert "200 turns" in out and "o200k_base" in out and "deepseek-ocr:base" in out
    assert with_ * 4 < without


@pytest.mark.slow
def test_tokens_per_call_benchmark_writes_table(tmp_path):
    target = tmp_path / "langchain.md"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "tokens_per_call.py"),
                    "--out", str(target)], capture_output=True, text=True, check=True,
                   timeout=300)
    text = target.read_text()
    assert "| call | turns before it |" in text and "mean over 100 calls" in text
