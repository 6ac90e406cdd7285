"""Aging: how far a page is shrunk as it grows old (a forgetting curve).

:mod:`~optical_memory.age.policy` defines the tiers, :mod:`~optical_memory.age.renditions`
makes and caches each tier's image of a page (:mod:`~optical_memory.age.methods`:
how, measured), :mod:`~optical_memory.age.legibility` keeps pages legible, and
:mod:`~optical_memory.age.sweep` moves pages down the tiers as their scope grows.
"""
from __future__ import annotations

from optical_memory.age.legibility import Legibility, Readback
from optical_memory.age.policy import (
    AGE_MODES,
    AGE_UNITS,
    DEFAULT_MIN_READBACK,
    DEFAULT_TIERS,
    AgePolicy,
    Tier,
)
from optical_memory.age.renditions import rendition_meta, resample_png

__all__ = ["AGE_MODES", "AGE_UNITS", "DEFAULT_MIN_READBACK", "DEFAULT_TIERS", "AgePolicy",
           "Legibility", "Readback", "Tier", "rendition_meta", "resample_png"]
