"""Fonts: the bundled DejaVu faces, per-character fallback, cached advances.

The package ships DejaVu Sans, Sans Bold, Sans Mono and Sans Mono Bold
(``render/fonts/``, Bitstream Vera licence in ``LICENSE-DejaVu.txt``) so a
page renders the same on every machine. A character the style's face lacks is
looked up, in order, in the bundled DejaVu Sans, then (if allowed) in the
system's fonts through ``skia.FontMgr.matchFamilyStyleCharacter`` (Noto CJK,
Noto Color Emoji, ...). A character no font can draw is *missing*: it keeps a
fixed advance and is drawn as a visible box, and pages count it.

Every lookup is cached per :class:`FontSet`: ``resolve(style, ch)`` and
``width(style, token)`` are dictionary hits after the first call.
"""
from __future__ import annotations

import logging
import os
import sys
import tempfile
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:  # skia is imported when a font is first loaded, not with the module
    import skia

log = logging.getLogger(__name__)

# Style indices (a run of text is drawn in one of these).
REGULAR, BOLD, MONO = 0, 1, 2
STYLE_NAMES = ("regular", "bold", "mono")

#: Face index stored for a character no font can draw.
MISSING = -1

#: Advance of a missing-glyph box, as a fraction of the font size.
MISSING_ADVANCE = 0.6

_BUNDLED = {
    "sans": "DejaVuSans.ttf",
    "sans_bold": "DejaVuSans-Bold.ttf",
    "mono": "DejaVuSansMono.ttf",
    "mono_bold": "DejaVuSansMono-Bold.ttf",
}


def bundled_font_path(name: str) -> Path:
    """Path of a bundled font: ``sans``, ``sans_bold``, ``mono``, ``mono_bold``."""
    if name not in _BUNDLED:
        raise ConfigError(f"unknown bundled font {name!r} (known: {', '.join(_BUNDLED)})")
    return Path(str(resources.files("optical_memory.render") / "fonts" / _BUNDLED[name]))


_FILE_MGR: skia.FontMgr | None = None
_SYSTEM_MGR: skia.FontMgr | None = None
_TYPEFACES: dict[tuple[str, int], skia.Typeface] = {}


def _file_mgr() -> skia.FontMgr:
    """A font manager for font files only: skia's custom, empty one, which
    never starts Fontconfig (the same faces and pixels as the system one)."""
    import skia

    global _FILE_MGR
    if _FILE_MGR is None:
        _FILE_MGR = skia.FontMgr.New_Custom_Empty()
    return _FILE_MGR


def _font_mgr() -> skia.FontMgr:
    """The system font manager (Fontconfig on Linux), made only when a
    character needs a system fallback face."""
    import skia

    global _SYSTEM_MGR
    if _SYSTEM_MGR is None:
        _SYSTEM_MGR = _quietly(skia.FontMgr)
    return _SYSTEM_MGR


def _quietly(make: Callable[[], skia.FontMgr]) -> skia.FontMgr:
    """``make()`` with the process's stderr caught: the Fontconfig bundled in
    skia-python is older than many systems' configuration files and warns
    about every element it does not know (``unknown element "reset-dirs"``)
    on stderr. Its lines go to the debug log; anything else is passed on."""
    try:
        saved = os.dup(2)
    except OSError:
        return make()
    try:
        with tempfile.TemporaryFile() as caught:
            sys.stderr.flush()
            os.dup2(caught.fileno(), 2)
            try:
                made = make()
            finally:
                os.dup2(saved, 2)
            caught.seek(0)
            text = caught.read().decode("utf-8", "replace")
    finally:
        os.close(saved)
    other = []
    for line in text.splitlines():
        if line.startswith("Fontconfig"):
            log.debug("%s", line)
        elif line:
            other.append(line)
    if other:
        sys.stderr.write("\n".join(other) + "\n")
    return made


def load_typeface(path: str | Path, index: int = 0) -> skia.Typeface:
    """Load (once per process) the face ``index`` of a TTF/OTF/TTC file."""
    key = (str(path), index)
    tf = _TYPEFACES.get(key)
    if tf is None:
        if not Path(path).is_file():
            raise ConfigError(f"font file not found: {str(path)!r}")
        tf = _file_mgr().makeFromFile(str(path), index)
        if tf is None:
            raise ConfigError(f"font file {str(path)!r} (face {index}) could not be loaded")
        _TYPEFACES[key] = tf
    return tf


_HINTING = {"normal": "kNormal", "slight": "kSlight", "none": "kNone", "full": "kFull"}


def _make_font(tf: skia.Typeface, size: float, hinting: str = "normal") -> skia.Font:
    # Fixed rasterisation settings: anti-aliased, no subpixel positioning
    # (glyphs start on whole pixels: identical pixels on every machine); with
    # "normal" hinting advances are whole pixels too at integer sizes.
    import skia

    font = skia.Font(tf, size)
    font.setEdging(skia.Font.Edging.kAntiAlias)
    font.setHinting(getattr(skia.FontHinting, _HINTING[hinting]))
    font.setSubpixel(False)
    return font


def _undrawable(ch: str) -> bool:
    """Control, private-use and surrogate characters are never drawn (a box).

    (The layout turns control characters into spaces before they get here.)

    Unassigned code points are left to the fonts: the Unicode database of the
    running Python must not change what a page looks like.
    """
    return unicodedata.category(ch) in ("Cc", "Co", "Cs")


@dataclass(frozen=True)
class Glyph:
    """How one character is drawn: face index (or MISSING), glyph id, advance (px)."""

    face: int
    glyph: int
    advance: float


class FontSet:
    """The faces of one page style at one size, with cached lookups.

    faces[0..2] are the regular / bold / mono faces (same order as the style
    constants); faces[3] is the bundled DejaVu Sans used as first fallback;
    system fallback faces are appended as they are found.
    """

    def __init__(
        self,
        size: float,
        font_path: str | Path | None = None,
        mono_font_path: str | Path | None = None,
        *,
        system_fallback: bool = True,
        fallback_lang: str = "zh-CN",
        hinting: str = "normal",
    ) -> None:

        self.size = float(size)
        self.hinting = hinting
        self.system_fallback = system_fallback
        self.fallback_lang = fallback_lang
        regular = load_typeface(font_path or bundled_font_path("sans"))
        # A caller-chosen face has no bundled bold: emulate it (fake bold).
        bold = load_typeface(bundled_font_path("sans_bold")) if font_path is None else regular
        mono = load_typeface(mono_font_path or bundled_font_path("mono"))
        sans = load_typeface(bundled_font_path("sans"))
        self.typefaces: list[skia.Typeface] = [regular, bold, mono, sans]
        self.fonts: list[skia.Font] = [_make_font(tf, self.size, hinting) for tf in self.typefaces]
        if font_path is not None:
            self.fonts[BOLD].setEmbolden(True)
        self._face_of_id: dict[int, int] = {}
        for i, tf in enumerate(self.typefaces):
            self._face_of_id.setdefault(tf.uniqueID(), i)
        self.missing_advance = round(MISSING_ADVANCE * self.size)
        self.glyph_cache: tuple[dict[str, Glyph], ...] = ({}, {}, {})  # per style: char -> Glyph
        self._widths: tuple[dict[str, float], ...] = ({}, {}, {})
        self._system: dict[str, int] = {}  # char -> face index or MISSING
        m = self.fonts[REGULAR].getMetrics()
        self.ascent = -m.fAscent  # positive, px above the baseline
        self.descent = m.fDescent  # positive, px below the baseline

    # -- lookups ----------------------------------------------------------
    def resolve(self, style: int, ch: str) -> Glyph:
        """The face, glyph id and advance used to draw ``ch`` in ``style``."""
        g = self.glyph_cache[style].get(ch)
        if g is None:
            g = self._resolve_uncached(style, ch)
            self.glyph_cache[style][ch] = g
        return g

    def width(self, style: int, token: str) -> float:
        """Advance of ``token`` (sum of its characters' advances; no kerning)."""
        cache = self._widths[style]
        w = cache.get(token)
        if w is None:
            glyphs = self.glyph_cache[style]
            w = 0.0
            for ch in token:
                g = glyphs.get(ch)
                if g is None:
                    g = self.resolve(style, ch)
                w += g.advance
            if len(cache) < 200_000:  # bound memory on adversarial input
                cache[token] = w
        return w

    def char_advance(self, style: int, ch: str) -> float:
        g = self.glyph_cache[style].get(ch)
        return (g or self.resolve(style, ch)).advance

    # -- internals --------------------------------------------------------
    def _glyph_in(self, face: int, ch: str) -> Glyph | None:
        gid = self.typefaces[face].unicharToGlyph(ord(ch))
        if gid == 0:
            return None
        adv = self.fonts[face].getWidths([gid])[0]
        return Glyph(face, gid, float(adv))

    def _resolve_uncached(self, style: int, ch: str) -> Glyph:
        if _undrawable(ch):
            return Glyph(MISSING, 0, float(self.missing_advance))
        for face in (style, 3):
            g = self._glyph_in(face, ch)
            if g is not None:
                return g
        face = self._system_face(ch)
        if face != MISSING:
            g = self._glyph_in(face, ch)
            if g is not None:
                return g
        return Glyph(MISSING, 0, float(self.missing_advance))

    def _system_face(self, ch: str) -> int:
        import skia

        if not self.system_fallback:
            return MISSING
        face = self._system.get(ch)
        if face is not None:
            return face
        tf = _font_mgr().matchFamilyStyleCharacter(
            "", skia.FontStyle(), [self.fallback_lang], ord(ch)
        )
        face = MISSING
        if tf is not None and tf.unicharToGlyph(ord(ch)) != 0:
            face = self._face_of_id.get(tf.uniqueID(), -2)
            if face == -2:
                face = len(self.typefaces)
                self.typefaces.append(tf)
                self.fonts.append(_make_font(tf, self.size, self.hinting))
                self._face_of_id[tf.uniqueID()] = face
                log.debug("fallback face %r for U+%04X", tf.getFamilyName(), ord(ch))
        self._system[ch] = face
        return face


_FONTSETS: dict[tuple, FontSet] = {}


def get_fontset(
    size: float,
    font_path: str | Path | None = None,
    mono_font_path: str | Path | None = None,
    *,
    system_fallback: bool = True,
    fallback_lang: str = "zh-CN",
    hinting: str = "normal",
) -> FontSet:
    """A shared :class:`FontSet` (caches survive across renderers of one size)."""
    key = (float(size), str(font_path), str(mono_font_path), system_fallback, fallback_lang,
           hinting)
    fs = _FONTSETS.get(key)
    if fs is None:
        if len(_FONTSETS) > 32:
            _FONTSETS.clear()
        fs = FontSet(
            size, font_path, mono_font_path,
            system_fallback=system_fallback, fallback_lang=fallback_lang, hinting=hinting,
        )
        _FONTSETS[key] = fs
    return fs
