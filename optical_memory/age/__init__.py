"""Aging: how far a page is shrunk as it grows old (a forgetting curve).

:mod:`~optical_memory.age.policy` defines the tiers, :mod:`~optical_memory.age.renditions`
makes and caches each tier's image of a page, and :mod:`~optical_memory.age.sweep`
moves pages down the tiers as their scope grows.
"""
from __future__ import annotations

from optical_memory.age.policy import AGE_UNITS, DEFAULT_TIERS, AgePolicy, Tier
from optical_memory.age.renditions import resample_png

__all__ = ["AGE_UNITS", "DEFAULT_TIERS", "AgePolicy", "Tier", "resample_png"]
