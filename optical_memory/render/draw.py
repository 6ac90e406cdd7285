"""Drawing a laid-out page with skia: grayscale, black on white.

Glyphs are positioned explicitly (one ``allocRunPosH`` run per face per
line fragment) from the same cached advances the layout used, so what was
measured is what is drawn. A character no font has is drawn as a box outline
of the missing-glyph advance and counted in ``Page.missing_glyphs``
(control characters are not: the layout makes them spaces).
"""
from __future__ import annotations

import numpy as np
import skia

from ..types import Page
from .config import RenderConfig
from .fonts import MISSING, FontSet
from .layout import PageLayout


def draw_page(pl: PageLayout, cfg: RenderConfig, fs: FontSet) -> Page:
    """Rasterise ``pl`` into a :class:`Page` (pixels uint8 [H, W], 255 = white)."""
    info = skia.ImageInfo.Make(
        cfg.width, cfg.height, skia.ColorType.kGray_8_ColorType, skia.AlphaType.kOpaque_AlphaType
    )
    surface = skia.Surface.MakeRaster(info)
    canvas = surface.getCanvas()
    canvas.clear(skia.ColorWHITE)
    paint = skia.Paint(Color=skia.ColorBLACK, AntiAlias=True)
    box_paint = skia.Paint(Color=skia.ColorBLACK, AntiAlias=False,
                           Style=skia.Paint.kStroke_Style, StrokeWidth=1)

    lh = cfg.line_height
    # Centre the em box (ascent + descent) in the line; snap baselines to pixels.
    top_pad = (lh - (fs.ascent + fs.descent)) / 2.0
    fonts = fs.fonts
    glyph_caches = fs.glyph_cache
    builder = skia.TextBlobBuilder()
    has_runs = False
    missing: dict[str, int] = {}
    boxes: list[tuple[float, float, float]] = []
    for i, line in enumerate(pl.lines):
        baseline = float(round(cfg.margin + i * lh + top_pad + fs.ascent))
        x = float(cfg.margin)
        for style, text in line:
            cache = glyph_caches[style]
            face: int | None = None
            gids: list[int] = []
            xs: list[float] = []
            for ch in text:
                g = cache.get(ch) or fs.resolve(style, ch)
                if ch != " ":
                    if g.face != face:
                        if gids:
                            assert face is not None  # set by the run's first glyph
                            builder.allocRunPosH(fonts[face], gids, xs, baseline)
                            has_runs = True
                            gids, xs = [], []
                        face = g.face
                    if face == MISSING:
                        missing[ch] = missing.get(ch, 0) + 1
                        boxes.append((x, baseline, g.advance))
                    else:
                        gids.append(g.glyph)
                        xs.append(x)
                x += g.advance
            if gids:
                assert face is not None  # set by the run's first glyph
                builder.allocRunPosH(fonts[face], gids, xs, baseline)
                has_runs = True
    if has_runs:
        canvas.drawTextBlob(builder.make(), 0, 0, paint)
    box_h = round(fs.ascent * 0.75)
    for x, baseline, adv in boxes:
        left = round(x) + 1.5
        right = round(x + adv) - 1.5
        canvas.drawRect(skia.Rect.MakeLTRB(left, baseline - box_h + 0.5, right, baseline - 0.5),
                        box_paint)
    pixels = surface.makeImageSnapshot().toarray(colorType=skia.ColorType.kGray_8_ColorType)
    pixels = np.ascontiguousarray(pixels.reshape(cfg.height, cfg.width), dtype=np.uint8)
    meta = dict(pl.meta)
    return Page(
        pixels=pixels,
        text=pl.text,
        spans=pl.spans,
        font_size=float(cfg.font_size),
        index=pl.index,
        missing_glyphs=missing,
        meta=meta,
    )
