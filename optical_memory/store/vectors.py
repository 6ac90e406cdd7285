"""Passage vectors: one embedding per passage and model, written once for both SQL stores.

Table ``passage_vectors`` / ``om_passage_vectors`` (migration
``0005_passage_vectors``): ``passage_id`` (a foreign key to the passage,
ON DELETE CASCADE), ``model`` (the embedder's name) and ``vector`` (one or more float32
vectors, little-endian, unit length, one per piece of the passage, as a
BLOB / ``bytea``). A passage is deleted
with its item or page (add's ``replaces``, ``delete``, re-paging), and its
vectors go with it by cascade; new passages have none until an embedder
writes them (:class:`~optical_memory.retrieve.semantic.SemanticIndex`, after
each write of the memory and before each semantic search), so the store
needs no model and writes never wait for one.

Search over the vectors is exact, in numpy, by the caller: the store hands
out the vectors of the passages visible under a scope
(:meth:`SqlVectors.passage_vectors`). The local PostgreSQL (Debian 12's
``postgresql-15``) has no ``pgvector`` package, so both backends store bytes
and answer the same.

A vector is written only while its passage still is what was embedded
(same id, item, page, character span and text: ``PassageRef.text``), so a
passage deleted or re-indexed meanwhile (``delete``, an item's text
updated), or an id SQLite reused, gets no stale vector. An update of an
item's text makes new passages (its old ones and their vectors are deleted).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from optical_memory.errors import InputError
from optical_memory.scope import Scope
from optical_memory.store.checks import check_scope, check_sources
from optical_memory.store.metadata import check_filter, metadata_where
from optical_memory.store.records import SOURCES
from optical_memory.store.sql_dialect import Dialect, Statement

#: Longest embedder name stored with a vector.
MAX_MODEL_CHARS = 200
#: Passage ids per membership condition.
_CHUNK = 500


@dataclass(frozen=True)
class PassageRef:
    """One passage visible under a scope.

    pid:      the passage's row id.
    source:   ``"item"`` (a span of an item's text) or ``"page"`` (of a
              page's read-back, ``keep_text=False``).
    item_id:  the item (``None`` for a read-back passage).
    page_id:  the page showing it, when that page is visible under the scope.
    stored_page: the page id stored with the passage (``None``: on no page).
    start / end: the span in the item's text (or the page's read-back).
    text:     the passage's exact text, when asked for.
    """

    pid: int
    source: str
    item_id: str | None
    page_id: str | None
    stored_page: str | None
    start: int
    end: int
    text: str | None = None

    @property
    def key(self) -> tuple[str, str | None, str | None]:
        """What search counts once: one passage per (source, item, page)."""
        return self.source, self.item_id, self.page_id


def check_model(model: object) -> str:
    if not isinstance(model, str) or not model or len(model) > MAX_MODEL_CHARS:
        raise InputError(f"a vector model name must be a non-empty str of at most "
                         f"{MAX_MODEL_CHARS} characters (got {model!r:.60})")
    return model


def passages_query(d: Dialect, scope: Scope, sources: Sequence[str], *, model: str | None,
                   mode: str, pids: Sequence[int] = (), limit: int | None = None,
                   metadata: Mapping[str, Any] | None = None) -> Statement:
    """The passages visible under ``scope`` (item passages need their item
    visible, and name their page only when it is visible too; read-back
    passages need their page visible), by id. ``mode``: ``"vectors"`` (those
    with a vector of ``model``, with it, in no order), ``"missing"`` (those without one,
    with their text) or ``"text"`` (those of ``pids``, with their text).
    ``metadata`` (a checked filter) keeps what ``search`` keeps: item
    passages of matching items, read-back passages of pages holding one."""
    meta_sql, meta_params = metadata_where(d, metadata, "i") if metadata else ("", [])
    m = d.mark
    cut = "ps.char_start + 1, ps.char_end - ps.char_start"
    parts: list[str] = []
    params: list[Any] = []
    join, cond = "", ""
    join_params: list[Any] = []
    cond_params: list[Any] = []
    if mode == "vectors":
        join = f"JOIN {d.vectors} v ON v.passage_id = ps.id AND v.model = {m}"
        join_params = [model]
    elif mode == "missing":
        join = f"LEFT JOIN {d.vectors} v ON v.passage_id = ps.id AND v.model = {m}"
        join_params, cond = [model], " AND v.passage_id IS NULL"
    else:
        cond_sql, cond_params = d.in_list("ps.id", list(pids))
        cond = f" AND {cond_sql}"
    cols = ("ps.id AS pid, ps.page_id AS stored_page, ps.char_start AS char_start, "
            "ps.char_end AS char_end")
    if "item" in sources:
        body = "v.vector" if mode == "vectors" else f"substr(i.text, {cut})"
        item_where, item_params = d.scope_where(scope, "i")
        page_where, page_params = d.scope_where(scope, "p")
        parts.append(
            f"SELECT 'item' AS source, ps.item_id AS item_id, p.id AS page_id, {cols}, "
            f"{body} AS body FROM {d.passages} ps JOIN {d.items} i ON i.id = ps.item_id "
            f"LEFT JOIN {d.pages} p ON p.id = ps.page_id AND {page_where} {join} "
            f"WHERE {item_where}{cond}" + (f" AND {meta_sql}" if metadata else ""))
        params += [*page_params, *join_params, *item_params, *cond_params, *meta_params]
    if "page" in sources:
        body = "v.vector" if mode == "vectors" else f"substr(p.readback, {cut})"
        page_where, page_params = d.scope_where(scope, "p")
        parts.append(
            f"SELECT 'page' AS source, NULL AS item_id, p.id AS page_id, {cols}, "
            f"{body} AS body FROM {d.passages} ps JOIN {d.pages} p ON p.id = ps.page_id "
            f"{join} WHERE ps.item_id IS NULL AND {page_where}{cond}"
            + (f" AND EXISTS (SELECT 1 FROM {d.page_items} mi JOIN {d.items} i ON "
               f"i.id = mi.item_id WHERE mi.page_id = p.id AND {meta_sql})" if metadata else ""))
        params += [*join_params, *page_params, *cond_params, *meta_params]
    # (vectors: in no order, the caller sorts; a sort here would copy every blob)
    sql = f"SELECT * FROM ({' UNION ALL '.join(parts)}) u"
    if mode != "vectors":
        sql += " ORDER BY u.pid"
    if limit is not None:
        sql += f" LIMIT {m}"
        params.append(limit)
    return sql, params


def passage_ref(row: Any, *, text: bool) -> PassageRef:
    return PassageRef(int(row["pid"]), row["source"], row["item_id"], row["page_id"],
                      row["stored_page"], int(row["char_start"]), int(row["char_end"]),
                      (row["body"] or "") if text else None)


def insert_vector_sql(d: Dialect) -> str:
    """INSERT of one vector, only while its passage is unchanged (see the module doc)."""
    m = d.mark
    cut = "ps.char_start + 1, ps.char_end - ps.char_start"
    return (f"INSERT INTO {d.vectors} (passage_id, model, vector) "
            f"SELECT ps.id, {m}, {m} FROM {d.passages} ps WHERE ps.id = {m} "
            f"AND ps.char_start = {m} AND ps.char_end = {m} "
            f"AND coalesce(ps.item_id, '') = {m} AND coalesce(ps.page_id, '') = {m} "
            f"AND coalesce((SELECT substr(i.text, {cut}) FROM {d.items} i "
            f"WHERE i.id = ps.item_id), (SELECT substr(p.readback, {cut}) FROM {d.pages} p "
            f"WHERE p.id = ps.page_id AND ps.item_id IS NULL)) = {m} "
            "ON CONFLICT DO NOTHING")


def vector_rows(model: str, refs: Sequence[PassageRef],
                vectors: Sequence[bytes]) -> list[tuple[Any, ...]]:
    if len(refs) != len(vectors):
        raise InputError(f"{len(refs)} passages but {len(vectors)} vectors")
    rows = []
    for ref, vec in zip(refs, vectors):
        if not isinstance(vec, bytes | bytearray | memoryview) or not len(vec) \
                or len(vec) % 4:
            raise InputError(f"passage {ref.pid}: a vector must be non-empty float32 bytes")
        rows.append((model, bytes(vec), ref.pid, ref.start, ref.end, ref.item_id or "",
                     ref.stored_page or "", ref.text))
    return rows


@runtime_checkable
class PassageVectorStore(Protocol):
    """What a store offers for semantic search (both SQL stores do)."""

    def passage_vectors(self, scope: Scope, model: str, *, sources: Sequence[str] = SOURCES,
                        metadata: Mapping[str, Any] | None = None
                        ) -> tuple[list[PassageRef], list[bytes]]: ...

    def passages_without_vectors(self, scope: Scope, model: str, *,
                                 sources: Sequence[str] = SOURCES, limit: int = 256
                                 ) -> list[PassageRef]: ...

    def put_passage_vectors(self, model: str, refs: Sequence[PassageRef],
                            vectors: Sequence[bytes]) -> None: ...

    def get_passages(self, pids: Sequence[int], scope: Scope, *,
                     sources: Sequence[str] = SOURCES) -> list[PassageRef]: ...

    def query_weight(self, query: str) -> float:
        """The score ``search`` gives a passage holding every term of ``query``."""
        ...


class _Backend(Protocol):
    _sql: Dialect

    def _guarded_read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...

    def _guarded_write(self, run: Callable[[Any], Any]) -> Any: ...


class SqlVectors:
    """Mixin: :class:`PassageVectorStore` over ``self._sql`` and the
    backend's ``_guarded_read`` / ``_guarded_write``."""

    def passage_vectors(self: _Backend, scope: Scope, model: str, *,
                        sources: Sequence[str] = SOURCES,
                        metadata: Mapping[str, Any] | None = None
                        ) -> tuple[list[PassageRef], list[bytes]]:
        """The passages visible under ``scope`` that have a vector of
        ``model`` (in no particular order), and their vectors (float32 bytes);
        ``metadata``: only those ``search`` keeps under that filter."""
        scope, model, sources = check_scope(scope), check_model(model), check_sources(sources)
        filters = check_filter(metadata)
        if not sources:
            return [], []
        rows = self._guarded_read(*passages_query(self._sql, scope, sources, model=model,
                                                  mode="vectors", metadata=filters))
        return [passage_ref(r, text=False) for r in rows], [bytes(r["body"]) for r in rows]

    def passages_without_vectors(self: _Backend, scope: Scope, model: str, *,
                                 sources: Sequence[str] = SOURCES, limit: int = 256
                                 ) -> list[PassageRef]:
        """Up to ``limit`` passages visible under ``scope`` with no vector of
        ``model`` yet, by id, with their text."""
        scope, model, sources = check_scope(scope), check_model(model), check_sources(sources)
        if not sources or limit <= 0:
            return []
        rows = self._guarded_read(*passages_query(self._sql, scope, sources, model=model,
                                                  mode="missing", limit=int(limit)))
        return [passage_ref(r, text=True) for r in rows]

    def put_passage_vectors(self: _Backend, model: str, refs: Sequence[PassageRef],
                            vectors: Sequence[bytes]) -> None:
        """Store each passage's vector of ``model`` (one transaction); kept
        only for passages still as ``refs`` read them (text included: refs
        from :meth:`passages_without_vectors`), and never replacing one."""
        rows = vector_rows(check_model(model), refs, vectors)
        if not rows:
            return
        sql = insert_vector_sql(self._sql)

        def run(conn: Any) -> None:
            conn.cursor().executemany(sql, rows)

        self._guarded_write(run)

    def get_passages(self: _Backend, pids: Sequence[int], scope: Scope, *,
                     sources: Sequence[str] = SOURCES) -> list[PassageRef]:
        """The passages ``pids`` visible under ``scope``, with their text, by id."""
        scope, sources = check_scope(scope), check_sources(sources)
        ids = [int(p) for p in dict.fromkeys(pids)]
        out: list[PassageRef] = []
        for i in range(0, len(ids), _CHUNK) if sources else ():
            rows = self._guarded_read(*passages_query(self._sql, scope, sources, model=None,
                                                      mode="text", pids=ids[i:i + _CHUNK]))
            out += [passage_ref(r, text=True) for r in rows]
        return sorted(out, key=lambda r: r.pid)


__all__ = ["MAX_MODEL_CHARS", "PassageRef", "PassageVectorStore", "SqlVectors", "check_model",
           "insert_vector_sql", "passages_query"]
