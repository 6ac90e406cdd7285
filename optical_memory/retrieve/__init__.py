"""Retrieval: keyword search (BM25), with a ranker also semantic search.

:func:`~optical_memory.retrieve.search.search` finds hits and places each on
its page; with a :class:`Ranker` (all-MiniLM-L6-v2 from the ``semantic``
extra, or any object with ``name`` and ``embed(texts)``) passage embeddings
are stored and their nearest passages fused with the keyword candidates
(:mod:`~optical_memory.retrieve.semantic`).
"""
from __future__ import annotations

from optical_memory.retrieve.rerank import MiniLMRanker, Ranker, cosine, rerank
from optical_memory.retrieve.search import Hit, hit_page, search
from optical_memory.retrieve.semantic import SemanticIndex

__all__ = ["Hit", "MiniLMRanker", "Ranker", "SemanticIndex", "cosine", "hit_page", "rerank",
           "search"]
