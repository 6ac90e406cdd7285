"""Age tiers: how far a page is shrunk as it grows old (a forgetting curve).

Every page is rendered once, at the *master* resolution (the target's
``page_size``), and stored as a PNG. As newer items arrive the page ages and
moves down the tiers of an :class:`AgePolicy`; each tier is a scale of the
master side, and a page in a lower tier is a resample **of the stored master
PNG** (never a resample of a resample) by the method measured to read back
best there (Lanczos at every tier measured so far: ``benchmarks/tier_methods.py``).

Default tiers (:data:`DEFAULT_TIERS`), age counted in items (turns and
documents) added after the page's newest item:

==========  ===============  =======  =========================================
tier        age (items)      scale    at ``deepseek-ocr:base`` (1024² master)
==========  ===============  =======  =========================================
``base``    ≤ 200            1.0      1024² page → base mode, 273 tokens
``small``   ≤ 1000           0.625    640² page → small mode, 111 tokens
``tiny``    older            0.5      512² page → tiny mode, 73 tokens
==========  ===============  =======  =========================================

Token cost of a tier (:meth:`AgePolicy.tokens`): for DeepSeek-OCR targets the
cheapest single-view mode that sees the rendition without shrinking it (so a
640² rendition is billed as ``deepseek-ocr:small``; :func:`deepseek_mode`
names it, and a configured DeepEncoder encodes the rendition in that mode),
else the target's own rule on the rendition size (``target.tokens(w, h)``).

Legibility: the policy's ``mode`` is ``"legible"`` by default — a page
moves to a smaller tier only while its read-back there stays at or above
``min_readback`` (0.95), measured per page with ``verify=True``, else the
shipped calibration for the memory's decoder (the native reader, the
default, reads the default layout at 0.995 at 640² and 0.989 at 512², so
Latin pages shrink as their age says; tesseract reads 640² pages at 0.845,
so with it pages stay fresh). ``"fade"`` shrinks pages with age regardless, and the accounting
says what they still read back (:mod:`optical_memory.age.legibility`).
"""
from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

from optical_memory.config import DEFAULT_MIN_READBACK
from optical_memory.errors import ConfigError
from optical_memory.tokens import VisionTarget, get_target
from optical_memory.tokens.billing import image_tokens

AGE_UNITS = ("turns", "tokens")
#: ``"legible"``: a page shrinks only while it still reads back at or above
#: ``min_readback``; ``"fade"``: pages shrink with age regardless.
AGE_MODES = ("legible", "fade")


@dataclass(frozen=True)
class Tier:
    """One age tier.

    name:    stored as the page's tier (``"base"``, ``"small"``, ...).
    max_age: pages up to this age (inclusive, in the policy's unit) sit here;
             ``None`` = no upper bound (the last tier).
    scale:   rendition side / master side, in (0, 1].
    """

    name: str
    max_age: int | None
    scale: float

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError(f"tier name must be a non-empty string (got {self.name!r})")
        if self.max_age is not None and (
            isinstance(self.max_age, bool) or not isinstance(self.max_age, int) or self.max_age < 0
        ):
            raise ConfigError(
                f"tier {self.name!r}: max_age must be an int >= 0 or None (got {self.max_age!r})"
            )
        if not isinstance(self.scale, int | float) or not 0 < self.scale <= 1:
            raise ConfigError(f"tier {self.name!r}: scale must be in (0, 1] (got {self.scale!r})")


DEFAULT_TIERS: tuple[Tier, ...] = (
    Tier("base", max_age=200, scale=1.0),
    Tier("small", max_age=1000, scale=0.625),
    Tier("tiny", max_age=None, scale=0.5),
)


@dataclass(frozen=True)
class AgePolicy:
    """Ordered tiers, youngest first, and the unit ages are counted in.

    unit: ``"turns"`` (items added after the page's newest item) or
          ``"tokens"`` (text tokens of those items).
    Tiers must have increasing ``max_age``, non-increasing ``scale``, unique
    names, and only the last may have ``max_age=None``.

    mode: ``"legible"`` (default): a page moves to a smaller tier only while
          its read-back there stays ≥ ``min_readback`` (measured per page
          with ``verify``, else the user's calibration of the memory's
          decoder, else the shipped one; unknown: it stays); ``"fade"``: pages shrink with age
          regardless, and the accounting says what they still read back
          (:mod:`~optical_memory.age.legibility`).
    min_readback: the legibility floor, in (0, 1].
    verify: read every page back at every tier as it is written (the
          memory's decoder; seconds per page with tesseract) and store the
          scores in the page's ``meta["readback"]``.
    """

    tiers: tuple[Tier, ...] = DEFAULT_TIERS
    unit: str = "turns"
    mode: str = "legible"
    min_readback: float = DEFAULT_MIN_READBACK
    verify: bool = False
    _by_name: dict[str, Tier] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        tiers = tuple(self.tiers)
        object.__setattr__(self, "tiers", tiers)
        if not tiers:
            raise ConfigError("an AgePolicy needs at least one tier")
        if self.unit not in AGE_UNITS:
            raise ConfigError(f"age unit must be one of {AGE_UNITS} (got {self.unit!r})")
        if self.mode not in AGE_MODES:
            raise ConfigError(f"age mode must be one of {AGE_MODES} (got {self.mode!r})")
        if isinstance(self.min_readback, bool) or not isinstance(self.min_readback, int | float) \
                or not 0 < self.min_readback <= 1:
            raise ConfigError(f"min_readback must be in (0, 1] (got {self.min_readback!r})")
        if not isinstance(self.verify, bool):
            raise ConfigError(f"verify must be a bool (got {self.verify!r})")
        names = [t.name for t in tiers]
        if len(set(names)) != len(names):
            raise ConfigError(f"tier names must be unique (got {names})")
        if tiers[-1].max_age is not None:
            raise ConfigError(
                f"the last tier ({tiers[-1].name!r}) must have max_age=None "
                f"(got {tiers[-1].max_age})"
            )
        for prev, cur in itertools.pairwise(tiers):
            if prev.max_age is None:
                raise ConfigError(f"only the last tier may have max_age=None (got {prev.name!r})")
            if cur.max_age is not None and cur.max_age <= prev.max_age:
                raise ConfigError(
                    f"max_age must increase: {prev.name!r} {prev.max_age} then "
                    f"{cur.name!r} {cur.max_age}"
                )
            if cur.scale > prev.scale:
                raise ConfigError(
                    f"scale must not grow with age: {prev.name!r} {prev.scale} then "
                    f"{cur.name!r} {cur.scale}"
                )
        object.__setattr__(self, "_by_name", {t.name: t for t in tiers})

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tiers)

    def tier(self, name: str) -> Tier:
        """The tier called ``name`` (:class:`ConfigError` if unknown)."""
        try:
            return self._by_name[name]
        except KeyError:
            raise ConfigError(
                f"unknown tier {name!r} (this policy has {list(self.names)})") from None

    def rank(self, name: str) -> int:
        """0 for the youngest tier, increasing with age."""
        return self.names.index(self.tier(name).name)

    def tier_for_age(self, age: int) -> Tier:
        """The tier a page of ``age`` belongs to."""
        for t in self.tiers:
            if t.max_age is None or age <= t.max_age:
                return t
        return self.tiers[-1]  # unreachable: the last tier is unbounded

    def size(self, tier: str | Tier, master_size: Sequence[int]) -> tuple[int, int]:
        """``(w, h)`` of ``tier``'s rendition of a ``master_size`` page."""
        t = tier if isinstance(tier, Tier) else self.tier(tier)
        w, h = int(master_size[0]), int(master_size[1])
        if t.scale == 1.0:
            return w, h
        return max(1, round(w * t.scale)), max(1, round(h * t.scale))

    def tokens(
        self, tier: str | Tier, target: str | VisionTarget, master_size: Sequence[int]
    ) -> int:
        """Vision tokens one page costs in ``tier`` for ``target``."""
        tgt = get_target(target) if isinstance(target, str) else target
        w, h = self.size(tier, master_size)
        return image_tokens(tgt, w, h)


__all__ = [
    "AGE_MODES",
    "AGE_UNITS",
    "DEFAULT_MIN_READBACK",
    "DEFAULT_TIERS",
    "AgePolicy",
    "Tier",
]
