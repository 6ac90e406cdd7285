"""Render configuration and the items a renderer lays out."""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import ConfigError, InputError

NEWLINE_MODES = ("break", "marker")
LABEL_STYLES = ("bold", "plain", "none")
#: Glyph outline hinting (FreeType via skia). "normal" snaps stems in both
#: directions and rounds advances to whole pixels; "slight" snaps vertically
#: only and keeps fractional advances (sans 11 px, spacing 1.1, LICENSE prose:
#: tesseract read-back 0.992 vs 0.990 with "normal", ~3% more text per page).
HINTINGS = ("normal", "slight", "none", "full")
ITEM_KINDS = ("text", "turn", "document")

#: Drawn in place of a newline in ``newline_mode="marker"``. "»" rather than
#: "↵": tesseract reads it back far more often (pydoc pages, 12 px, 1024²:
#: strict read-back 0.966 with "»", 0.934 "↵", 0.930 "⏎", 0.938 "¶", 0.953 "§";
#: see optical_memory/fit/). It can also occur in source text (French and
#: German quotes), where a reader cannot tell it from a newline.
NEWLINE_MARKER = "\u00bb"  # »


@dataclass(frozen=True)
class RenderConfig:
    """Page geometry and typography.

    width, height: page size in px (a 1024² page at 10 px holds ~84 lines of
        ~180 Latin characters).
    font_size: px per em. line_spacing: line height = font_size * line_spacing.
    margin: blank border in px on every side (tight: pixels cost tokens).
    newline_mode: "break" = a newline ends the line; "marker" = a newline is
        drawn as ``»`` (``NEWLINE_MARKER``) and text flows on (denser on newline-heavy text).
    font_path / mono_font_path: TTF/OTF of the text / monospace face;
        None = the bundled DejaVu Sans / DejaVu Sans Mono.
    tab_width: tab stops every ``tab_width`` characters (tabs become spaces).
    label_style: chat-turn labels drawn "bold", "plain", or not at all ("none").
    system_fallback: look in system fonts (Noto CJK, emoji) for characters the
        bundled faces lack; False = bundled faces only (fully reproducible).
    fallback_lang: BCP-47 hint for system fallback (picks Noto Sans CJK SC
        over JP for Han characters).
    hinting: glyph hinting, one of ``HINTINGS`` ("normal": whole-pixel
        advances; "slight": vertical snapping only, fractional advances).
    """

    width: int = 1024
    height: int = 1024
    font_size: float = 10.0
    line_spacing: float = 1.2
    margin: int = 4
    newline_mode: str = "break"
    font_path: str | None = None
    mono_font_path: str | None = None
    tab_width: int = 4
    label_style: str = "bold"
    system_fallback: bool = True
    fallback_lang: str = "zh-CN"
    hinting: str = "normal"

    def __post_init__(self) -> None:
        if not (isinstance(self.width, int) and isinstance(self.height, int)) \
                or self.width < 1 or self.height < 1:
            raise ConfigError(
                "width and height must be positive integers "
                f"(got {self.width!r} and {self.height!r})"
            )
        if not (isinstance(self.font_size, (int, float)) and math.isfinite(self.font_size)
                and self.font_size > 0):
            raise ConfigError(f"font_size must be a positive number (got {self.font_size!r})")
        if not (isinstance(self.line_spacing, (int, float)) and 1.0 <= self.line_spacing <= 4.0):
            raise ConfigError(f"line_spacing must be in [1.0, 4.0] (got {self.line_spacing!r})")
        if not isinstance(self.margin, int) or self.margin < 0:
            raise ConfigError(f"margin must be a non-negative integer (got {self.margin!r})")
        if self.newline_mode not in NEWLINE_MODES:
            raise ConfigError(
                f"newline_mode must be one of {NEWLINE_MODES} (got {self.newline_mode!r})"
            )
        if self.hinting not in HINTINGS:
            raise ConfigError(f"hinting must be one of {HINTINGS} (got {self.hinting!r})")
        if self.label_style not in LABEL_STYLES:
            raise ConfigError(
                f"label_style must be one of {LABEL_STYLES} (got {self.label_style!r})"
            )
        if not isinstance(self.tab_width, int) or not 1 <= self.tab_width <= 16:
            raise ConfigError(f"tab_width must be an integer in [1, 16] (got {self.tab_width!r})")
        if self.lines_per_page < 1:
            raise ConfigError(
                f"page too small for one line: height {self.height} - 2*margin {self.margin} "
                f"< line height {self.line_height:g} (font_size {self.font_size:g} * "
                f"line_spacing {self.line_spacing:g})"
            )
        if self.line_width < 2 * self.font_size:
            raise ConfigError(
                f"page too narrow: width {self.width} - 2*margin {self.margin} = "
                f"{self.line_width} px < 2 * font_size {self.font_size:g}"
            )

    @property
    def line_height(self) -> float:
        return self.font_size * self.line_spacing

    @property
    def lines_per_page(self) -> int:
        return int((self.height - 2 * self.margin) // self.line_height)

    @property
    def line_width(self) -> int:
        return self.width - 2 * self.margin


@dataclass(frozen=True)
class Turn:
    """One chat turn. Drawn as a compact label, e.g. ``[user·alice 12:03]``, then content."""

    id: str
    role: str
    content: str
    name: str | None = None
    time: str | None = None

    @property
    def label(self) -> str:
        head = self.role if not self.name else f"{self.role}\u00b7{self.name}"
        return f"[{head} {self.time}]" if self.time else f"[{head}]"


@dataclass(frozen=True)
class RenderItem:
    """One source item laid onto pages.

    item_id: the id spans refer to. kind: "text" (plain), "turn" (a chat turn,
    drawn after its label), or "document" (light markdown, see
    :mod:`optical_memory.render.markdown`). label: drawn before the text
    (not part of it); None = no label.
    """

    item_id: str
    kind: str
    text: str
    label: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ITEM_KINDS:
            raise InputError(f"item kind must be one of {ITEM_KINDS} (got {self.kind!r})")
        if not isinstance(self.text, str):
            raise InputError(
                f"item {self.item_id!r}: text must be str (got {type(self.text).__name__})"
            )

    @classmethod
    def from_turn(cls, turn: Turn) -> RenderItem:
        return cls(turn.id, "turn", turn.content, turn.label)
