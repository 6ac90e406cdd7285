"""Backend-neutral keyword-search helpers: turning a user query into plain
word phrases (:func:`query_phrases`, so no FTS syntax can be injected), the
SQLite FTS5 expression for them, and locating the words in a hit's text for
its offsets and snippet (:func:`match_offsets`, :func:`make_snippet`).
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from optical_memory.errors import InputError

# Search limits: a query is cut to this many phrases, each to this many words,
# so a pasted novel cannot become a pathological FTS query.
MAX_QUERY_PHRASES = 32
MAX_PHRASE_WORDS = 16
MAX_OFFSETS = 64
SNIPPET_CONTEXT = 60

_WORD = re.compile(r"[^\W_]+")


def query_phrases(query: str) -> tuple[tuple[str, ...], ...]:
    """Split a user query into phrases of plain words.

    Whitespace separates phrases; inside one, every run of letters/digits is
    a word and everything else (quotes, ``*``, ``:``, ``^``, ``-``, brackets,
    NUL, emoji) is dropped. Only letters, digits and spaces ever reach the
    backend's query parser, so no FTS syntax can be injected; ``OR``,
    ``NEAR`` etc. become ordinary words. Returns () when nothing is left.
    """
    if not isinstance(query, str):
        raise InputError(f"query must be a string (got {type(query).__name__})")
    query = unicodedata.normalize("NFC", query)
    phrases: list[tuple[str, ...]] = []
    for chunk in query.split():
        words = tuple(_WORD.findall(chunk))[:MAX_PHRASE_WORDS]
        if words and words not in phrases:
            phrases.append(words)
        if len(phrases) == MAX_QUERY_PHRASES:
            break
    return tuple(phrases)


def fts5_match_expression(phrases: Sequence[Sequence[str]]) -> str:
    """SQLite FTS5 MATCH string: each phrase an FTS5 string literal
    (``"a b"``, quotes doubled), phrases joined by OR (ranked by bm25, so
    rows matching more and rarer words come first)."""
    return " OR ".join('"' + " ".join(p).replace('"', '""') + '"' for p in phrases)


def match_offsets(text: str, phrases: Sequence[Sequence[str]]) -> tuple[tuple[int, int], ...]:
    """Character ranges of the query words in ``text`` (case-insensitive,
    whole words), sorted, at most :data:`MAX_OFFSETS`."""
    words = sorted({w.casefold() for p in phrases for w in p}, key=len, reverse=True)
    if not words or not text:
        return ()
    pattern = re.compile(
        r"(?<![^\W_])(?:" + "|".join(map(re.escape, words)) + r")(?![^\W_])", re.IGNORECASE
    )
    return tuple(m.span() for m in pattern.finditer(text))[:MAX_OFFSETS]


def make_snippet(text: str, offsets: Sequence[tuple[int, int]]) -> str:
    """About ``2 * SNIPPET_CONTEXT`` characters around the first match."""
    if not text:
        return ""
    start, end = offsets[0] if offsets else (0, 0)
    lo = max(0, start - SNIPPET_CONTEXT)
    hi = min(len(text), end + SNIPPET_CONTEXT)
    core = " ".join(text[lo:hi].split())
    return ("…" if lo > 0 else "") + core + ("…" if hi < len(text) else "")
