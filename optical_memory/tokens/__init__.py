"""Token accounting: text tokens (offline BPE) and vision tokens per target.

The compression ratio of a page is ``count_tokens(page.text) /
get_target(name).tokens(*page.size)``.
"""
from __future__ import annotations

from optical_memory.tokens.text import (
    DEFAULT_TOKENIZER,
    TextCounter,
    count_tokens,
    get_counter,
)
from optical_memory.tokens.vision import VisionTarget, get_target, list_targets

DEFAULT_TARGET = "deepseek-ocr:base"

__all__ = [
    "DEFAULT_TARGET",
    "DEFAULT_TOKENIZER",
    "TextCounter",
    "VisionTarget",
    "count_tokens",
    "get_counter",
    "get_target",
    "list_targets",
]
