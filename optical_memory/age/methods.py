"""The ways a tier image can be made from a page, by name.

Every method takes the stored master page to an image of the tier's size:

- ``lanczos``: Lanczos resample of the master PNG (what aging always did).
- ``area`` / ``area-sharpen``: box (area-average) filter, then an unsharp
  mask restoring stem contrast.
- ``redraw-normal`` / ``redraw-slight``: the page's own lines drawn again at
  the tier's font size (master font size × scale), glyph x positions and
  line breaks kept from the master (:func:`~optical_memory.age.rerender.draw_kept`),
  with normal or slight hinting.
- ``reflow``: the page's text laid out anew at the tier's font size (line
  breaks where the smaller font puts them; a page whose text no longer fits
  is marked ``overflow`` and keeps only what fits).

Which one a memory uses per tier is the measured choice
(``benchmarks/tier_methods.py`` → ``optical_memory/data/tier_methods.json``).
"""
from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from optical_memory.errors import ConfigError
from optical_memory.render.config import RenderConfig, RenderItem
from optical_memory.render.layout import PageLayout
from optical_memory.types import Page

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

METHODS: dict[str, str] = {
    "lanczos": "Lanczos resample of the master PNG",
    "area": "area-average (box) resample of the master PNG",
    "area-sharpen": "area-average resample, then an unsharp mask (radius 0.8 px, 120 %)",
    "redraw-normal": "the master's lines and glyph positions, glyphs drawn at the tier's "
                     "font size, normal hinting",
    "redraw-slight": "the master's lines and glyph positions, glyphs drawn at the tier's "
                     "font size, slight hinting",
    "reflow": "the page's text laid out anew at the tier's font size (normal hinting)",
}
#: Methods that need only the master PNG (any stored page, text kept or not).
PIXEL_METHODS = ("lanczos", "area", "area-sharpen")


def check_method(name: str) -> str:
    if name not in METHODS:
        raise ConfigError(f"unknown tier method {name!r} (known: {', '.join(METHODS)})")
    return name


def resample_pixels(gray: np.ndarray, size: Sequence[int], method: str) -> np.ndarray:
    """``gray`` (uint8 [H, W]) resampled to ``size`` with a pixel method."""
    import numpy as np
    from PIL import Image, ImageFilter

    w, h = int(size[0]), int(size[1])
    img = Image.fromarray(np.ascontiguousarray(gray, dtype=np.uint8))
    if (w, h) == img.size:
        return np.asarray(img, dtype=np.uint8)
    if method == "lanczos":
        out = img.resize((w, h), Image.Resampling.LANCZOS)
    elif method in ("area", "area-sharpen"):
        out = img.resize((w, h), Image.Resampling.BOX)
        if method == "area-sharpen":
            out = out.filter(ImageFilter.UnsharpMask(radius=0.8, percent=120, threshold=0))
    else:
        raise ConfigError(f"{method!r} is not a pixel method ({', '.join(PIXEL_METHODS)})")
    return np.asarray(out, dtype=np.uint8)


@dataclass(frozen=True)
class TierPage:
    """A tier image: pixels, the layout they were drawn with (``page.meta``),
    and whether the page's text overflowed it (``reflow`` only)."""

    page: Page
    method: str
    overflow: bool = False


def _gray_of(png: bytes) -> np.ndarray:
    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        return np.asarray(im.convert("L"), dtype=np.uint8)


def make_tier_page(pl: PageLayout, cfg: RenderConfig, size: Sequence[int], method: str,
                   items: Mapping[str, RenderItem] | None = None,
                   master_pixels: np.ndarray | None = None) -> TierPage:
    """``pl`` (laid out with ``cfg``) as a ``size`` image made by ``method``.
    ``items`` (id → the item laid out) is needed by ``reflow``; pixel
    methods start from ``master_pixels`` (drawn here when not given)."""
    from optical_memory.age.rerender import draw_kept, tier_config
    from optical_memory.render.draw import draw_page
    from optical_memory.render.fonts import get_fontset

    meta = dict(pl.meta)
    if method == "master":  # the fresh page itself
        fs = get_fontset(cfg.font_size, cfg.font_path, cfg.mono_font_path,
                         system_fallback=cfg.system_fallback,
                         fallback_lang=cfg.fallback_lang, hinting=cfg.hinting)
        return TierPage(draw_page(pl, cfg, fs), method)
    check_method(method)
    if method in PIXEL_METHODS:
        if master_pixels is None:
            fs = get_fontset(cfg.font_size, cfg.font_path, cfg.mono_font_path,
                             system_fallback=cfg.system_fallback,
                             fallback_lang=cfg.fallback_lang, hinting=cfg.hinting)
            master_pixels = draw_page(pl, cfg, fs).pixels
        px = resample_pixels(master_pixels, size, method)
        return TierPage(Page(px, pl.text, pl.spans, cfg.font_size, meta=meta), method)
    if method.startswith("redraw-"):
        px = draw_kept(pl, cfg, size, hinting=method.split("-", 1)[1])
        return TierPage(Page(px, pl.text, pl.spans, cfg.font_size, meta=meta), method)
    # reflow: the page's spans laid out again at the tier's size
    from optical_memory.render import Renderer

    if items is None:
        raise ConfigError("the reflow method needs the page's items")
    parts = []
    for sp in pl.spans:
        it = items[sp.item_id]
        parts.append(RenderItem(sp.item_id, it.kind, it.text[sp.start:sp.end],
                                it.label if sp.start == 0 else None))
    tcfg = tier_config(cfg, size)
    r = Renderer(tcfg)
    layouts = r.layout(parts)
    page = r.draw(layouts[0])
    return TierPage(Page(page.pixels, pl.text, pl.spans, cfg.font_size, meta=dict(page.meta)),
                    method, overflow=len(layouts) > 1)


__all__ = ["METHODS", "PIXEL_METHODS", "TierPage", "check_method", "make_tier_page",
           "resample_pixels"]
