"""Semantic candidates: passage embeddings kept in step with the store, searched
exactly in numpy and fused with the keyword (BM25) candidates.

:class:`SemanticIndex` embeds every passage (:mod:`~optical_memory.store.passages`,
~100 words) with a :class:`~optical_memory.retrieve.rerank.Ranker`, as
pieces of whole sentences of at most :data:`PIECE_WORDS` words (a fact of one
sentence in a passage of other matter would be drowned in one vector of
the whole), and stores the vectors beside it (:mod:`~optical_memory.store.vectors`; they are deleted
with their passage). The memory refreshes the index after each of its
writes (:meth:`SemanticIndex.after_write`), and every semantic search
refreshes it first, so passages written by another process, or before the
ranker was configured, are embedded on the first search that sees them.

:func:`hybrid_search` ranks the union of the two candidate lists by
reciprocal rank fusion (RRF, constant :data:`RRF_K`): a candidate scores
``1 / (RRF_K + rank)`` in each list where it is among the first
:data:`CANDIDATES`. Its keyword term is weighted by the square of how much
of the query it holds (the idf of its matched terms over the query's total,
``Store.query_weight``): BM25 also matches the common words of a question,
and an unweighted keyword rank would let passages sharing only "what" and
"the" outrank the passage that means the same as the question (on the
tuning questions, plain RRF with constant 60 found 18 of 24 in the top 3,
this 22, as many as the vectors alone; on keyword queries, vectors alone
found 26 of 45 and this all 45). A passage is
as near a query as its nearest piece. A query in a script written without
spaces (Chinese, Japanese, Korean, Thai...) is answered by keywords alone
when the ranker says it does not read them (``spaceless_scripts = False``,
as :class:`~optical_memory.retrieve.rerank.MiniLMRanker`). The hit is on the page of the
passage that gave the candidate more of its score, with that passage's text.
"""
from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from optical_memory.cache import LRUCache
from optical_memory.errors import ConfigError, after_commit
from optical_memory.scope import Scope
from optical_memory.store import SOURCES, SearchHit
from optical_memory.store.query import make_snippet
from optical_memory.store.terms import has_ngram_script, locate, query_terms
from optical_memory.store.vectors import PassageRef, PassageVectorStore

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from optical_memory.retrieve.rerank import Ranker
    from optical_memory.store import Store

#: Passages embedded per call of the ranker (and per write of their vectors).
EMBED_BATCH = 64
#: Candidates taken from each list (keyword, vector) before fusion (at least ``4 * k``).
CANDIDATES = 50
#: The RRF constant: a candidate at rank r in a list scores 1 / (RRF_K + r) (keyword
#: list: times the square of its share of the query's idf). Chosen on the tuning
#: part of ``benchmarks/paraphrase.py`` with ``benchmarks/retrieval.py``'s needles.
RRF_K = 30
#: Bytes of vectors kept by text, so a turn's passages are not embedded again when paged.
CACHE_BYTES = 16 * 1024 * 1024

#: Most words in one embedded piece of a passage.
PIECE_WORDS = 40

Key = tuple[str, str | None, str | None]
_WIDE = re.compile(r"[\u2e80-\ua4cf\uac00-\ud7af\uf900-\ufaff]")
_SENTENCE = re.compile(r"(?<=[.!?。！？])\s+|(?<=[。！？])|\n+")


def pieces(text: str) -> list[str]:
    """``text`` as the pieces it is embedded in: runs of whole sentences of
    at most :data:`PIECE_WORDS` words (two CJK characters count as one; a
    longer sentence is one piece)."""
    out: list[str] = []
    run: list[str] = []
    words = 0
    for sentence in _SENTENCE.split(text):
        n = len(sentence.split()) + len(_WIDE.findall(sentence)) // 2  # CJK: 2 characters a word
        if not sentence.strip():
            continue
        if run and words + n > PIECE_WORDS:
            out.append(" ".join(run))
            run, words = [], 0
        run.append(sentence.strip())
        words += n
    if run:
        out.append(" ".join(run))
    return out or [text]


def unit_vectors(vectors: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """float32 rows scaled to unit length (zero rows stay zero)."""
    import numpy as np

    m = np.asarray(vectors, dtype=np.float32)
    if m.ndim != 2:
        raise ConfigError(f"the ranker returned vectors of shape {m.shape}, not (n, dim)")
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    return np.divide(m, norms, out=np.zeros_like(m), where=norms > 0)


class SemanticIndex:
    """The passage vectors of ``store`` by ``ranker`` (its ``name`` labels them)."""

    def __init__(self, store: Store, ranker: Ranker, *, cache_bytes: int = CACHE_BYTES) -> None:
        if not isinstance(store, PassageVectorStore):
            raise ConfigError(f"{store!r} keeps no passage vectors: semantic search needs the "
                              "SQLite or PostgreSQL store")
        self.store: PassageVectorStore = store
        self.ranker = ranker
        self.model = str(ranker.name)
        self._cache = LRUCache(cache_bytes)

    def __repr__(self) -> str:
        return f"SemanticIndex({self.store!r}, model={self.model!r})"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors of ``texts`` (those embedded before come from the cache)."""
        import numpy as np

        out: list[np.ndarray | None] = [self._cache.get(t) for t in texts]
        todo = [i for i, v in enumerate(out) if v is None]
        if todo:
            fresh = unit_vectors(self.ranker.embed([texts[i] for i in todo]))
            for i, vec in zip(todo, fresh):
                out[i] = vec
                self._cache.put(texts[i], vec, vec.nbytes + len(texts[i]))
        return np.stack([v for v in out if v is not None]) if out else np.zeros((0, 0))

    def refresh(self, scope: Scope, sources: Sequence[str] = SOURCES) -> int:
        """Embed the passages visible under ``scope`` that have no vector of
        this model yet; returns how many were embedded."""
        import numpy as np

        done: set[int] = set()
        while True:
            todo = [r for r in self.store.passages_without_vectors(
                scope, self.model, sources=sources, limit=EMBED_BATCH) if r.pid not in done]
            if not todo:  # (a passage written back refused, e.g. deleted meanwhile, is not retried)
                return len(done)
            parts = [pieces(r.text or "") for r in todo]
            vectors = self.embed([p for ps in parts for p in ps]).astype("<f4")
            cuts = np.cumsum([0, *(len(ps) for ps in parts)])
            self.store.put_passage_vectors(self.model, todo, [
                vectors[a:b].tobytes() for a, b in itertools.pairwise(cuts)])
            done.update(r.pid for r in todo)

    def after_write(self, scope: Scope) -> str | None:
        """:meth:`refresh` after a committed write: a failure is logged and
        returned as a warning (the next search embeds what is missing)."""
        try:
            self.refresh(scope)
        except Exception as exc:  # the write committed: report, never fail it
            return after_commit(f"embedding new passages under {scope}", exc)
        return None

    def nearest(self, query: str, scope: Scope, sources: Sequence[str], n: int,
                metadata: Mapping[str, Any] | None = None) -> list[tuple[PassageRef, float]]:
        """The ``n`` passages nearest ``query`` by cosine (a passage's best
        piece), the best one per (source, item, page), best first (ties by
        passage id); ``metadata``: as :meth:`Store.search`'s filter."""
        import numpy as np

        refs, blobs = self.store.passage_vectors(scope, self.model, sources=sources,
                                                 metadata=metadata)
        q = self.embed([query])[0]
        row = 4 * q.shape[0]
        keep = [i for i, b in enumerate(blobs) if b and len(b) % row == 0]
        if not keep:
            return []
        matrix = np.frombuffer(b"".join(blobs[i] for i in keep), dtype="<f4").reshape(
            -1, q.shape[0])
        starts = np.cumsum([0, *(len(blobs[i]) // row for i in keep)])[:-1]
        sims = np.maximum.reduceat(matrix @ q, starts)  # a passage: its best piece
        out: list[tuple[PassageRef, float]] = []
        seen: set[Key] = set()
        pids = np.array([refs[i].pid for i in keep])
        for j in np.lexsort((pids, -sims)):  # by similarity, then by passage id
            ref = refs[keep[j]]
            if ref.key not in seen:
                seen.add(ref.key)
                out.append((ref, float(sims[j])))
                if len(out) == n:
                    break
        return out


def hybrid_search(store: Store, index: SemanticIndex, query: str, scope: Scope, *, k: int,
                  sources: Sequence[str], metadata: Mapping[str, Any] | None = None
                  ) -> list[SearchHit]:
    """Up to ``k`` hits for ``query``: keyword and vector candidates fused
    (see the module doc), best first; ``score`` is the fused score."""
    terms = query_terms(query)
    if not terms or k == 0 or not sources:
        return []
    if has_ngram_script(query) and not getattr(index.ranker, "spaceless_scripts", True):
        # an English model's vectors of a Chinese question only add noise (measured:
        # docs/measurements.md, "Semantic search")
        return store.search(query, scope, k=k, sources=sources, metadata=metadata)
    index.refresh(scope, sources)
    n = max(CANDIDATES, 4 * k)
    keyword = store.search(query, scope, k=n, sources=sources, metadata=metadata)
    total = index.store.query_weight(query)
    vector = index.nearest(query, scope, sources, n, metadata)
    kw_part: dict[Key, float] = {}
    vec_part: dict[Key, float] = {}
    for rank, h in enumerate(keyword, 1):
        share = min(1.0, h.score / total) if total > 0 else 0.0
        kw_part[(h.source, h.item_id, h.page_id)] = share**2 / (RRF_K + rank)
    for rank, (ref, _) in enumerate(vector, 1):
        vec_part[ref.key] = 1.0 / (RRF_K + rank)
    fused = {key: kw_part.get(key, 0.0) + vec_part.get(key, 0.0)
             for key in (*kw_part, *vec_part)}
    # best first; ties: the larger single part, then keyword order, then vector order
    order = sorted(fused, key=lambda key: (-fused[key], -max(kw_part.get(key, 0.0),
                                                             vec_part.get(key, 0.0))))[:k]
    by_key = {(h.source, h.item_id, h.page_id): h for h in keyword}
    refs = {ref.key: ref for ref, _ in vector}
    # the passage of the list that gave the candidate more of its score
    want = [refs[key].pid for key in order if vec_part.get(key, 0.0) > kw_part.get(key, 0.0)]
    texts = {r.pid: r for r in index.store.get_passages(want, scope, sources=sources)}
    hits = []
    for key in order:
        best = refs.get(key)
        if best is not None and best.pid in texts:
            got = texts[best.pid]
            body = got.text or ""
            found = locate(body, terms)
            hits.append(SearchHit(
                source=got.source, item_id=got.item_id, page_id=got.page_id,
                score=fused[key], snippet=make_snippet(body, found),
                offsets=tuple((a + got.start, b + got.start) for a, b in found),
                passage=(got.start, got.end), text=body))
        elif key in by_key:
            hits.append(replace(by_key[key], score=fused[key]))
    return hits


__all__ = ["CANDIDATES", "EMBED_BATCH", "PIECE_WORDS", "RRF_K", "SemanticIndex",
           "hybrid_search", "pieces", "unit_vectors"]
