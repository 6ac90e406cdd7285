"""Value types shared by every stage of the pipeline.

A :class:`Page` is what the renderer produces: one grayscale image plus the
exact text laid onto it and the source spans it holds, so every page maps back
to its text.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - numpy is imported where pixels are touched
    import numpy as np


@dataclass(frozen=True)
class Span:
    """Characters ``[start, end)`` of source item ``item_id`` held by a page.

    ``page_start``/``page_end`` locate the same characters in ``Page.text``.
    """

    item_id: str
    start: int
    end: int
    page_start: int
    page_end: int


@dataclass(frozen=True)
class Page:
    """One rendered page.

    pixels: uint8 array [H, W], grayscale, 255 = white.
    text:   the visible text exactly as laid out (labels included), lines
            joined by "\\n"; the reference a read-back is scored against.
    spans:  the source spans this page holds, in reading order.
    missing_glyphs: character → count of characters no font could draw
            (drawn as a visible box, never silently dropped).
    """

    pixels: np.ndarray
    text: str
    spans: tuple[Span, ...]
    font_size: float
    index: int = 0
    missing_glyphs: dict[str, int] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    def to_pil(self):  # -> PIL.Image.Image
        import numpy as np
        from PIL import Image

        return Image.fromarray(np.ascontiguousarray(self.pixels, dtype=np.uint8))

    def to_png(self) -> bytes:
        """Deterministic PNG bytes (same pixels → same bytes)."""
        return encode_png(self.pixels)


def encode_png(pixels: np.ndarray) -> bytes:
    """Encode a uint8 [H, W] grayscale array as PNG, deterministically."""
    import numpy as np
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8)).save(
        buf, format="PNG", optimize=False, compress_level=6
    )
    return buf.getvalue()
