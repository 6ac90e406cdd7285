"""Legibility of a page at each age tier: measured, or from the calibration.

A page's read-back at a tier is known two ways:

- **measured**: with ``AgePolicy(verify=True)`` every page is read back at
  every tier as it is written (the tier images made as the memory makes
  them); the scores and the reader are stored in the page's
  ``meta["readback"]`` (``{"reader": "native", "read_by": "native", "tiers":
  {"base": 0.99, ...}}``; ``read_by`` names the script fallback, e.g.
  tesseract for a Russian page, and the accounting says "measured by tesseract").
- **user-calibrated**: the user's own calibration of the memory's reader
  (``optical-memory calibrate``, :mod:`optical_memory.fit.user`): the
  read-back of the memory's layout at each tier's size, as that reader
  (e.g. a served vision model) read it. It wins over the shipped figure.
- **calibrated**: the shipped measurement of the tier images
  (``optical_memory/data/tier_methods.json``, ``benchmarks/tier_methods.py``):
  mean read-back of held-out pages at each tier's scale, per reader — CPU
  readers only (tesseract, the native reader). Both calibrations were
  measured on Latin pages and speak for no other script (a page whose
  letters are ≥ 5 % CJK, Cyrillic, ... has no calibrated figure).

In the policy's ``"legible"`` mode a page moves down the tiers only while its
read-back at the next tier (measured, else calibrated) stays at or above
``min_readback``; without either figure for the memory's decoder it stays
where it is. In ``"fade"`` mode it moves as its age says, and the accounting
reports the read-back it keeps.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optical_memory.age.methods import PIXEL_METHODS, resample_pixels

if TYPE_CHECKING:  # pragma: no cover
    from optical_memory.age.policy import AgePolicy
    from optical_memory.decode.readback import Decoders
    from optical_memory.types import Page

#: Source of a figure from the user's own calibration (``optical-memory calibrate``).
USER_SOURCE = "user-calibrated"
#: Key of the measured read-back in a page's ``meta``.
READBACK_KEY = "readback"
#: A page counts as the calibration's script (Latin) unless another script
#: holds at least this share of its letters (``meta["scripts"]``).
OTHER_SCRIPT_SHARE = 0.05
#: ... and unless at least this share of its Latin letters is accented
#: (``meta["accented"]``, :func:`optical_memory.scripts.accented_share`). The
#: calibration was measured on English; the native reader reads the 512² tier
#: of German (1.3 % accented) at 0.985, Spanish (1.7 %) 0.985, French (3.7 %)
#: 0.975, but Czech (13 %) 0.924 and Turkish (10 %) 0.934, under the default
#: floor (``benchmarks/results/default_reader.md``). Such pages keep their
#: tier unless ``AgePolicy(verify=True)`` measures them.
ACCENTED_SHARE = 0.03
TIER_METHODS_FILE = "tier_methods.json"
_LOADED: dict[str, dict[str, Any]] = {}


def tier_methods(path: str | Path | None = None) -> dict[str, Any]:
    """The tier-image choice and its read-back (the shipped file by default)."""
    p = Path(path) if path is not None else Path(
        str(resources.files("optical_memory") / "data" / TIER_METHODS_FILE))
    key = str(p)
    if key not in _LOADED:
        try:
            _LOADED[key] = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            _LOADED[key] = {"version": 1, "choice": {}}
    return _LOADED[key]


def _entry(decoder: str, scale: float) -> Mapping[str, Any] | None:
    for e in tier_methods().get("choice", {}).get(decoder, {}).values():
        if abs(float(e.get("scale", 0)) - scale) < 1e-3:
            return e
    return None


def tier_method(decoder: str, scale: float) -> str:
    """How a tier image of ``scale`` is made for ``decoder``: the measured best
    pixel method (Lanczos when nothing was measured)."""
    if scale >= 1.0:
        return "master"
    e = _entry(decoder, scale) or _entry("native", scale)
    method = e.get("method") if e else None
    return method if method in PIXEL_METHODS else "lanczos"


def calibrated_readback(decoder: str, scale: float) -> float | None:
    """Mean read-back ``decoder`` reached on held-out pages at ``scale`` of
    the master (1.0: the fresh page), or None when it was not measured."""
    e = _entry(decoder, scale)
    return float(e["mean_precision"]) if e else None


def calibrated_script(meta: Mapping[str, Any] | None) -> bool:
    """Whether the calibration (measured on English pages) speaks for a page:
    no script but Latin holds ≥ :data:`OTHER_SCRIPT_SHARE` of its letters,
    and fewer than :data:`ACCENTED_SHARE` of its Latin letters are outside
    ASCII (pages without recorded scripts read as Latin and unaccented, as
    everywhere else)."""
    meta = meta or {}
    accented = meta.get("accented")
    if isinstance(accented, int | float) and accented >= ACCENTED_SHARE:
        return False
    shares = meta.get("scripts")
    if not isinstance(shares, Mapping):
        return True
    return all(k == "latin" or not isinstance(v, int | float) or v < OTHER_SCRIPT_SHARE
               for k, v in shares.items())


def measured(meta: Mapping[str, Any] | None, decoder: str) -> dict[str, float]:
    """Per tier, the read-back stored in a page's meta by ``decoder``'s reader."""
    rb = (meta or {}).get(READBACK_KEY)
    if not isinstance(rb, Mapping) or rb.get("reader") != decoder:
        return {}
    tiers = rb.get("tiers")
    return {str(k): float(v) for k, v in tiers.items()} if isinstance(tiers, Mapping) else {}


@dataclass(frozen=True)
class Readback:
    """A page's (or tier's) read-back and where the figure comes from:
    ``source`` "measured" or "calibrated"; ``value`` None when unknown."""

    value: float | None
    source: str
    reader: str


class Legibility:
    """The age policy's legibility floor applied with the memory's reader.

    ``user``: per tier, the read-back the user's own calibration of this
    reader gives the memory's layout (:mod:`optical_memory.fit.user`); it
    wins over the shipped figures (source ``"user-calibrated"``, described by
    ``user_label``)."""

    def __init__(self, aging: AgePolicy, decoders: Decoders | None, decoder: str,
                 user: Mapping[str, float] | None = None, user_label: str = "") -> None:
        self.aging = aging
        self.decoders = decoders
        self.decoder = decoder
        self.user = dict(user) if user is not None else None
        self.user_label = user_label

    def readback(self, meta: Mapping[str, Any] | None, tier: str) -> Readback:
        """Read-back of a page (``meta``: its stored meta) at ``tier``."""
        got = measured(meta, self.decoder).get(tier)
        if got is not None:
            by = (meta or {}).get(READBACK_KEY, {}).get("read_by") or self.decoder
            # a page of a script the memory's reader hands over was read by the fallback
            return Readback(got, "measured" if by == self.decoder else f"measured by {by}", by)
        if not calibrated_script(meta):  # e.g. a Chinese page: no calibrated figure
            return Readback(None, "calibrated", self.decoder)
        if self.user is not None and tier in self.user:
            return Readback(self.user[tier], USER_SOURCE, self.decoder)
        return Readback(calibrated_readback(self.decoder, self.aging.tier(tier).scale),
                        "calibrated", self.decoder)

    def allowed(self, meta: Mapping[str, Any] | None, current: str, want: str) -> str:
        """The tier a page at ``current`` moves to when its age calls for
        ``want``: ``want`` in ``"fade"`` mode; in ``"legible"`` mode the
        oldest tier on the way whose read-back stays ≥ the floor."""
        if self.aging.mode == "fade" or current not in self.aging.names:
            return want
        lo, hi = self.aging.rank(current), self.aging.rank(want)
        got = current
        for name in self.aging.names[lo + 1: hi + 1]:
            rb = self.readback(meta, name).value
            if rb is None or rb < self.aging.min_readback:
                break
            got = name
        return got

    def measure(self, page: Page) -> dict[str, Any]:
        """Read ``page`` back at every tier (the images aging makes): the
        ``meta["readback"]`` record."""
        from optical_memory.decode.metrics import precision
        from optical_memory.decode.readback import with_layout
        from optical_memory.render.config import NEWLINE_MARKER
        from optical_memory.types import encode_png

        assert self.decoders is not None
        dec = self.decoders.for_page(page)
        tiers: dict[str, float] = {}
        methods: dict[str, str] = {}
        for t in self.aging.tiers:
            size = self.aging.size(t, (page.width, page.height))
            method = tier_method(self.decoder, t.scale) if t.scale < 1 else "master"
            px = page.pixels if method == "master" else resample_pixels(page.pixels, size, method)
            res = dec.decode(with_layout(encode_png(px), page.meta, dec))
            tiers[t.name] = round(precision(page.text, res.text, marker=NEWLINE_MARKER), 4)
            methods[t.name] = method
        # "reader": the memory's reader, whose gate uses the figures; "read_by":
        # who read the page (its script fallback for e.g. a Russian page)
        return {"reader": self.decoder, "read_by": getattr(dec, "name", self.decoder),
                "tiers": tiers, "methods": methods}


def tier_readbacks(legibility: Legibility, metas: Sequence[tuple[str, Mapping[str, Any] | None]]
                   ) -> dict[str, Readback]:
    """Per tier, the mean read-back of pages ``(tier, meta)`` and its source
    ("measured" when every page's figure was, "calibrated" or
    "user-calibrated" when every one was that, else "mixed")."""
    acc: dict[str, list[Readback]] = {}
    for tier, meta in metas:
        acc.setdefault(tier, []).append(legibility.readback(meta, tier))
    out = {}
    for tier, rbs in acc.items():
        vals = [r.value for r in rbs if r.value is not None]
        sources = {r.source for r in rbs}
        source = sources.pop() if len(sources) == 1 else "mixed"
        out[tier] = Readback(sum(vals) / len(vals) if vals and len(vals) == len(rbs) else None,
                             source, legibility.decoder)
    return out


__all__ = ["ACCENTED_SHARE", "OTHER_SCRIPT_SHARE", "READBACK_KEY", "USER_SOURCE", "Legibility",
           "Readback",
           "calibrated_readback", "calibrated_script", "measured",
           "tier_method", "tier_methods", "tier_readbacks"]
