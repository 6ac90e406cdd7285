"""Where text sits on a stored page: the pixel boxes of a run of its characters.

A page's layout is stored with it (``meta``: font size, line spacing, margin,
hinting) and its text is the visible lines joined by ``"\\n"``, so the box of
any run of ``Page.text`` follows from the same glyph advances the drawing used:
line ``i`` spans ``margin + i * line_height`` to the next line, and a
character's x is the margin plus the advances before it on its line. Labels
(the characters no span covers) are measured in the label style; the rest in
the regular face, so boxes on markdown documents with bold or code runs are
close, not exact.

:func:`span_boxes` gives an item's region on a page, :func:`text_boxes` any
run of ``Page.text`` and :func:`page_offset` maps a character of an item's
text (a search hit's span) to ``Page.text``. Boxes are in master-page pixels;
scale them for a tier's rendition.
"""
from __future__ import annotations

from dataclasses import dataclass

from optical_memory.render.config import NEWLINE_MARKER, RenderConfig
from optical_memory.render.fonts import BOLD, REGULAR, FontSet, get_fontset
from optical_memory.store.records import PageRecord
from optical_memory.types import Span


@dataclass(frozen=True)
class Box:
    """A rectangle on the master page, in pixels: ``[x0, x1) × [y0, y1)``."""

    x0: float
    y0: float
    x1: float
    y1: float

    def scaled(self, sx: float, sy: float) -> Box:
        return Box(self.x0 * sx, self.y0 * sy, self.x1 * sx, self.y1 * sy)


def _fonts(page: PageRecord, config: RenderConfig) -> tuple[FontSet, float, int]:
    meta = page.meta or {}
    size = float(meta.get("font_size", page.font_size))
    spacing = float(meta.get("line_spacing", config.line_spacing))
    margin = int(meta.get("margin", config.margin))
    fonts = get_fontset(size, config.font_path, config.mono_font_path,
                        system_fallback=config.system_fallback,
                        fallback_lang=config.fallback_lang,
                        hinting=str(meta.get("hinting", config.hinting)))
    return fonts, size * spacing, margin


def text_boxes(page: PageRecord, start: int, end: int,
               config: RenderConfig | None = None) -> list[Box]:
    """One box per line the characters ``[start, end)`` of ``page.text``
    cover (none for an empty run or a page stored without text). ``config``
    supplies the fonts (default: the bundled faces)."""
    text = page.text or ""
    start, end = max(0, start), min(len(text), end)
    if start >= end:
        return []
    config = config or RenderConfig()
    fonts, line_h, margin = _fonts(page, config)
    covered = bytearray(len(text))
    for sp in page.spans:
        covered[sp.page_start:sp.page_end] = b"\x01" * (sp.page_end - sp.page_start)
    label = BOLD if config.label_style == "bold" else REGULAR
    boxes: list[Box] = []
    line_start = 0
    for i, line in enumerate(text.split("\n")):
        line_end = line_start + len(line)
        lo, hi = max(start, line_start), min(end, line_end)
        if lo < hi:
            x = float(margin)
            x0 = x1 = x
            for col, ch in enumerate(line[: hi - line_start]):
                if line_start + col == lo:
                    x0 = x
                style = REGULAR if covered[line_start + col] else label
                x += fonts.char_advance(style, ch)
            x1 = x
            y0 = margin + i * line_h
            boxes.append(Box(x0, y0, x1, y0 + line_h))
        if line_end >= end:
            break
        line_start = line_end + 1
    return boxes


def item_span(page: PageRecord, item_id: str) -> Span | None:
    """The span of ``item_id`` on ``page`` (``None`` if the page holds none)."""
    return next((sp for sp in page.spans if sp.item_id == item_id), None)


def span_boxes(page: PageRecord, item_id: str, config: RenderConfig | None = None) -> list[Box]:
    """The boxes of everything ``page`` shows of item ``item_id``."""
    sp = item_span(page, item_id)
    return text_boxes(page, sp.page_start, sp.page_end, config) if sp else []


def _visible(ch: str, marker: bool) -> bool:
    return not (ch.isspace() or (marker and ch == NEWLINE_MARKER)
                or ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0)


def page_offset(page: PageRecord, item_id: str, item_text: str, offset: int) -> int | None:
    """Where character ``offset`` of the item's text is drawn in
    ``page.text`` (``None`` when this page does not show it). Whitespace is
    laid out differently (wrapped, consumed, tabs expanded), so the mapping
    counts visible characters: the n-th visible character of the span is the
    n-th visible character of its page text."""
    sp = item_span(page, item_id)
    text = page.text
    if sp is None or text is None or not sp.start <= offset < sp.end:
        return None
    marker = (page.meta or {}).get("newline_mode") == "marker"
    n = sum(1 for ch in item_text[sp.start:offset] if _visible(ch, marker))
    for pos in range(sp.page_start, sp.page_end):
        if _visible(text[pos], marker):
            if n == 0:
                return pos
            n -= 1
    return sp.page_end if sp.page_end > sp.page_start else None


def hit_boxes(page: PageRecord, item_id: str, item_text: str, span: tuple[int, int],
              config: RenderConfig | None = None) -> list[Box]:
    """The boxes of ``item_text[span[0]:span[1]]`` (a search hit's match) on ``page``."""
    start = page_offset(page, item_id, item_text, span[0])
    last = page_offset(page, item_id, item_text, max(span[0], span[1] - 1))
    if start is None or last is None:
        return []
    return text_boxes(page, start, last + 1, config)


__all__ = ["Box", "hit_boxes", "item_span", "page_offset", "span_boxes", "text_boxes"]
