"""Old path of the age tiers, kept importable for one release: use
:mod:`optical_memory.age` (tiers, renditions) and
:mod:`optical_memory.tokens.billing` (what a tier costs)."""
from __future__ import annotations

from optical_memory.age.policy import AGE_UNITS, DEFAULT_TIERS, AgePolicy, Tier
from optical_memory.age.renditions import resample_png
from optical_memory.tokens.billing import deepseek_mode, image_tokens

__all__ = [
    "AGE_UNITS",
    "DEFAULT_TIERS",
    "AgePolicy",
    "Tier",
    "deepseek_mode",
    "image_tokens",
    "resample_png",
]
