"""Text lines of a page: where they are, and each one cropped for the reader.

Pages are one column, black on white, with lines on a regular grid. Two ways
to find the lines:

- :func:`layout_boxes`: from the layout the page was drawn with (``Page.meta``
  records ``width``, ``height``, ``font_size``, ``line_spacing``, ``margin``
  and ``lines``); line ``i`` is the band ``margin + i * line_height`` in the
  master, scaled to the image (an aged tier is the master resampled, so the
  grid scales with it).
- :func:`find_lines`: for a bare image, from the row ink profile: the line
  pitch is the period of the profile (the strongest Fourier component over
  candidate periods, fractional), its phase puts the band edges between lines.

:func:`crop_lines` cuts each band (with a little of the lines above and
below) and scales it to :data:`LINE_HEIGHT` px, keeping the aspect ratio.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Height (px) every line crop is scaled to; the model's input height.
LINE_HEIGHT = 16
#: Added above and below a line's band, as a fraction of the line pitch.
V_PAD = 0.15
#: Blank kept left of the text column and right of a line's last ink (fraction of pitch).
H_PAD = 0.3
#: A pixel darker than this is ink (aged tiers are gray, not black).
INK = 192
#: Where a line's ink centroid sits in its band, measured on rendered pages
#: (fraction of the pitch from the band's top).
INK_CENTRE = 0.50
#: A band holds a line when ink reaches its core: the band less this share of
#: the pitch at the top and bottom (descenders of the line above reach in).
CORE = 0.2


@dataclass(frozen=True)
class LineBox:
    """One line's band in image px: rows ``[top, bottom)``, text from ``left``."""

    top: float
    bottom: float
    left: float

    @property
    def pitch(self) -> float:
        return self.bottom - self.top


def layout_boxes(meta: Mapping[str, Any], size: tuple[int, int]) -> list[LineBox] | None:
    """Line bands of a page drawn with the layout in ``meta`` (``Page.meta``
    or a stored page's meta) for an image of ``size`` (w, h), any tier.
    None when ``meta`` does not record a layout."""
    try:
        mw, mh = float(meta["width"]), float(meta["height"])
        lh = float(meta["font_size"]) * float(meta["line_spacing"])
        margin = float(meta["margin"])
        n = int(meta.get("lines") or int((mh - 2 * margin) // lh))
    except (KeyError, TypeError, ValueError):
        return None
    if min(mw, mh, lh) <= 0 or n <= 0:
        return None
    sx, sy = size[0] / mw, size[1] / mh
    return [LineBox((margin + i * lh) * sy, (margin + (i + 1) * lh) * sy, margin * sx)
            for i in range(n)]


def _ink_profile(gray: np.ndarray) -> np.ndarray:
    return (255.0 - gray.astype(np.float32)).mean(axis=1)


def estimate_pitch(profile: np.ndarray, lo: float = 4.5, hi: float = 80.0
                   ) -> tuple[float, float] | None:
    """(pitch, centre of a line's ink, mod pitch) of a row ink profile, or
    None when it shows no line grid (blank, or a single line)."""
    rows = np.nonzero(profile > 0.5)[0]
    if rows.size < 2:
        return None
    y0, y1 = int(rows[0]), int(rows[-1]) + 1
    hi = min(hi, (y1 - y0) / 2.5)  # a grid needs some lines
    if hi <= lo:
        return None
    seg = profile[y0:y1] - profile[y0:y1].mean()
    y = np.arange(y0, y1, dtype=np.float64)

    def power(ps: np.ndarray) -> np.ndarray:
        return np.abs(np.exp(-2j * np.pi * y[None, :] / ps[:, None]) @ seg)

    periods = np.exp(np.linspace(math.log(lo), math.log(hi), 600))
    mags = power(periods)
    best = float(periods[int(np.argmax(mags))])
    # the strongest component may be a harmonic (P/2, P/3) of the line pitch
    for k in (3, 2):
        cand = best * k
        if cand <= hi and float(power(np.array([cand]))[0]) > 0.35 * float(mags.max()):
            best = cand
            break
    fine = np.linspace(best * 0.97, best * 1.03, 121)
    pitch = float(fine[int(np.argmax(power(fine)))])
    coef = np.exp(-2j * np.pi * y / pitch) @ seg
    centre = float((-np.angle(coef) / (2 * np.pi)) * pitch % pitch)
    return pitch, centre


def _grid_fits(profile: np.ndarray, pitch: float, first_top: float) -> bool:
    """Whether band edges fall between lines: less ink at the edges than in the middles."""
    n = len(profile)
    tops = first_top + pitch * np.arange(int(n / pitch) + 1)
    edges = np.clip(np.round(tops).astype(int), 0, n - 1)
    mids = np.clip(np.round(tops + pitch / 2).astype(int), 0, n - 1)
    inked = profile[mids] > 0.5
    if inked.sum() < 3:
        return False
    return float(profile[edges][inked].mean()) < 0.6 * float(profile[mids][inked].mean())


def _runs(row_ink: np.ndarray) -> list[tuple[int, int]]:
    """Runs of inked rows as [start, end)."""
    out: list[tuple[int, int]] = []
    start = None
    for y, v in enumerate(row_ink):
        if v and start is None:
            start = y
        elif not v and start is not None:
            out.append((start, y))
            start = None
    if start is not None:
        out.append((start, len(row_ink)))
    return out


def find_lines(gray: np.ndarray) -> list[LineBox]:
    """Line bands of a bare page image (uint8 [H, W], dark text on light):
    a regular grid from the ink profile, or (no grid: a single line, or
    irregular lines) one band around each run of inked rows."""
    dark: np.ndarray = np.asarray(gray < INK)
    cols = np.nonzero(dark.any(axis=0))[0]
    if cols.size == 0:
        return []
    left = float(cols[0])  # the text column's left edge: the leftmost ink of any line
    profile = _ink_profile(gray)
    est = estimate_pitch(profile)
    if est is not None:
        pitch, centre = est
        first_top = centre - INK_CENTRE * pitch
        first_top -= math.floor(first_top / pitch) * pitch  # first band at y in [0, pitch)
        if _grid_fits(profile, pitch, first_top):
            return _grid(dark, pitch, first_top, left)
    boxes = []
    for a, b in _runs(np.asarray(dark.any(axis=1))):
        pitch = max(6.0, (b - a) / 0.85)
        mid = (a + b) / 2.0
        boxes.append(LineBox(mid - pitch / 2, mid + pitch / 2, left))
    return boxes


def _grid(dark: np.ndarray, pitch: float, first_top: float, left: float) -> list[LineBox]:
    h = dark.shape[0]
    row_ink: np.ndarray = np.asarray(dark.any(axis=1))
    inked: list[bool] = []
    k = 0
    while first_top + k * pitch < h:
        top = first_top + k * pitch
        a = max(0, int(round(top + CORE * pitch)))
        b = min(h, int(round(top + (1 - CORE) * pitch)))
        inked.append(b > a and bool(row_ink[a:b].any()))
        k += 1
    idx = [i for i, v in enumerate(inked) if v]
    if not idx:
        return []
    # from the first to the last inked band (blank bands between: empty lines)
    return [LineBox(first_top + i * pitch, first_top + (i + 1) * pitch, left)
            for i in range(idx[0], idx[-1] + 1)]


def ink_right(gray: np.ndarray, box: LineBox) -> float | None:
    """Right edge (px) of the last ink in the core of ``box``; None if blank."""
    h = gray.shape[0]
    core_pad = 0.1 * box.pitch  # wider than CORE: a trailing "_" or "," counts
    a = max(0, int(round(box.top + core_pad)))
    b = min(h, int(round(box.bottom - core_pad)))
    if b <= a:
        return None
    cols = np.nonzero((gray[a:b] < INK).any(axis=0))[0]
    if cols.size == 0:
        return None
    return float(cols[-1] + 1)


def crop_line(gray: np.ndarray, box: LineBox, right: float, *, height: int = LINE_HEIGHT,
              v_pad: float = V_PAD, left_pad: float = H_PAD, right_pad: float = H_PAD,
              shift: float = 0.0, stretch: float = 1.0) -> np.ndarray:
    """The band of ``box`` (plus ``v_pad`` pitch above and below, moved down
    by ``shift`` pitch) from ``left - left_pad`` to ``right + right_pad`` pitch,
    scaled to ``height`` px (and ``stretch`` times that across): uint8
    [height, W], white = 255."""
    pil, pad = _padded(gray, box.pitch)
    return _crop(pil, pad, box, right, height, v_pad, left_pad, right_pad, shift, stretch)


def _padded(gray: np.ndarray, pitch: float):
    """(PIL image of ``gray`` with a white border wide enough for any crop, border px)."""
    from PIL import Image

    pad = int(math.ceil(2 * pitch)) + 2
    return Image.fromarray(np.pad(gray, pad, constant_values=255)), pad


def _crop(pil, pad: int, box: LineBox, right: float, height: int, v_pad: float,
          left_pad: float, right_pad: float, shift: float, stretch: float) -> np.ndarray:
    from PIL import Image

    p = box.pitch
    y0 = box.top + (shift - v_pad) * p
    y1 = box.bottom + (shift + v_pad) * p
    x0 = box.left - left_pad * p
    x1 = right + right_pad * p
    out_w = max(3, int(round((x1 - x0) * height / (y1 - y0) * stretch)))
    crop = pil.resize((out_w, height), Image.Resampling.BILINEAR,
                      box=(x0 + pad, y0 + pad, x1 + pad, y1 + pad))
    return np.asarray(crop, dtype=np.uint8)


def crop_lines(gray: np.ndarray, boxes: Sequence[LineBox], *, height: int = LINE_HEIGHT,
               stretch: float = 1.0) -> list[np.ndarray | None]:
    """Each box's line cropped and scaled (:func:`crop_line`); None for a blank band."""
    if not boxes:
        return []
    pil, pad = _padded(gray, max(bx.pitch for bx in boxes))
    width = float(gray.shape[1])
    out: list[np.ndarray | None] = []
    for bx in boxes:
        r = ink_right(gray, bx)
        out.append(None if r is None else
                   _crop(pil, pad, bx, min(width, r), height, V_PAD, H_PAD, H_PAD, 0.0, stretch))
    return out


__all__ = ["INK", "LINE_HEIGHT", "LineBox", "crop_line", "crop_lines", "estimate_pitch",
           "find_lines", "ink_right", "layout_boxes"]
