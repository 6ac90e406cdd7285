"""Which writing systems a text uses, by Unicode ranges (pure, no I/O).

    >>> detect_scripts("Привет, world")
    ('cyrillic', 'latin')
    >>> detect_scripts("東京タワーは高い")
    ('han', 'hiragana', 'katakana')

    >>> script_shares("Привет, world")
    {'cyrillic': 0.5455, 'latin': 0.4545}

The renderer records the script shares of every page it lays out
(``Page.meta["scripts"]``, stored with the page), so the memory reads a page
back with the decoder languages its text needs
(:mod:`optical_memory.decode.languages`), even when it keeps no text.

Only letters (and syllables / ideographs) count: digits, punctuation,
symbols and whitespace belong to every script. Han ideographs are reported
as ``"hant"`` (ISO 15924 Hant) instead of ``"han"`` when characters found
only in traditional writing outnumber those found only in simplified
writing (a small table of frequent pairs; :func:`han_variant`).

Scripts in :data:`NEEDS_SHAPING` are written right to left or need glyph
shaping (joining forms, reordered vowel signs, stacked marks); the renderer
draws characters one by one, left to right, so text in them is drawn wrong.
The renderer records them in ``Page.meta["unsupported_scripts"]`` and logs a
warning (see :func:`unsupported_scripts`).
"""
from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Mapping

#: (first, last, script) code point ranges, sorted, not overlapping.
_RANGES: tuple[tuple[int, int, str], ...] = (
    (0x0041, 0x005A, "latin"), (0x0061, 0x007A, "latin"), (0x00AA, 0x00AA, "latin"),
    (0x00BA, 0x00BA, "latin"), (0x00C0, 0x00D6, "latin"), (0x00D8, 0x00F6, "latin"),
    (0x00F8, 0x024F, "latin"), (0x0250, 0x02AF, "latin"),
    (0x0370, 0x03FF, "greek"),
    (0x0400, 0x052F, "cyrillic"),
    (0x0530, 0x058F, "armenian"),
    (0x0590, 0x05FF, "hebrew"),
    (0x0600, 0x06FF, "arabic"),
    (0x0700, 0x074F, "syriac"),
    (0x0750, 0x077F, "arabic"),
    (0x0780, 0x07BF, "thaana"),
    (0x07C0, 0x07FF, "nko"),
    (0x0860, 0x086F, "syriac"),
    (0x0870, 0x08FF, "arabic"),
    (0x0900, 0x097F, "devanagari"),
    (0x0980, 0x09FF, "bengali"),
    (0x0A00, 0x0A7F, "gurmukhi"),
    (0x0A80, 0x0AFF, "gujarati"),
    (0x0B00, 0x0B7F, "oriya"),
    (0x0B80, 0x0BFF, "tamil"),
    (0x0C00, 0x0C7F, "telugu"),
    (0x0C80, 0x0CFF, "kannada"),
    (0x0D00, 0x0D7F, "malayalam"),
    (0x0D80, 0x0DFF, "sinhala"),
    (0x0E00, 0x0E7F, "thai"),
    (0x0E80, 0x0EFF, "lao"),
    (0x0F00, 0x0FFF, "tibetan"),
    (0x1000, 0x109F, "myanmar"),
    (0x10A0, 0x10FF, "georgian"),
    (0x1100, 0x11FF, "hangul"),
    (0x1200, 0x139F, "ethiopic"),
    (0x1780, 0x17FF, "khmer"),
    (0x1800, 0x18AF, "mongolian"),
    (0x19E0, 0x19FF, "khmer"),
    (0x1C80, 0x1C8F, "cyrillic"),
    (0x1C90, 0x1CBF, "georgian"),
    (0x1D00, 0x1DBF, "latin"),
    (0x1E00, 0x1EFF, "latin"),
    (0x1F00, 0x1FFF, "greek"),
    (0x2C60, 0x2C7F, "latin"),
    (0x2D00, 0x2D2F, "georgian"),
    (0x2DE0, 0x2DFF, "cyrillic"),
    (0x2E80, 0x2FDF, "han"),  # radicals
    (0x3005, 0x3005, "han"), (0x3007, 0x3007, "han"), (0x3021, 0x3029, "han"),
    (0x3038, 0x303B, "han"),
    (0x3041, 0x309F, "hiragana"),
    (0x30A1, 0x30FA, "katakana"), (0x30FD, 0x30FF, "katakana"),  # not ・ー (shared)
    (0x3105, 0x312F, "bopomofo"),
    (0x3131, 0x318E, "hangul"),
    (0x31A0, 0x31BF, "bopomofo"),
    (0x31F0, 0x31FF, "katakana"),
    (0x3400, 0x4DBF, "han"),
    (0x4E00, 0x9FFF, "han"),
    (0xA640, 0xA69F, "cyrillic"),
    (0xA720, 0xA7FF, "latin"),
    (0xA8E0, 0xA8FF, "devanagari"),
    (0xA960, 0xA97F, "hangul"),
    (0xAB30, 0xAB6F, "latin"),
    (0xAC00, 0xD7AF, "hangul"),
    (0xD7B0, 0xD7FF, "hangul"),
    (0xF900, 0xFAFF, "han"),
    (0xFB00, 0xFB06, "latin"),
    (0xFB1D, 0xFB4F, "hebrew"),
    (0xFB50, 0xFDFF, "arabic"),
    (0xFE70, 0xFEFF, "arabic"),
    (0xFF21, 0xFF3A, "latin"), (0xFF41, 0xFF5A, "latin"),
    (0xFF66, 0xFF6F, "katakana"), (0xFF71, 0xFF9D, "katakana"),
    (0xFFA0, 0xFFDC, "hangul"),
    (0x1E900, 0x1E95F, "adlam"),
    (0x20000, 0x3FFFF, "han"),
)
_STARTS = [r[0] for r in _RANGES]

#: Every script name :func:`script_of` returns (plus "hant", see :func:`detect_scripts`).
SCRIPTS: tuple[str, ...] = (*dict.fromkeys(r[2] for r in _RANGES), "hant")

#: Scripts the renderer cannot draw correctly: written right to left
#: (hebrew, arabic, syriac, thaana, nko, adlam) or needing shaping (joining
#: forms, vowel signs placed before their consonant, stacked marks). The
#: renderer draws code points one by one, left to right (skia-python's
#: builds have no ``skia.Shaper``/HarfBuzz).
NEEDS_SHAPING: frozenset[str] = frozenset({
    "arabic", "hebrew", "syriac", "thaana", "nko", "adlam", "devanagari", "bengali",
    "gurmukhi", "gujarati", "oriya", "tamil", "telugu", "kannada", "malayalam", "sinhala",
    "thai", "lao", "tibetan", "myanmar", "khmer", "mongolian",
})

#: A script is listed for a text when it holds at least this share of the
#: text's script characters (so one stray foreign word does not switch the
#: decoder's languages); the most frequent script is always listed.
MIN_SHARE = 0.02

# Frequent characters written differently in simplified and traditional
# Chinese (each pair: simplified, traditional). Japanese kanji mostly use the
# traditional forms of these, which does not matter: kana decide Japanese.
_HAN_PAIRS = (
    "们們这這个個来來为為说說国國学學会會对對时時长長开開发發过過还還经經门門问問"
    "间間关關体體点點动動进進种種当當现現样樣么麼见見实實从從头頭机機车車东東"
    "书書张張话話电電们們边邊让讓认認气氣员員与與业業几幾应應办辦条條给給难難传傳"
    "写寫买買卖賣读讀记記钱錢网網语語请請谁誰热熱爱愛节節总總园園场場区區华華岁歲"
)
_SIMPLIFIED = frozenset(_HAN_PAIRS[0::2])
_TRADITIONAL = frozenset(_HAN_PAIRS[1::2])


def script_of(ch: str) -> str | None:
    """The script of one character, or ``None`` for characters shared by all
    scripts (digits, punctuation, symbols, spaces, marks) and unknown ones."""
    cp = ord(ch)
    i = bisect.bisect_right(_STARTS, cp) - 1
    if i >= 0:
        first, last, script = _RANGES[i]
        if first <= cp <= last:
            return script
    return None


def script_counts(text: str) -> dict[str, int]:
    """Characters of ``text`` per script, most frequent first (ties by name)."""
    if text.isascii():  # the common case, without a per-character table walk
        letters = sum(1 for c in text if c.isalpha())
        return {"latin": letters} if letters else {}
    counts: Counter[str] = Counter()
    for ch, n in Counter(text).items():
        script = script_of(ch)
        if script is not None:
            counts[script] += n
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def han_variant(text: str) -> str:
    """"hant" when traditional-only forms outnumber simplified-only ones in
    ``text``, else "han" (simplified or undecided)."""
    simplified = traditional = 0
    for ch, n in Counter(text).items():
        if ch in _SIMPLIFIED:
            simplified += n
        elif ch in _TRADITIONAL:
            traditional += n
    return "hant" if traditional > simplified else "han"


def script_shares(text: str) -> dict[str, float]:
    """Each script's share of the script characters of ``text`` (rounded to
    4 decimals, every script present, most frequent first; ``{}`` without
    letters). Han is ``"hant"`` when the text is written in traditional
    characters (:func:`han_variant`) and holds no kana (Japanese kanji are "han")."""
    counts = script_counts(text)
    total = sum(counts.values())
    if not total:
        return {}
    if "han" in counts and "hiragana" not in counts and "katakana" not in counts \
            and han_variant(text) == "hant":
        counts = {("hant" if s == "han" else s): n for s, n in counts.items()}
    return {s: round(n / total, 4) for s, n in counts.items()}


def accented_share(text: str) -> float:
    """Share of the Latin letters of ``text`` outside ASCII (``é``, ``ł``,
    ``ı``, ...; 4 decimals, 0.0 without Latin letters): English ~0, German
    ~0.013, French ~0.035, Czech ~0.14 (the systems' gettext catalogues)."""
    if text.isascii():
        return 0.0
    latin = accented = 0
    for ch, n in Counter(text).items():
        if script_of(ch) == "latin" and ch.isalpha():
            latin += n
            if not ch.isascii():
                accented += n
    return round(accented / latin, 4) if latin else 0.0


def detect_scripts(text: str, min_share: float = MIN_SHARE) -> tuple[str, ...]:
    """The scripts ``text`` is written in, most frequent first: those holding
    at least ``min_share`` of its script characters (the most frequent one
    always); ``()`` for a text with no letters. See :func:`script_shares`."""
    return shares_above(script_shares(text), min_share)


def shares_above(shares: Mapping[str, float], min_share: float = MIN_SHARE) -> tuple[str, ...]:
    """The scripts of ``shares`` (as :func:`script_shares` returns, in any
    order) holding at least ``min_share``, most frequent first; the most
    frequent one is always listed."""
    ranked = sorted(shares.items(), key=lambda kv: (-kv[1], kv[0]))
    return tuple(s for i, (s, v) in enumerate(ranked) if i == 0 or v >= min_share)


def unsupported_scripts(shares: Mapping[str, float] | str) -> tuple[str, ...]:
    """The scripts (any character of them) the renderer cannot draw correctly
    (:data:`NEEDS_SHAPING`), most frequent first; ``shares`` as
    :func:`script_shares` returns, or a text."""
    if isinstance(shares, str):
        shares = script_shares(shares)
    return tuple(s for s in shares_above(shares, 0.0) if s in NEEDS_SHAPING)


__all__ = ["MIN_SHARE", "NEEDS_SHAPING", "SCRIPTS", "accented_share", "detect_scripts",
           "han_variant",
           "script_counts", "script_of", "script_shares", "shares_above",
           "unsupported_scripts"]
