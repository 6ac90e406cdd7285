"""Retrieval: keyword search (BM25) with an optional semantic re-ranker.

:func:`~optical_memory.retrieve.search.search` finds hits and places each on
its page; :mod:`~optical_memory.retrieve.rerank` re-orders candidates by
meaning (all-MiniLM-L6-v2 from the ``semantic`` extra, or any object with
``embed(texts)``).
"""
from __future__ import annotations

from optical_memory.retrieve.rerank import MiniLMRanker, Ranker, cosine, rerank
from optical_memory.retrieve.search import Hit, hit_page, search

__all__ = ["Hit", "MiniLMRanker", "Ranker", "cosine", "hit_page", "rerank", "search"]
