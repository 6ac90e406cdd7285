"""Tier images drawn anew: a page's own lines laid at the tier's pixel size.

The alternative to resampling the master (:func:`~optical_memory.age.renditions.resample_png`):
the glyphs are rasterised by the font engine at the tier's font size
(``master font size × tier scale``), so stems land on whole pixels with
hinting made for that size instead of being averaged by a resampling filter.

:func:`draw_kept` keeps the master's line breaks and glyph positions (every
x scaled by the tier's scale), so the page's line grid is the master's,
scaled, and nothing can overflow a line. Which of the two reads back better
at each tier is measured (``benchmarks/tier_methods.py``), not assumed.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from optical_memory.render.config import RenderConfig
from optical_memory.render.fonts import MISSING, get_fontset
from optical_memory.render.layout import PageLayout


def tier_config(master: RenderConfig, size: Sequence[int], hinting: str | None = None
                ) -> RenderConfig:
    """``master`` scaled to an image of ``size`` (font size and margin scaled
    by the width ratio; the margin rounded to whole px)."""
    s = int(size[0]) / master.width
    return replace(master, width=int(size[0]), height=int(size[1]),
                   font_size=master.font_size * s, margin=int(round(master.margin * s)),
                   hinting=hinting or master.hinting)


def draw_kept(pl: PageLayout, master: RenderConfig, size: Sequence[int],
              hinting: str = "normal") -> np.ndarray:
    """Pixels (uint8 [H, W]) of ``pl`` — laid out for ``master`` — drawn at
    ``size``: the master's lines and glyph x positions scaled, glyphs drawn
    from the tier-size font with ``hinting``."""
    import skia

    w, h = int(size[0]), int(size[1])
    sx, sy = w / master.width, h / master.height
    mfs = get_fontset(master.font_size, master.font_path, master.mono_font_path,
                      system_fallback=master.system_fallback,
                      fallback_lang=master.fallback_lang, hinting=master.hinting)
    tfs = get_fontset(master.font_size * sx, master.font_path, master.mono_font_path,
                      system_fallback=master.system_fallback,
                      fallback_lang=master.fallback_lang, hinting=hinting)
    info = skia.ImageInfo.Make(w, h, skia.ColorType.kGray_8_ColorType,
                               skia.AlphaType.kOpaque_AlphaType)
    surface = skia.Surface.MakeRaster(info)
    canvas = surface.getCanvas()
    canvas.clear(skia.ColorWHITE)
    paint = skia.Paint(Color=skia.ColorBLACK, AntiAlias=True)
    lh = master.line_height
    top_pad = (lh - (mfs.ascent + mfs.descent)) / 2.0
    builder = skia.TextBlobBuilder()
    has_runs = False
    for i, line in enumerate(pl.lines):
        # the master's baseline (before its snapping), scaled, then snapped
        baseline = float(round((master.margin + i * lh + top_pad + mfs.ascent) * sy))
        x = float(master.margin)
        for style, text in line:
            face: int | None = None
            gids: list[int] = []
            xs: list[float] = []
            for ch in text:
                g = mfs.glyph_cache[style].get(ch) or mfs.resolve(style, ch)
                if ch != " ":
                    tg = tfs.glyph_cache[style].get(ch) or tfs.resolve(style, ch)
                    if tg.face != face:
                        if gids and face is not None and face != MISSING:
                            builder.allocRunPosH(tfs.fonts[face], gids, xs, baseline)
                            has_runs = True
                        gids, xs = [], []
                        face = tg.face
                    if face != MISSING:
                        gids.append(tg.glyph)
                        xs.append(x * sx)
                x += g.advance
            if gids and face is not None and face != MISSING:
                builder.allocRunPosH(tfs.fonts[face], gids, xs, baseline)
                has_runs = True
    if has_runs:
        canvas.drawTextBlob(builder.make(), 0, 0, paint)
    pixels = surface.makeImageSnapshot().toarray(colorType=skia.ColorType.kGray_8_ColorType)
    return np.ascontiguousarray(pixels.reshape(h, w), dtype=np.uint8)


__all__ = ["draw_kept", "tier_config"]
