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
INK_CENTRE = 0.52


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


def estimate_pitch(profile: np.ndarray, lo: float = 4.0, hi: float = 80.0
                   ) -> tuple[float, float] | None:
    """(pitch, centre of the first line's ink) of a row ink profile, or None."""
    rows = np.nonzero(profile > 0.5)[0]
    if rows.size < 2:
        return None
    y0, y1 = int(rows[0]), int(rows[-1]) + 1
    seg = profile[y0:y1] - profile[y0:y1].mean()
    y = np.arange(y0, y1, dtype=np.float64)
    hi = min(hi, max(lo + 1.0, (y1 - y0) / 1.5))
    periods = np.exp(np.linspace(math.log(lo), math.log(hi), 600))

    def power(ps: np.ndarray) -> np.ndarray:
        ph = np.exp(-2j * np.pi * y[None, :] / ps[:, None])
        return np.abs(ph @ seg)

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
    if (y1 - y0) < 1.5 * pitch:  # a single line: its ink extent is the band
        centre = (y0 + y1) / 2.0
        return float(y1 - y0) / (1.0 - 2 * 0.1), centre
    coef = (np.exp(-2j * np.pi * y / pitch) @ seg)
    centre = (-np.angle(coef) / (2 * np.pi)) * pitch % pitch
    return pitch, float(centre)


def find_lines(gray: np.ndarray) -> list[LineBox]:
    """Line bands of a bare page image (uint8 [H, W], dark text on light)."""
    h, w = gray.shape
    profile = _ink_profile(gray)
    est = estimate_pitch(profile)
    if est is None:
        return []
    pitch, centre = est
    first_top = centre - INK_CENTRE * pitch
    first_top -= math.floor(first_top / pitch) * pitch  # first band at y in [0, pitch)
    dark = gray < INK
    row_ink = dark.any(axis=1)
    boxes: list[LineBox] = []
    k = 0
    while first_top + k * pitch < h:
        top = first_top + k * pitch
        a, b = max(0, int(round(top))), min(h, int(round(top + pitch)))
        boxes.append(LineBox(top, top + pitch, 0.0) if b > a and row_ink[a:b].any()
                     else LineBox(top, top + pitch, -1.0))
        k += 1
    # keep from the first to the last band with ink (blank bands inside stay: empty lines)
    inked = [i for i, bx in enumerate(boxes) if bx.left >= 0]
    if not inked:
        return []
    boxes = boxes[inked[0]:inked[-1] + 1]
    # the text column's left edge: the leftmost ink of any line
    cols = np.nonzero(dark.any(axis=0))[0]
    left = float(cols[0]) if cols.size else 0.0
    return [LineBox(bx.top, bx.bottom, left) for bx in boxes]


def ink_right(gray: np.ndarray, box: LineBox) -> float | None:
    """Right edge (px) of the last ink in the core of ``box``; None if blank."""
    h = gray.shape[0]
    core_pad = 0.1 * box.pitch
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
              shift: float = 0.0) -> np.ndarray:
    """The band of ``box`` (plus ``v_pad`` pitch above and below, moved down
    by ``shift`` pitch) from ``left - left_pad`` to ``right + right_pad`` pitch,
    scaled to ``height`` px: uint8 [height, W], white = 255."""
    pil, pad = _padded(gray, box.pitch)
    return _crop(pil, pad, box, right, height, v_pad, left_pad, right_pad, shift)


def _padded(gray: np.ndarray, pitch: float):
    """(PIL image of ``gray`` with a white border wide enough for any crop, border px)."""
    from PIL import Image

    pad = int(math.ceil(2 * pitch)) + 2
    return Image.fromarray(np.pad(gray, pad, constant_values=255)), pad


def _crop(pil, pad: int, box: LineBox, right: float, height: int, v_pad: float,
          left_pad: float, right_pad: float, shift: float) -> np.ndarray:
    from PIL import Image

    p = box.pitch
    y0 = box.top + (shift - v_pad) * p
    y1 = box.bottom + (shift + v_pad) * p
    x0 = box.left - left_pad * p
    x1 = right + right_pad * p
    out_w = max(3, int(round((x1 - x0) * height / (y1 - y0))))
    crop = pil.resize((out_w, height), Image.Resampling.BILINEAR,
                      box=(x0 + pad, y0 + pad, x1 + pad, y1 + pad))
    return np.asarray(crop, dtype=np.uint8)


def crop_lines(gray: np.ndarray, boxes: Sequence[LineBox], *, height: int = LINE_HEIGHT
               ) -> list[np.ndarray | None]:
    """Each box's line cropped and scaled (:func:`crop_line`); None for a blank band."""
    if not boxes:
        return []
    pil, pad = _padded(gray, max(bx.pitch for bx in boxes))
    width = float(gray.shape[1])
    out: list[np.ndarray | None] = []
    for bx in boxes:
        r = ink_right(gray, bx)
        out.append(None if r is None else
                   _crop(pil, pad, bx, min(width, r), height, V_PAD, H_PAD, H_PAD, 0.0))
    return out


__all__ = ["INK", "LINE_HEIGHT", "LineBox", "crop_line", "crop_lines", "estimate_pitch",
           "find_lines", "ink_right", "layout_boxes"]
