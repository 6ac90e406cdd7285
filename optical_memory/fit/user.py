"""Calibration against the user's own model, and how a memory uses it.

The shipped calibration (``optical_memory/data/calibration.json`` for the
layout, ``tier_methods.json`` for the tier read-back) was measured with CPU
readers (tesseract, the native reader). What a served vision model reads is
that model's property: :func:`calibrate_decoder` measures it. It renders the
first page of ``samples`` sample passages (:func:`~optical_memory.fit.sample_texts`,
the "calibrate" split) at a few font sizes in the memory's own page family
(face, spacing, newline marker, hinting of the shipped default layout), reads
each back fresh and at every age tier's size (the master resampled down as
aging makes the tier image) with the decoder, and writes one
:class:`~optical_memory.fit.CalibrationEntry` per (font size, tier side) to
the user's data folder (:func:`~optical_memory.fit.user_calibration_path`),
keeping the entries other decoders have there.

A memory whose decoder the file calibrates uses it from then on
(:func:`resolve_calibration`, through ``OpticalMemory(calibration=...)``, default: that
file when it exists): its page layout is the densest one of *these* entries
reaching the memory's ``readback`` (:func:`~optical_memory.fit.recommended_config`),
and the legibility floor reads its tier figures
(:meth:`UserCalibration.tier_readbacks`, source ``"user-calibrated"``)
instead of the shipped ones. An ``openai`` calibration is used only while the
memory reads with the same model (decoder option ``model``, else
``$OPENAI_MODEL``, when either is set).
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import DEFAULT_READBACK, LAYOUT_DECODER, NO_LAYOUT_READERS
from ..errors import ConfigError, InputError
from .calibration import (
    Calibration,
    CalibrationEntry,
    check_writable,
    load_calibration,
    user_calibration_path,
)
from .choose import recommended_entry
from .sweep import Progress, calibrate

if TYPE_CHECKING:  # pragma: no cover
    from ..age.policy import AgePolicy
    from ..render import RenderConfig

log = logging.getLogger(__name__)

#: Readers that run on the CPU here; the shipped figures were measured with them.
CPU_READERS = ("tesseract", "native", "rapidocr")
#: Font sizes of the default sweep, as multiples of the shipped layout's size.
SIZE_STEPS = (0.8, 0.9, 1.0, 1.1, 1.25)


@dataclass(frozen=True)
class SweepPlan:
    """What :func:`calibrate_decoder` renders and reads: the first page of
    ``samples`` passages at each font size (px at ``master_side``), square
    ``master_side``² pages in the family named, each read at every side in
    ``sides`` (the master side first, then each smaller age tier)."""

    target: str
    master_side: int
    sides: tuple[int, ...]
    sizes: tuple[float, ...]
    samples: int
    font: str
    newline_mode: str
    line_spacing: float
    hinting: str
    margin: int

    @property
    def reads(self) -> int:
        """Page reads the sweep makes (requests, for an endpoint)."""
        return len(self.sizes) * len(self.sides) * self.samples


def sweep_plan(target: str, *, aging: AgePolicy | None = None, sizes: Sequence[float] | None = None,
         samples: int = 1) -> SweepPlan:
    """The sweep for ``target``: pages of the target's short side (what the
    model sees), read at each tier size of ``aging`` (default tiers), at
    ``sizes`` (default: the shipped layout's font size × :data:`SIZE_STEPS`,
    rounded to half pixels) in the shipped default layout's family."""
    from ..age.policy import AgePolicy
    from ..tokens import get_target

    tgt = get_target(target)
    master = min(tgt.seen_size(*tgt.page_size))
    entry = recommended_entry(target)  # the shipped default layout (CPU reader)
    base_px = entry.effective_font_size * master / entry.side
    if sizes is None:
        sizes = sorted({round(base_px * s * 2) / 2 for s in SIZE_STEPS})
    sizes = tuple(float(s) for s in sizes)
    if not sizes or any(not (isinstance(s, float) and 3.0 <= s <= 64.0) for s in sizes):
        raise InputError(f"font sizes must be px in [3, 64] (got {list(sizes)})")
    if isinstance(samples, bool) or not isinstance(samples, int) or not 1 <= samples <= 64:
        raise InputError(f"samples must be an int in [1, 64] (got {samples!r})")
    policy = aging or AgePolicy()
    sides = tuple(dict.fromkeys(max(1, round(master * t.scale)) for t in policy.tiers))
    return SweepPlan(target=tgt.name, master_side=master, sides=sides,
                     sizes=tuple(sorted(set(sizes))), samples=samples, font=entry.font,
                     newline_mode="marker", line_spacing=entry.line_spacing,
                     hinting=entry.hinting, margin=entry.margin)


def calibrate_decoder(sweep: SweepPlan, decoder: str = "openai", *,
                      options: Mapping[str, Any] | None = None, workers: int = 4,
                      out: str | Path | None = None, write: bool = True,
                      progress: Progress | None = None) -> Calibration:
    """Run ``sweep`` with ``decoder`` (``options``: its keywords, e.g.
    ``base_url``, ``model``; ``workers``: reads at once) and write the result
    to ``out`` (default: the user's calibration file), replacing the entries
    this decoder had there and keeping the others'. Returns the calibration
    as written. Nothing is written when a read fails."""
    dest = check_writable(user_calibration_path() if out is None else out) if write else None
    opts = dict(options or {})
    endpoint = _endpoint(decoder, opts)  # bad options fail here, before any read
    t0 = time.time()
    cal = calibrate(sizes=sweep.sizes, decoders=(decoder,), page_sides=sweep.sides,
                    samples=sweep.samples, scripts=("latin",),
                    newline_modes=(sweep.newline_mode,), line_spacings=(sweep.line_spacing,),
                    fonts=(sweep.font,), hinting=sweep.hinting, margin=sweep.margin,
                    master_side=sweep.master_side, workers=workers, write=False,
                    options=opts, progress=progress)
    about: dict[str, Any] = {
        "target": sweep.target, "samples": sweep.samples, "sides": list(sweep.sides),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0)),
        "seconds": cal.meta.get("seconds"),
        "resampling": "Lanczos down to each tier side (as aging makes the tier image)",
    }
    about.update(endpoint)
    old = Calibration([], {})
    if dest is not None and dest.is_file():
        try:
            old = Calibration.load(dest)
        except ConfigError as exc:
            log.warning("replacing unreadable calibration %s (%s)", dest, exc)
    meta = {k: v for k, v in cal.meta.items() if k != "seconds"}
    meta["decoders"] = {**dict(old.meta.get("decoders") or {}), decoder: about}
    merged = Calibration([e for e in old.entries if e.decoder != decoder] + cal.entries, meta)
    if dest is not None:
        merged.save(dest)
        from .calibration import _CACHE

        _CACHE.pop(str(dest.resolve()), None)
    return merged


def _endpoint(decoder: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Which model an ``openai`` decoder with ``options`` reads with (its
    model, endpoint and preset, as the decoder resolves them from the options,
    the preset and the environment); ``{}`` for other decoders."""
    if decoder != "openai":
        return {}
    from ..decode import get_decoder

    dec = get_decoder(decoder, **dict(options))
    return {k: getattr(dec, k, None) for k in ("model", "base_url", "preset")}


@dataclass(frozen=True)
class UserCalibration:
    """The part of a calibration file that speaks for one decoder.

    calibration: only that decoder's entries; about: how they were measured
    (model, base_url, target, measured_at, ...); path: the file, if any."""

    decoder: str
    calibration: Calibration
    about: Mapping[str, Any] = field(default_factory=dict)
    path: str | None = None

    @property
    def label(self) -> str:
        """e.g. ``your calibration (openai: model m at http://..., 2026-12-05)``."""
        bits = [self.decoder + (f": model {self.about['model']}" if self.about.get("model")
                                else "")]
        if self.about.get("base_url"):
            bits[0] += f" at {self.about['base_url']}"
        if self.about.get("measured_at"):
            bits.append(str(self.about["measured_at"])[:10])
        return f"your calibration ({', '.join(bits)})"

    def tier_readback(self, config: RenderConfig, scale: float) -> float | None:
        """Mean read-back of ``config``'s layout at ``scale`` of the master:
        the entry at that scale and the same newline mode whose font size
        (relative to its page) is the largest not above ``config``'s
        (pessimistic: larger type reads better); None when there is none."""
        page_short = min(config.width, config.height)
        want = config.font_size / page_short
        best: CalibrationEntry | None = None
        for e in self.calibration.entries:
            if e.script != "latin" or e.newline_mode != config.newline_mode:
                continue
            if abs(e.side / e.master_side - scale) > 2.0 / e.master_side:
                continue
            rel = e.font_size / e.master_side
            if rel <= want * (1 + 1e-6) and (
                    best is None or rel > best.font_size / best.master_side):
                best = e
        return None if best is None else best.mean_precision

    def tier_readbacks(self, config: RenderConfig, aging: AgePolicy) -> dict[str, float]:
        """Per tier of ``aging``, :meth:`tier_readback` (tiers without a figure left out)."""
        out = {}
        for t in aging.tiers:
            rb = self.tier_readback(config, t.scale)
            if rb is not None:
                out[t.name] = rb
        return out


def resolve_calibration(calibration: Calibration | str | os.PathLike[str] | None, decoder: str,
            options: Mapping[str, Any] | None = None) -> UserCalibration | None:
    """The user calibration a memory reading with ``decoder`` uses.

    ``calibration``: a :class:`Calibration`, a file (must exist), or None for
    the user's data folder file when there is one (an unreadable one is
    skipped with a warning). None when it holds nothing for ``decoder``, or
    when it was measured with another model than the memory's ``openai``
    decoder reads with."""
    path: str | None = None
    if isinstance(calibration, Calibration):
        cal = calibration
    elif calibration is None:
        p = user_calibration_path()
        if not p.is_file():
            return None
        try:
            cal = load_calibration(p)
        except ConfigError as exc:
            log.warning("ignoring the user calibration: %s", exc)
            return None
        path = str(p)
    elif isinstance(calibration, str | os.PathLike):
        path = os.fspath(calibration)
        cal = load_calibration(path)
    else:
        raise ConfigError("calibration must be a Calibration, a path or None "
                          f"(got {type(calibration).__name__})")
    entries = [e for e in cal.entries if e.decoder == decoder]
    if not entries:
        return None
    about = dict((cal.meta.get("decoders") or {}).get(decoder) or {})
    if decoder == "openai":
        try:
            model = _endpoint(decoder, options or {}).get("model")
        except InputError:  # no model named anywhere: the memory fails when it reads
            model = None
        if model and about.get("model") and model != about["model"]:
            log.warning("calibration %s was measured with model %r, not %r: not used",
                        path or "(given)", about["model"], model)
            return None
    return UserCalibration(decoder, Calibration(entries, dict(cal.meta)), about, path)


def layout_origin(user: UserCalibration | None, decoder: str, target: str | None = None,
                  readback: float = DEFAULT_READBACK) -> str:
    """Where a memory reading with ``decoder`` got its page layout from; with
    ``target``, also when no shipped layout for its page size reaches
    ``readback`` (the most legible one is used then)."""
    if user is not None and user.decoder == decoder and decoder not in NO_LAYOUT_READERS:
        return user.label
    shipped = {e.decoder for e in load_calibration().entries}
    used = decoder if decoder in shipped and decoder not in NO_LAYOUT_READERS else LAYOUT_DECODER
    kind = "CPU reader" if used in CPU_READERS else "reader"
    note = ("" if used == decoder else
            f"; {decoder} never sets the layout" if decoder in NO_LAYOUT_READERS else
            f"; nothing calibrated for {decoder}")
    if target is not None:
        try:
            entry: CalibrationEntry | None = recommended_entry(target, decoder=used,
                                                               threshold=readback)
        except (ConfigError, InputError):
            entry = None
        if entry is not None and entry.mean_precision < readback:
            note += (f"; at this page size no calibrated layout reaches read-back {readback:g}: "
                     f"the most legible one is used, mean {entry.mean_precision:.3f}")
    return f"shipped calibration ({kind} {used}{note})"


__all__ = ["CPU_READERS", "SIZE_STEPS", "SweepPlan", "UserCalibration",
           "calibrate_decoder", "layout_origin", "resolve_calibration", "sweep_plan"]
