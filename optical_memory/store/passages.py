"""The passage index, written once for both SQL stores.

A **passage** is what one page shows of one item: the exact source text of
one span (``item.text[span.start:span.end]``), cut into windows of whole
sentences of about 100 words (or 128 CJK characters,
:mod:`~optical_memory.store.windows`); no passage is larger than a page.
Where the page cuts a sentence, its last window runs on to the end of that
sentence: a fact split by a page break is whole in the passage of the page
where it starts. Items that no page holds yet (recent
chat turns) are passages of their own, cut the same way, until they are
paged; a page's read-back (``keep_text=False``) is indexed as passages of the
page alone. Search ranks passages, not items (:class:`Ranking`): a query
finds the page that holds the fact, and the passage's text is the hit's
``text``.

Rows (table ``passages`` / ``om_passages``): ``item_id`` (NULL for read-back),
``page_id`` (NULL while the item is on no page), ``char_start`` /
``char_end`` in the item's text (or the page's read-back), and the passage's
index tokens (:mod:`~optical_memory.store.terms`): space-joined text under an
FTS5 table (SQLite) or a ``tsvector`` with a GIN index (PostgreSQL). The
text itself is not copied: a hit reads ``substr`` of the item (or read-back).

Kept in step in the write's own transaction: ``add_items`` indexes its new
items and pages (:func:`index_write`) and drops the whole-item passages of
items now on a page; pages it ``replaces`` lose their passages by cascade and
their items that no page holds any more become whole-item passages again;
``delete`` cascades from items and pages. Existing databases are indexed by
the migration that creates the table (:func:`backfill`).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from optical_memory.scope import Scope
from optical_memory.store.metadata import metadata_where
from optical_memory.store.query import make_snippet
from optical_memory.store.records import NewPage, SearchHit, spans_from_json
from optical_memory.store.sql_dialect import Dialect, Statement
from optical_memory.store.sql_reads import Row
from optical_memory.store.terms import QueryTerms, index_tokens, locate
from optical_memory.store.windows import sentence_end, windows

Fetch = Callable[[str, list[Any]], Sequence[Mapping[str, Any]]]
#: Rows per backfill batch (pages or items).
BACKFILL_BATCH = 200
_CHUNK = 500

PASSAGE_INSERT = ("item_id", "page_id", "char_start", "char_end")


def insert_passage_sql(d: Dialect) -> str:
    columns = ", ".join([*PASSAGE_INSERT, d.terms_column])
    marks = ", ".join([d.mark] * len(PASSAGE_INSERT) + [d.terms_mark])
    return f"INSERT INTO {d.passages} ({columns}) VALUES ({marks})"


def passage_rows(d: Dialect, text: str, start: int, end: int, *, item_id: str | None,
                 page_id: str | None) -> list[tuple[Any, ...]]:
    """Rows for ``text[start:end]`` (windows of it), skipping windows without a token."""
    rows = []
    for lo, hi in windows(start, end, text):
        tokens = index_tokens(text[lo:hi])
        if tokens:
            rows.append((item_id, page_id, lo, hi, d.terms_value(tokens)))
    return rows


def page_passage_rows(d: Dialect, page_id: str, spans: Iterable[Any], readback: str | None,
                      texts: Mapping[str, str | None]) -> list[tuple[Any, ...]]:
    """A page's rows: one per span of an item with text (``texts`` by item
    id), and its read-back's."""
    rows = []
    for span in spans:
        text = texts.get(span.item_id)
        if text:
            rows += passage_rows(d, text, span.start, sentence_end(text, span.end),
                                 item_id=span.item_id, page_id=page_id)
    if readback:
        rows += passage_rows(d, readback, 0, len(readback), item_id=None, page_id=page_id)
    return rows


def _chunks(values: Sequence[str]) -> list[Sequence[str]]:
    return [values[i : i + _CHUNK] for i in range(0, len(values), _CHUNK)]


def item_texts(d: Dialect, fetch: Fetch, item_ids: Sequence[str]) -> dict[str, str | None]:
    """``{id: text}`` of the stored items ``item_ids``."""
    out: dict[str, str | None] = {}
    for chunk in _chunks(list(dict.fromkeys(item_ids))):
        cond, params = d.in_list("i.id", chunk)
        out.update((r["id"], r["text"]) for r in fetch(
            f"SELECT i.id AS id, i.text AS text FROM {d.items} i WHERE {cond}", params))
    return out


def on_no_page(d: Dialect, fetch: Fetch, item_ids: Sequence[str]) -> list[str]:
    """Which of ``item_ids`` no stored page holds."""
    held: set[str] = set()
    for chunk in _chunks(list(dict.fromkeys(item_ids))):
        cond, params = d.in_list("pi.item_id", chunk)
        held.update(r["item_id"] for r in fetch(
            f"SELECT DISTINCT pi.item_id AS item_id FROM {d.page_items} pi WHERE {cond}", params))
    return [i for i in dict.fromkeys(item_ids) if i not in held]


def items_of_pages(d: Dialect, fetch: Fetch, page_ids: Sequence[str]) -> list[str]:
    """The items the stored pages ``page_ids`` hold (before they are replaced)."""
    out: dict[str, None] = {}
    for chunk in _chunks(list(page_ids)):
        cond, params = d.in_list("pi.page_id", chunk)
        out.update((r["item_id"], None) for r in fetch(
            f"SELECT DISTINCT pi.item_id AS item_id FROM {d.page_items} pi WHERE {cond}", params))
    return list(out)


def index_write(d: Dialect, cur: Any, items: Sequence[Any], pages: Sequence[NewPage],
                released: Sequence[str]) -> None:
    """Index one ``add_items`` after its INSERTs, on ``cur`` in its
    transaction: the new pages' passages; whole-item passages for new items
    no page holds, dropped for stored items now on a page; and whole-item
    passages for ``released`` items (held by the replaced pages) that no page
    holds any more."""

    def fetch(q: str, params: list[Any]) -> list[Any]:
        return cur.execute(q, params).fetchall()

    texts: dict[str, str | None] = {item.id: item.text for item in items}
    held = list(dict.fromkeys(s.item_id for page in pages for s in page.spans))
    stored = [i for i in held if i not in texts]
    texts.update(item_texts(d, fetch, stored))
    rows: list[tuple[Any, ...]] = []
    for page in pages:
        rows += page_passage_rows(d, page.id, page.spans, page.readback, texts)
    for chunk in _chunks(stored):
        cond, params = d.in_list("item_id", chunk)
        cur.execute(f"DELETE FROM {d.passages} WHERE page_id IS NULL AND {cond}", params)
    held_set = set(held)
    loose = [item.id for item in items if item.id not in held_set]
    gone = on_no_page(d, fetch, [i for i in released if i not in held_set]) if released else []
    texts.update(item_texts(d, fetch, [i for i in gone if i not in texts]))
    for item_id in dict.fromkeys([*loose, *gone]):
        text = texts.get(item_id)
        if text:
            rows += passage_rows(d, text, 0, len(text), item_id=item_id, page_id=None)
    if rows:
        cur.executemany(insert_passage_sql(d), rows)


def backfill(d: Dialect, cur: Any) -> None:
    """Index every stored page and every item on no page (the migration that
    creates the passage table runs this in its transaction); ``cur`` returns
    rows by column name."""

    def fetch(q: str, params: list[Any]) -> list[Any]:
        return cur.execute(q, params).fetchall()

    m, last = d.mark, 0
    while batch := fetch(f"SELECT p.seq AS seq, p.id AS id, p.spans AS spans, "
                         f"p.readback AS readback FROM {d.pages} p WHERE p.seq > {m} "
                         f"ORDER BY p.seq LIMIT {BACKFILL_BATCH}", [last]):
        last = batch[-1]["seq"]
        spans = {r["id"]: spans_from_json(r["spans"]) for r in batch}
        texts = item_texts(d, fetch, [s.item_id for ss in spans.values() for s in ss])
        rows = [row for r in batch
                for row in page_passage_rows(d, r["id"], spans[r["id"]], r["readback"], texts)]
        if rows:
            cur.executemany(insert_passage_sql(d), rows)
    last = 0
    while batch := fetch(f"SELECT i.seq AS seq, i.id AS id, i.text AS text FROM {d.items} i "
                         f"WHERE i.seq > {m} AND i.text IS NOT NULL AND NOT EXISTS "
                         f"(SELECT 1 FROM {d.page_items} pi WHERE pi.item_id = i.id) "
                         f"ORDER BY i.seq LIMIT {BACKFILL_BATCH}", [last]):
        last = batch[-1]["seq"]
        rows = [row for r in batch for row in passage_rows(
            d, r["text"], 0, len(r["text"]), item_id=r["id"], page_id=None)]
        if rows:
            cur.executemany(insert_passage_sql(d), rows)


# --------------------------------------------------------------------------
# Search
# --------------------------------------------------------------------------


#: Passages counted at most per document frequency (bounds the cost of a common term).
DF_CAP = 100_000


def idf_weights(total: int, dfs: Sequence[int]) -> list[int]:
    """Each term's idf, ``ln(1 + (N - df + 0.5) / (df + 0.5))`` over all
    passages (``N`` = ``total``; counts capped at :data:`DF_CAP`), in
    thousandths as integers, so sums are exact and tie alike on every backend."""
    total = max(total, 1)
    return [round(1000 * math.log(1.0 + (total - df + 0.5) / (df + 0.5)))
            for df in (min(df, total) for df in dfs)]


@dataclass(frozen=True)
class Ranking:
    """How a backend finds and scores the passages of a query (SQL with its
    parameters): ``head``, a ``WITH`` prefix (or ""); ``matched``, the FROM
    entries that make the passage rows ``ps``; ``match``, their condition;
    ``score``, the sum of the :func:`idf_weights` of the terms a passage
    holds (BM25 with k1 = 0: passages are windows of like size, so neither
    term frequency nor length normalisation decides); ``tiebreak``, the
    backend's own full-text rank (FTS5 ``bm25``, ``ts_rank``), higher better."""

    head: Statement
    matched: str
    match: Statement
    score: Statement
    tiebreak: Statement


def search_query(d: Dialect, scope: Scope, sources: Sequence[str], k: int,
                 ranking: Ranking, metadata: Mapping[str, Any] | None = None,
                 per_page: int = 1) -> Statement:
    """The passages matching a query under ``scope``, best first, at most
    ``k``, the best ``per_page`` per (item, page) (windows of one span, or of
    one item not yet paged, count as one page). Item passages need the item visible under
    ``scope``; their page is named only when it is visible too. Read-back
    passages need the page visible. With ``metadata`` (a checked filter,
    :mod:`~optical_memory.store.metadata`), item passages need their item to
    match it, read-back passages a page holding an item that matches it."""
    r = ranking
    meta_sql, meta_params = metadata_where(d, metadata, "i") if metadata else ("1 = 1", [])
    parts: list[str] = []
    params: list[Any] = list(r.head[1])
    cols = ("ps.char_start AS char_start, ps.char_end AS char_end, ps.page_id AS raw_page, "
            f"ps.id AS pid, {r.score[0]} AS score, {r.tiebreak[0]} AS tiebreak")
    ranks = [*r.score[1], *r.tiebreak[1]]
    cut = "ps.char_start + 1, ps.char_end - ps.char_start"
    if "item" in sources:
        item_where, item_params = d.scope_where(scope, "i")
        page_where, page_params = d.scope_where(scope, "p")
        parts.append(
            f"SELECT 'item' AS source, ps.item_id AS item_id, p.id AS page_id, {cols}, "
            f"substr(i.text, {cut}) AS body "
            f"FROM {r.matched} JOIN {d.items} i ON i.id = ps.item_id "
            f"LEFT JOIN {d.pages} p ON p.id = ps.page_id AND {page_where} "
            f"WHERE {r.match[0]} AND {item_where} AND {meta_sql}")
        params += [*ranks, *page_params, *r.match[1], *item_params, *meta_params]
    if "page" in sources:
        page_where, page_params = d.scope_where(scope, "p")
        parts.append(
            f"SELECT 'page' AS source, NULL AS item_id, p.id AS page_id, {cols}, "
            f"substr(p.readback, {cut}) AS body "
            f"FROM {r.matched} JOIN {d.pages} p ON p.id = ps.page_id "
            f"WHERE {r.match[0]} AND ps.item_id IS NULL AND {page_where}"
            + (f" AND EXISTS (SELECT 1 FROM {d.page_items} mi JOIN {d.items} i ON "
               f"i.id = mi.item_id WHERE mi.page_id = p.id AND {meta_sql})" if metadata else ""))
        params += [*ranks, *r.match[1], *page_params, *(meta_params if metadata else [])]
    order = "score DESC, {0}tiebreak DESC, {0}pid"
    sql = (
        f"{r.head[0]} SELECT r.source AS source, r.item_id AS item_id, r.page_id AS page_id, "
        "r.char_start AS char_start, r.char_end AS char_end, r.body AS body, r.score AS score "
        "FROM (SELECT u.*, row_number() OVER (PARTITION BY u.source, u.item_id, u.raw_page "
        f"ORDER BY u.{order.format('u.')}) AS n FROM ({' UNION ALL '.join(parts)}) u) r "
        f"WHERE r.n <= {d.mark} ORDER BY r.{order.format('r.')} LIMIT {d.mark}"
    )
    return sql, [*params, per_page, k]


def passage_hit(row: Row, query: QueryTerms) -> SearchHit:
    """A hit from a :func:`search_query` row: offsets in the item's text (or
    the page's read-back), the snippet and text from the passage."""
    body = row["body"] or ""
    start = int(row["char_start"])
    found = locate(body, query)
    return SearchHit(
        source=row["source"], item_id=row["item_id"], page_id=row["page_id"],
        score=float(row["score"]) / 1000, snippet=make_snippet(body, found),
        offsets=tuple((a + start, b + start) for a, b in found),
        passage=(start, int(row["char_end"])), text=body,
    )


__all__ = ["BACKFILL_BATCH", "DF_CAP", "Ranking", "backfill", "idf_weights", "index_write",
           "insert_passage_sql", "passage_hit", "passage_rows", "search_query"]
