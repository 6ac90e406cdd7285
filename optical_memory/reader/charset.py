"""What the native reader can read: its character set and CTC label coding.

The reader outputs one of these classes per frame:

- 0: the CTC blank;
- one class per character of :data:`CHARSET`: printable ASCII, Latin-1
  (without the no-break and soft hyphen), Latin Extended-A, modern Greek,
  basic Cyrillic (U+0400–U+045F), common punctuation and symbols (dashes,
  curly quotes, bullets, arrows, comparison signs, ...), and with them the
  newline marker "»" the memory draws in place of a newline;
- runs of 2–8 spaces as one class each (indentation is drawn, and a CTC
  reader cannot emit the same class twice in a row without a blank between:
  eight spaces are ~26 px, too few frames for 15 alternating outputs);
- :data:`UNKNOWN`: "a glyph that is none of the above" (CJK, Hebrew, emoji,
  a missing-glyph box, ...). It is read back as U+FFFD and counted in
  ``DecodeResult.meta["unknown"]``; the reader never guesses a character it
  was not trained on. CJK pages belong with tesseract (``chi_sim``) or rapidocr.

Some characters of the set are drawn identically by DejaVu (Latin "A", Greek
"Α", Cyrillic "А"; "µ" and "μ"): the reader picks one from the neighbouring
letters, which is right inside a word of one script and can be wrong alone.
"""
from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence

#: Read back for a glyph outside the character set (counted, never guessed).
UNKNOWN = "\ufffd"
#: Longest run of spaces with a class of its own (longer runs are split).
MAX_SPACE_RUN = 8
BLANK = 0

_SYMBOLS = (
    "–—‘’‚“”„†‡•…‰′″‹›€™←↑→↓↔⇐⇒⇔≤≥≠≈∞✓✗★☆■□▪●○◆◇√∑∫∂∆∏∈∉∩∪⊂⊃∧∨¬⋅№Ω₀₁₂₃₄₅₆₇₈₉⁰⁴⁵⁶⁷⁸⁹ⁿ"
)


def _ranges(*spans: tuple[int, int]) -> list[str]:
    return [chr(c) for lo, hi in spans for c in range(lo, hi + 1)]


def _build_charset() -> str:
    chars = _ranges((0x20, 0x7E))                      # printable ASCII (space first)
    chars += [c for c in _ranges((0xA1, 0xFF)) if c != "\u00ad"]  # Latin-1, no soft hyphen
    chars += _ranges((0x100, 0x17F))                   # Latin Extended-A
    chars += [c for c in _ranges((0x386, 0x3CE))       # modern Greek (with tonos)
              if unicodedata.category(c) != "Cn" and c != "\u0387"]
    chars += _ranges((0x400, 0x45F))                   # Cyrillic
    chars += list(_SYMBOLS)
    seen: dict[str, None] = {}
    for c in chars:
        seen.setdefault(c, None)
    return "".join(seen)


#: Every character the reader has a class for ("»", the newline marker, is in Latin-1).
CHARSET: str = _build_charset()

#: Characters drawn as a plain space: read back as " ".
_AS_SPACE = {"\u00a0": " ", "\u2007": " ", "\u202f": " "}


class Codec:
    """Text ↔ class ids (1-based: 0 is the CTC blank)."""

    def __init__(self, charset: str = CHARSET, max_space_run: int = MAX_SPACE_RUN) -> None:
        if len(set(charset)) != len(charset) or " " not in charset:
            raise ValueError("charset must hold distinct characters, the space among them")
        self.charset = charset
        self.max_space_run = max_space_run
        self._index = {ch: i + 1 for i, ch in enumerate(charset)}
        n = len(charset)
        # class ids of space runs 2..max_space_run, then UNKNOWN
        self._run = {k: n + k - 1 for k in range(2, max_space_run + 1)}
        self._run[1] = self._index[" "]
        self.unknown_id = n + max_space_run
        self.num_classes = self.unknown_id + 1  # blank included
        self._tokens: list[str] = ["", *charset]
        self._tokens += [" " * k for k in range(2, max_space_run + 1)]
        self._tokens.append(UNKNOWN)

    def known(self, ch: str) -> bool:
        return ch in self._index or ch in _AS_SPACE

    def encode(self, text: str) -> list[int]:
        """Class ids of ``text``; characters outside the set map to the unknown class."""
        out: list[int] = []
        i, n = 0, len(text)
        while i < n:
            ch = _AS_SPACE.get(text[i], text[i])
            if ch == " ":
                j = i
                while j < n and _AS_SPACE.get(text[j], text[j]) == " ":
                    j += 1
                run = j - i
                while run > 0:
                    k = min(run, self.max_space_run)
                    out.append(self._run[k])
                    run -= k
                i = j
                continue
            out.append(self._index.get(ch, self.unknown_id))
            i += 1
        return out

    def decode(self, ids: Iterable[int]) -> str:
        """Text of class ids (already collapsed: no CTC blanks or repeats)."""
        return "".join(map(self._tokens.__getitem__, ids))

    def token(self, class_id: int) -> str:
        return self._tokens[class_id]

    def ctc_collapse(self, best: Sequence[int]) -> list[int]:
        """Best-path CTC: merge repeats, drop blanks."""
        out: list[int] = []
        prev = BLANK
        for c in best:
            if c != prev and c != BLANK:
                out.append(int(c))
            prev = c
        return out


def is_trainable(text: str) -> bool:
    """False for text the reader cannot be taught from: control, format,
    combining or other zero-width / odd-width characters (their pixels do not
    line up one glyph per character)."""
    for ch in text:
        if ch == " ":
            continue
        cat = unicodedata.category(ch)
        if (cat[0] in "CM" or cat in ("Zs", "Zl", "Zp")) and ch not in _AS_SPACE:
            return False
    return True


__all__ = ["BLANK", "CHARSET", "MAX_SPACE_RUN", "UNKNOWN", "Codec", "is_trainable"]
