"""Semantic candidates: passage embeddings kept in step with the store, searched
exactly in numpy and fused with the keyword (BM25) candidates.

:class:`SemanticIndex` embeds every passage (:mod:`~optical_memory.store.passages`,
~100 words) with a :class:`~optical_memory.retrieve.rerank.Ranker`, as
pieces of whole sentences of at most :data:`PIECE_WORDS` words (a fact of one
sentence in a passage of other matter would be drowned in one vector of
the whole; a line break inside a paragraph does not end a sentence, so a
document wrapped at 72 columns is cut by sentences, not lines), and
stores the vectors beside it (:mod:`~optical_memory.store.vectors`; they
are deleted with their passage). The memory refreshes the index after each of its
writes (:meth:`SemanticIndex.after_write`), and every semantic search
refreshes it first, so passages written by another process, or before the
ranker was configured, are embedded on the first search that sees them.

:func:`hybrid_search` ranks the union of the two candidate lists by
reciprocal rank fusion (RRF, constant :data:`RRF_K`): a candidate scores
``1 / (RRF_K + rank)`` in each list where it is among the first
:data:`CANDIDATES` (pages; each list holds up to :data:`PASSAGES_PER_HIT`
passages of a page). Its keyword term is weighted by the square of how much
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
as :class:`~optical_memory.retrieve.rerank.MiniLMRanker`).

Pages are ranked by the fused ranks of their best passage in each list;
within a page, passages are fused one by one (the same formula over their
passage ranks), and the hit returns the page's best
:data:`PASSAGES_PER_HIT`, best first. Picking the page's passage from the
list that gave the page more of its score (as before) put the answering
clause of a long licence in the first hit's text for 6 of 25 tuning
questions and in a top-3 hit's passages for 8; fusing passages puts it
first for 7 and among the passages of the top 3 hits for 24 with
sentence pieces of 25 words (19 with the old line-cut pieces of 40):
``benchmarks/longdoc.py``.
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

#: Passages one hit returns: the best of its page.
PASSAGES_PER_HIT = 3

#: Most words in one embedded piece of a passage.
PIECE_WORDS = 25

Key = tuple[str, str | None, str | None]
#: A passage: its page's key, then its span.
PKey = tuple[str, str | None, str | None, int, int]
_WIDE = re.compile(r"[\u2e80-\ua4cf\uac00-\ud7af\uf900-\ufaff]")
_SENTENCE = re.compile(r"(?<=[.!?:;。！？])\s+|(?<=[。！？])|\n[ \t]*\n\s*")


def _words(sentence: str) -> int:
    return len(sentence.split()) + len(_WIDE.findall(sentence)) // 2  # CJK: 2 characters a word


def _sentences(text: str) -> list[str]:
    """``text``'s sentences, whitespace runs as one space; one longer than
    :data:`PIECE_WORDS` words as windows of that many, overlapping by half."""
    out = []
    for sentence in _SENTENCE.split(text):
        words = sentence.split()
        last = max(0, len(words) - PIECE_WORDS)
        starts = [*range(0, last, PIECE_WORDS // 2), last] if words else []
        out += [" ".join(words[i:i + PIECE_WORDS]) for i in starts]
    return out


def pieces(text: str) -> list[str]:
    """``text`` as the pieces it is embedded in: runs of whole sentences of
    at most :data:`PIECE_WORDS` words (two CJK characters count as one; a
    longer sentence as overlapping windows of that many words). A line
    break ends a sentence only at a blank line: a document wrapped at 72
    columns is cut by its sentences, not its lines."""
    out: list[str] = []
    run: list[str] = []
    words = 0
    for sentence in _sentences(text):
        n = _words(sentence)
        if run and words + n > PIECE_WORDS:
            out.append(" ".join(run))
            run, words = [], 0
        run.append(sentence)
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
                metadata: Mapping[str, Any] | None = None, *, per_page: int = 1
                ) -> list[tuple[PassageRef, float]]:
        """The ``n`` passages nearest ``query`` by cosine (a passage's best
        piece), at most ``per_page`` per (source, item, page), best first
        (ties by passage id); ``metadata``: as :meth:`Store.search`'s filter."""
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
        seen: dict[Key, int] = {}
        pids = np.array([refs[i].pid for i in keep])
        for j in np.lexsort((pids, -sims)):  # by similarity, then by passage id
            ref = refs[keep[j]]
            if seen.get(ref.key, 0) < per_page:
                seen[ref.key] = seen.get(ref.key, 0) + 1
                out.append((ref, float(sims[j])))
                if len(out) == n:
                    break
        return out


def _passage_key(source: str, item_id: str | None, page_id: str | None,
                 span: tuple[int, int] | None) -> PKey:
    return source, item_id, page_id, *(span or (0, 0))


def hybrid_search(store: Store, index: SemanticIndex, query: str, scope: Scope, *, k: int,
                  sources: Sequence[str], metadata: Mapping[str, Any] | None = None
                  ) -> list[tuple[float, list[SearchHit]]]:
    """Up to ``k`` hits for ``query``, best first: keyword and vector
    candidates fused (see the module doc), each as its fused score and its
    page's best passages (at most :data:`PASSAGES_PER_HIT`), best first."""
    terms = query_terms(query)
    if not terms or k == 0 or not sources:
        return []
    if has_ngram_script(query) and not getattr(index.ranker, "spaceless_scripts", True):
        # an English model's vectors of a Chinese question only add noise (measured:
        # docs/measurements.md, "Semantic search")
        return group(store.search(query, scope, k=k * PASSAGES_PER_HIT, sources=sources,
                                  metadata=metadata, per_page=PASSAGES_PER_HIT), k)
    index.refresh(scope, sources)
    n = max(CANDIDATES, 4 * k)
    keyword = store.search(query, scope, k=n * PASSAGES_PER_HIT, sources=sources,
                           metadata=metadata, per_page=PASSAGES_PER_HIT)
    total = index.store.query_weight(query)
    vector = index.nearest(query, scope, sources, n * PASSAGES_PER_HIT, metadata,
                           per_page=PASSAGES_PER_HIT)
    kw_psg: dict[PKey, float] = {}
    vec_psg: dict[PKey, float] = {}
    kw_page: dict[Key, float] = {}
    vec_page: dict[Key, float] = {}
    by_pkey: dict[PKey, SearchHit] = {}
    refs: dict[PKey, PassageRef] = {}
    for rank, h in enumerate(keyword, 1):
        share = min(1.0, h.score / total) if total > 0 else 0.0
        pk = _passage_key(h.source, h.item_id, h.page_id, h.passage)
        kw_psg[pk] = share**2 / (RRF_K + rank)
        by_pkey[pk] = h
        if pk[:3] not in kw_page:
            kw_page[pk[:3]] = share**2 / (RRF_K + len(kw_page) + 1)
    for rank, (ref, _) in enumerate(vector, 1):
        pk = _passage_key(ref.source, ref.item_id, ref.page_id, (ref.start, ref.end))
        vec_psg[pk] = 1.0 / (RRF_K + rank)
        refs[pk] = ref
        if ref.key not in vec_page:
            vec_page[ref.key] = 1.0 / (RRF_K + len(vec_page) + 1)
    fused = {pk: kw_psg.get(pk, 0.0) + vec_psg.get(pk, 0.0) for pk in (*kw_psg, *vec_psg)}
    # best first; ties: the larger single part, then keyword order, then vector order
    order = sorted(fused, key=lambda pk: (-fused[pk], -max(kw_psg.get(pk, 0.0),
                                                           vec_psg.get(pk, 0.0))))
    pages: dict[Key, list[PKey]] = {}
    for pk in order:
        pages.setdefault(pk[:3], []).append(pk)
    page_score = {key: kw_page.get(key, 0.0) + vec_page.get(key, 0.0) for key in pages}
    # stable: ties keep the order of the pages' best passages
    ranked = sorted(pages, key=lambda key: -page_score[key])[:k]
    chosen = {key: pages[key][:PASSAGES_PER_HIT] for key in ranked}
    want = [refs[pk].pid for pks in chosen.values() for pk in pks if pk not in by_pkey]
    texts = {r.pid: r for r in index.store.get_passages(want, scope, sources=sources)}
    out = []
    for key in ranked:
        found = []
        for pk in chosen[key]:
            if pk in by_pkey:
                found.append(replace(by_pkey[pk], score=fused[pk]))
            elif refs[pk].pid in texts:
                got = texts[refs[pk].pid]
                body = got.text or ""
                spots = locate(body, terms)
                found.append(SearchHit(
                    source=got.source, item_id=got.item_id, page_id=got.page_id,
                    score=fused[pk], snippet=make_snippet(body, spots),
                    offsets=tuple((a + got.start, b + got.start) for a, b in spots),
                    passage=(got.start, got.end), text=body))
        if found:
            out.append((page_score[key], found))
    return out


def group(found: Sequence[SearchHit], k: int) -> list[tuple[float, list[SearchHit]]]:
    """Passages ranked best first as up to ``k`` hits: one per (source, item,
    page), scored by its best passage, with its first :data:`PASSAGES_PER_HIT`."""
    pages: dict[Key, list[SearchHit]] = {}
    for h in found:
        got = pages.setdefault((h.source, h.item_id, h.page_id), [])
        if len(got) < PASSAGES_PER_HIT:
            got.append(h)
    return [(hits[0].score, hits) for hits in list(pages.values())[:k]]


__all__ = ["CANDIDATES", "EMBED_BATCH", "PASSAGES_PER_HIT", "PIECE_WORDS", "RRF_K",
           "SemanticIndex", "group", "hybrid_search", "pieces", "unit_vectors"]
