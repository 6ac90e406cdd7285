"""Where passages are cut: what one page shows of one item, in windows of
whole sentences.

A page holds up to ~16,800 Latin or ~7,700 CJK characters. Ranked whole,
such a passage wins any query whose words it holds somewhere on the page
by chance, and as ``Hit.text`` it is far more than the fact. So a page's
span (and an item on no page) is cut into windows of whole sentences of at
most :data:`MAX_PASSAGE_TOKENS` index tokens (about 100 words, or 128 CJK
characters) and :data:`MAX_PASSAGE_CHARS` characters, like in size to a chat
turn; consecutive windows share their boundary sentence when it is short (at
most :data:`SENTENCE_OVERLAP` characters), and a sentence too long for a
window is cut at token boundaries with an overlap. So a fact of one sentence
is always whole in some window (and in ``Hit.text``).

Where a page cuts a sentence, the page's last window runs on to the end of
that sentence (:func:`sentence_end`), so a fact split by a page break is
whole in the passage of the page where it starts.
"""
from __future__ import annotations

import itertools
import re

from optical_memory.store.terms import token_spans

#: Most index tokens in one passage (a word counts one, a CJK character one).
MAX_PASSAGE_TOKENS = 128
#: Most characters in one passage.
MAX_PASSAGE_CHARS = 4096
#: A sentence up to this long at a window's end starts the next window too;
#: a page's passage runs at most this far past the page to end its sentence.
SENTENCE_OVERLAP = 256
#: Tokens consecutive windows of one overlong sentence share.
TOKEN_OVERLAP = 32

_SENTENCE_END = re.compile(r"[.!?](?=\s|$)|[。！？]|\n")


def sentence_end(text: str, end: int) -> int:
    """Where the passage of a page whose span ends at ``end`` stops: at
    ``end`` if the page ends a sentence (or the text), else just after the
    end of the sentence the page cuts, at most :data:`SENTENCE_OVERLAP`
    characters further."""
    if end >= len(text) or end == 0:
        return min(end, len(text))
    before = text[max(0, end - 8):end].rstrip(" \t")
    if not before or before[-1] in ".!?。！？\n":
        return end
    found = _SENTENCE_END.search(text, end, end + SENTENCE_OVERLAP)
    return found.end() if found else min(len(text), end + SENTENCE_OVERLAP)


def _sentences(text: str, start: int, end: int) -> list[tuple[int, int]]:
    cuts = [start, *(m.end() for m in _SENTENCE_END.finditer(text, start, end)), end]
    return [(a, b) for a, b in itertools.pairwise(cuts) if b > a]


def _split_long(text: str, start: int, end: int) -> list[tuple[int, int, int]]:
    """An overlong sentence as pieces ``(start, end, tokens)`` of at most
    :data:`MAX_PASSAGE_TOKENS` tokens and :data:`MAX_PASSAGE_CHARS`
    characters, overlapping by :data:`TOKEN_OVERLAP` tokens."""
    toks = token_spans(text, start, end)
    out: list[tuple[int, int, int]] = []
    i = 0
    while i < len(toks):
        j = i + 1
        while (j < len(toks) and j - i < MAX_PASSAGE_TOKENS
               and toks[j][1] - toks[i][0] <= MAX_PASSAGE_CHARS):
            j += 1
        lo = start if i == 0 else toks[i][0]
        hi = end if j == len(toks) else toks[j - 1][1]
        out += _split_chars(lo, hi, j - i)
        if j == len(toks):
            break
        i = max(i + 1, j - TOKEN_OVERLAP)
    return out or [(start, end, 0)]


def _split_chars(lo: int, hi: int, tokens: int) -> list[tuple[int, int, int]]:
    """A piece of one giant token cut by characters (overlapping)."""
    if hi - lo <= MAX_PASSAGE_CHARS:
        return [(lo, hi, tokens)]
    step = MAX_PASSAGE_CHARS - SENTENCE_OVERLAP
    return [(a, min(hi, a + MAX_PASSAGE_CHARS), 1) for a in range(lo, hi - SENTENCE_OVERLAP, step)]


def windows(start: int, end: int, text: str) -> list[tuple[int, int]]:
    """``text[start:end]`` as passage windows (see the module doc), in order,
    covering it."""
    pieces: list[tuple[int, int, int]] = []
    for a, b in _sentences(text, start, end):
        n = len(token_spans(text, a, b))
        if n > MAX_PASSAGE_TOKENS or b - a > MAX_PASSAGE_CHARS:
            pieces += _split_long(text, a, b)
        else:
            pieces.append((a, b, n))
    if not pieces:
        return [(start, end)]
    out: list[tuple[int, int]] = []
    group = [pieces[0]]
    for piece in pieces[1:]:
        tokens = sum(p[2] for p in group)
        if tokens + piece[2] <= MAX_PASSAGE_TOKENS and piece[1] - group[0][0] <= MAX_PASSAGE_CHARS:
            group.append(piece)
            continue
        out.append((group[0][0], group[-1][1]))
        last = group[-1]
        shared = (len(group) > 1 and last[1] - last[0] <= SENTENCE_OVERLAP
                  and last[2] + piece[2] <= MAX_PASSAGE_TOKENS
                  and piece[1] - last[0] <= MAX_PASSAGE_CHARS)
        group = [last, piece] if shared else [piece]
    out.append((group[0][0], group[-1][1]))
    return out


__all__ = ["MAX_PASSAGE_CHARS", "MAX_PASSAGE_TOKENS", "SENTENCE_OVERLAP", "sentence_end",
           "windows"]
