"""Render text, chat turns and documents onto page images.

    >>> from optical_memory.render import Renderer, RenderConfig, Turn
    >>> r = Renderer(RenderConfig(width=256, height=256))
    >>> pages = r.render_turns([Turn("t1", "user", "hi"), Turn("t2", "assistant", "hello")])
    >>> pages[0].text
    '[user] hi\\n[assistant] hello'

One column, black on white, grayscale uint8, tight margins, bundled DejaVu
faces with per-character system fallback. Every :class:`~optical_memory.types.Page`
records the source spans it holds; concatenating the span slices of all pages
reproduces each item's text exactly. The whitespace policy is documented in
:mod:`optical_memory.render.layout`, the markdown policy in
:mod:`optical_memory.render.markdown`.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..errors import ConfigError, EmptyInputError, InputError
from ..types import Page
from .config import NEWLINE_MARKER, RenderConfig, RenderItem, Turn
from .fonts import FontSet, bundled_font_path, get_fontset
from .layout import PageLayout, layout_items

log = logging.getLogger(__name__)

__all__ = [
    "NEWLINE_MARKER",
    "PageLayout",
    "RenderConfig",
    "RenderItem",
    "Renderer",
    "Turn",
    "bundled_font_path",
    "render_document",
    "render_text",
    "render_turns",
]


def _as_items(items: str | Iterable[RenderItem | Turn]) -> list[RenderItem]:
    if isinstance(items, str):
        items = [RenderItem("text", "text", items)]
    out: list[RenderItem] = []
    for it in items:
        if isinstance(it, Turn):
            it = RenderItem.from_turn(it)
        elif not isinstance(it, RenderItem):
            raise InputError(f"expected RenderItem or Turn (got {type(it).__name__})")
        out.append(it)
    if not out:
        raise EmptyInputError("nothing to render: no items")
    if all(not it.text.strip() for it in out):
        lengths = [len(it.text) for it in out]
        raise EmptyInputError(
            f"nothing to render: {len(out)} item(s), all empty or whitespace only "
            f"(lengths {lengths[:8]}{'...' if len(lengths) > 8 else ''})"
        )
    seen: set[str] = set()
    for it in out:
        if it.item_id in seen:
            raise InputError(f"duplicate item_id {it.item_id!r}: spans could not tell items apart")
        seen.add(it.item_id)
    return out


class Renderer:
    """Lays out and draws pages for one :class:`RenderConfig`.

    Font lookups and glyph advances are cached and shared between renderers
    of the same font size/faces, so creating a renderer is cheap.
    """

    def __init__(self, config: RenderConfig | None = None) -> None:
        self.config = config or RenderConfig()
        self._fonts: FontSet | None = None
        for path in (self.config.font_path, self.config.mono_font_path):
            if path is not None and not Path(path).is_file():  # fail here, not at first use
                raise ConfigError(f"font file not found: {str(path)!r}")

    @property
    def fonts(self) -> FontSet:
        """The page style's fonts (loaded on first use: a renderer that only
        exists, as in a memory that only searches, never starts skia)."""
        if self._fonts is None:
            c = self.config
            self._fonts = get_fontset(
                c.font_size, c.font_path, c.mono_font_path, system_fallback=c.system_fallback,
                fallback_lang=c.fallback_lang, hinting=c.hinting,
            )
        return self._fonts

    # -- layout only ------------------------------------------------------------
    def layout(self, items: str | Iterable[RenderItem | Turn]) -> list[PageLayout]:
        """Line-break ``items`` into pages without drawing (cheap).

        Each :class:`PageLayout` has ``text``, ``spans``, ``chars`` (source
        characters it holds) and ``lines``; use it to count what fits a page.
        """
        return layout_items(_as_items(items), self.config, self.fonts)

    def draw(self, page: PageLayout) -> Page:
        """Rasterise one laid-out page."""
        from .draw import draw_page

        return draw_page(page, self.config, self.fonts)

    # -- render -----------------------------------------------------------------
    def render_items(self, items: Iterable[RenderItem | Turn]) -> list[Page]:
        """Pack mixed items continuously; an item may continue onto the next page."""
        pages = [self.draw(p) for p in self.layout(items)]
        missing = sum(sum(p.missing_glyphs.values()) for p in pages)
        if missing:
            chars = sorted({ch for p in pages for ch in p.missing_glyphs})
            log.warning(
                "%d character(s) had no glyph in any font, drawn as boxes: %s",
                missing, ", ".join(f"U+{ord(c):04X}" for c in chars[:10]),
            )
        unsupported = [p for p in pages if p.meta.get("unsupported_scripts")]
        if unsupported:
            names = sorted({s for p in unsupported for s in p.meta["unsupported_scripts"]})
            log.warning(
                "%d page(s) hold %s text, which is written right to left or needs glyph "
                "shaping; the renderer draws it unshaped, left to right (recorded in the "
                "page's meta['unsupported_scripts']): it reads back poorly, if at all",
                len(unsupported), ", ".join(names),
            )
        return pages

    def render_text(self, text: str, item_id: str = "text") -> list[Page]:
        """Render plain text (newlines per ``newline_mode``)."""
        return self.render_items([RenderItem(item_id, "text", text)])

    def render_turns(self, turns: Sequence[Turn]) -> list[Page]:
        """Render chat turns, each as ``[role·name time] content`` on a new line."""
        return self.render_items([RenderItem.from_turn(t) for t in turns])

    def render_document(self, markdown: str, item_id: str = "document") -> list[Page]:
        """Render a markdown document (source kept verbatim, styled per line)."""
        return self.render_items([RenderItem(item_id, "document", markdown)])


def render_text(text: str, config: RenderConfig | None = None) -> list[Page]:
    """Render plain text with ``config`` (default: 1024² pages, 10 px)."""
    return Renderer(config).render_text(text)


def render_turns(turns: Sequence[Turn], config: RenderConfig | None = None) -> list[Page]:
    """Render chat turns with ``config``."""
    return Renderer(config).render_turns(turns)


def render_document(markdown: str, config: RenderConfig | None = None,
                    item_id: str = "document") -> list[Page]:
    """Render a markdown document with ``config``."""
    return Renderer(config).render_document(markdown, item_id)
