"""What differs between the SQLite and PostgreSQL stores' SQL, as one small
:class:`Dialect` (parameter mark, table names, list membership, row locks),
its two instances :data:`SQLITE` and :data:`POSTGRES`, and the column lists
of the items and pages tables. Identifiers come only from these constants,
never from input.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from optical_memory.scope import Scope
from optical_memory.store.terms import tsvector_literal

ITEM_FIELDS = [
    "id", "user_id", "agent_id", "session_id", "seq", "kind", "role", "name", "time", "text",
    "text_tokens", "tool_call_ids", "meta", "content_hash", "created_at",
]
PAGE_FIELDS = [
    "id", "user_id", "agent_id", "session_id", "seq", "width", "height", "font_size", "png",
    "text", "readback", "spans", "missing_glyphs", "meta", "tier", "created_at",
]

#: A query and its parameters.
Statement = tuple[str, list[Any]]
#: A query and its parameters; None where the answer is known to be empty.
Query = Statement | None


@dataclass(frozen=True)
class Dialect:
    """What differs between the backends' SQL."""

    mark: str  # parameter placeholder: "?" (sqlite3) or "%s" (psycopg)
    items: str  # the items table, and below each table's alias in queries
    pages: str
    page_items: str
    renditions: str
    null_png: str  # a NULL of the png column's type
    any_array: bool  # list membership as "= ANY(array)" (else "IN (?, ...)")
    lock_shared: str  # appended to a SELECT to share-lock its rows ("" where the file lock does)
    byte_length: str  # function giving a BLOB's / bytea's size in bytes
    passages: str = "passages"  # the passage index (see optical_memory.store.passages)
    terms_column: str = "terms"  # a passage's index tokens: space-joined (FTS5) or a tsvector
    tsvector: bool = False  # terms are a tsvector (PostgreSQL) rather than FTS5 text
    vectors: str = "passage_vectors"  # passage embeddings (optical_memory.store.vectors)
    jsonb: bool = False  # JSON columns are compared as jsonb (PostgreSQL), else json_extract

    # Queries alias the tables i (items), p (pages), pi (page_items), r (renditions),
    # ps (passages), v (passage vectors).

    def terms_value(self, tokens: Sequence[str]) -> str:
        """The stored form of a passage's index tokens (bind it as :attr:`terms_mark`)."""
        return tsvector_literal(tokens) if self.tsvector else " ".join(tokens)

    @property
    def terms_mark(self) -> str:
        return f"{self.mark}::tsvector" if self.tsvector else self.mark

    def scope_where(self, scope: Scope, alias: str) -> tuple[str, list[Any]]:
        """SQL condition (and its parameters) for rows of ``alias`` visible under ``scope``."""
        m = self.mark
        clauses = [f"{alias}.user_id = {m}"]
        params: list[Any] = [scope.user_id]
        if scope.agent_id is not None:
            clauses.append(f"{alias}.agent_id = {m}")
            params.append(scope.agent_id)
        if scope.session_id is not None:
            clauses.append(f"{alias}.session_id = {m}")
            params.append(scope.session_id)
        return " AND ".join(clauses), params

    def in_list(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """``column`` is one of ``values`` (non-empty)."""
        if self.any_array:
            return f"{column} = ANY({self.mark})", [list(values)]
        return f"{column} IN ({', '.join([self.mark] * len(values))})", list(values)

    def item_columns(self, alias: str = "i") -> str:
        return ", ".join(f"{alias}.{c} AS {c}" for c in ITEM_FIELDS)

    def page_columns(self, alias: str = "p", *, with_png: bool = True) -> str:
        return ", ".join(
            f"{self.null_png} AS png" if c == "png" and not with_png else f"{alias}.{c} AS {c}"
            for c in PAGE_FIELDS
        )


SQLITE = Dialect(
    mark="?", items="items", pages="pages", page_items="page_items", renditions="renditions",
    null_png="NULL", any_array=False, lock_shared="", byte_length="length",
)
POSTGRES = Dialect(
    mark="%s", items="om_items", pages="om_pages", page_items="om_page_items",
    renditions="om_renditions", null_png="NULL::bytea", any_array=True,
    lock_shared=" FOR SHARE", byte_length="octet_length", passages="om_passages",
    terms_column="tsv", tsvector=True, vectors="om_passage_vectors", jsonb=True,
)
