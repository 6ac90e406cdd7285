"""RULER's scores, per sample and over a run.

RULER (NVIDIA/RULER, ``scripts/eval/synthetic/constants.py``) scores a
prediction against its references, case-insensitively, by substring:

- ``string_match_all``: the share of references found in the prediction
  (multi-value / multi-query needles: every value counts);
- ``string_match_part``: 1 if any reference is found (QA-style tasks).

RULER reports the mean × 100 over samples; the per-sample functions here
return a share in [0, 1] and :func:`mean_score` gives the run's mean × 100.
Whitespace in the prediction is collapsed to single spaces first: a page
read back by OCR breaks lines where the renderer wrapped them, and a line
break is not a different answer. References never contain whitespace runs.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

from optical_memory.decode.metrics import normalize_whitespace
from optical_memory.errors import InputError


def _refs(references: Sequence[str] | str) -> list[str]:
    refs = [references] if isinstance(references, str) else list(references)
    if not refs or any(not isinstance(r, str) or not r.strip() for r in refs):
        raise InputError(f"references must be non-empty strings (got {references!r})")
    return [normalize_whitespace(r).casefold() for r in refs]


def found(prediction: str, references: Sequence[str] | str) -> list[bool]:
    """For each reference: does it occur in ``prediction`` (case-insensitive)?"""
    if not isinstance(prediction, str):
        raise InputError(f"prediction must be a string (got {type(prediction).__name__})")
    pred = normalize_whitespace(prediction).casefold()
    return [r in pred for r in _refs(references)]


def string_match_all(prediction: str, references: Sequence[str] | str) -> float:
    """Share of ``references`` found in ``prediction``, in [0, 1]."""
    hits = found(prediction, references)
    return sum(hits) / len(hits)


def string_match_part(prediction: str, references: Sequence[str] | str) -> float:
    """1.0 if any of ``references`` is found in ``prediction``, else 0.0."""
    return 1.0 if any(found(prediction, references)) else 0.0


def mean_score(scores: Iterable[float]) -> float:
    """RULER's aggregate: the mean per-sample score × 100 (0.0 for no samples)."""
    values = list(scores)
    return 100.0 * sum(values) / len(values) if values else 0.0


METRICS = {"string_match_all": string_match_all, "string_match_part": string_match_part}

__all__ = ["METRICS", "found", "mean_score", "string_match_all", "string_match_part"]
