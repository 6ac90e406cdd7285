"""Read-back scores: how much of a page's text a decoder got back.

``precision`` follows the DeepSeek-OCR paper (Fox benchmark): 1 − edit
distance / max length, computed on whitespace-normalised text so layout
differences (line breaks, double spaces) do not count as errors.
"""
from __future__ import annotations

import re

from rapidfuzz.distance import Levenshtein

_WS = re.compile(r"\s+")


def normalize_whitespace(text: str, marker: str | None = None) -> str:
    """Collapse every run of whitespace (newlines included) to one space; strip.

    ``marker``: a character drawn in place of a newline (the renderer's
    ``NEWLINE_MARKER`` in marker mode). Whitespace next to it is dropped, as
    whitespace next to a real newline collapses into the one space the newline
    becomes: a marker-mode page is then scored like a break-mode page, except
    that the marker itself must still be read.
    """
    text = _WS.sub(" ", text).strip()
    if marker:
        text = text.replace(f" {marker}", marker).replace(f"{marker} ", marker)
    return text


def edit_distance(
    reference: str, hypothesis: str, *, normalize: bool = True, marker: str | None = None
) -> int:
    """Levenshtein distance (insert/delete/substitute, each cost 1), in characters."""
    if normalize:
        reference = normalize_whitespace(reference, marker)
        hypothesis = normalize_whitespace(hypothesis, marker)
    return int(Levenshtein.distance(reference, hypothesis))


def precision(
    reference: str, hypothesis: str, *, normalize: bool = True, marker: str | None = None
) -> float:
    """1 − edit_distance / max(len(reference), len(hypothesis)), in [0, 1].

    Both empty (after normalisation) → 1.0. ``marker``: see :func:`normalize_whitespace`.
    """
    if normalize:
        reference = normalize_whitespace(reference, marker)
        hypothesis = normalize_whitespace(hypothesis, marker)
    longest = max(len(reference), len(hypothesis))
    if longest == 0:
        return 1.0
    return 1.0 - Levenshtein.distance(reference, hypothesis) / longest


def source_precision(source: str, hypothesis: str, marker: str = "\u00bb") -> float:
    """Read-back precision of page(s) against the *source text* they were
    rendered from, by the memory's rule: when the read-back shows the newline
    ``marker`` (a marker-mode page), the source's newlines are the markers the
    page drew and whitespace next to a marker does not count
    (:func:`precision` with ``marker``); else plain :func:`precision`."""
    if marker and marker in hypothesis:
        source = re.sub(r"\r\n|\r|\n", marker, source)
        return precision(source, hypothesis, marker=marker)
    return precision(source, hypothesis)


def cer(reference: str, hypothesis: str, *, normalize: bool = True) -> float:
    """Character error rate: edit_distance / len(reference); may exceed 1.

    Empty reference: 0.0 when the hypothesis is empty too, else 1.0.
    """
    if normalize:
        reference, hypothesis = normalize_whitespace(reference), normalize_whitespace(hypothesis)
    if not reference:
        return 0.0 if not hypothesis else 1.0
    return Levenshtein.distance(reference, hypothesis) / len(reference)
