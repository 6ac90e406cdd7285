"""``OpticalMemoryStore``: a LangGraph ``BaseStore`` kept in an optical memory.

    store = OpticalMemoryStore(memory)
    agent = create_agent(model, tools, store=store)          # or graph.compile(store=store)
    store.put(("alice",), "seat", {"text": "Alice prefers window seats."})
    store.search(("alice",), query="window seat")            # retrieval (BM25 / the ranker)

Each value is one stored turn of the memory, its JSON the turn's text, so old
values are laid onto page images and age like conversation turns, and
``search`` with a ``query`` is :meth:`~optical_memory.OpticalMemory.retrieve`.

**Namespaces → scopes.** A namespace has one to three labels:
``(user,)``, ``(user, agent)`` or ``(user, agent, label)`` is stored under
``Scope(user, agent, "store")`` / ``"store/<label>"``. A search or listing
under a namespace prefix sees the namespaces below it, and only the items
this store wrote (not the conversation turns a middleware stores for the
same user; the middleware's ``search_memory`` tool, which searches the whole
user, does see the store's values). Values of other users are never visible
(every read is scoped to the first label). ``list_namespaces`` needs a prefix
naming the user (a memory is only ever read one user at a time).

Keys are at most 256 characters (a stored turn's name). ``filter`` matches
top-level fields of the value by equality. ``put(..., index=...)`` and TTLs
are accepted and ignored (retrieval covers the value's whole JSON text;
items do not expire).
"""
from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from langgraph.store.base import (
    BaseStore,
    GetOp,
    Item,
    ListNamespacesOp,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
)

from optical_memory import InputError, OpticalMemory, turn_message
from optical_memory.scope import Scope

#: Session label of the items this store writes.
STORE_SESSION = "store"
#: Most items one search or listing reads.
MAX_SCAN = 10_000


def scope_of(namespace: tuple[str, ...]) -> Scope:
    """The memory scope of a namespace (one to three labels)."""
    if not isinstance(namespace, tuple) or not 1 <= len(namespace) <= 3 or not all(
            isinstance(p, str) for p in namespace):
        raise InputError("a namespace is a tuple of one to three strings: (user,), "
                         f"(user, agent) or (user, agent, label) (got {namespace!r})")
    session = STORE_SESSION if len(namespace) < 3 else f"{STORE_SESSION}/{namespace[2]}"
    return Scope(namespace[0], namespace[1] if len(namespace) > 1 else None, session)


def namespace_of(scope: Scope) -> tuple[str, ...] | None:
    """The namespace an item's scope belongs to (``None``: not this store's)."""
    session = scope.session_id or ""
    if session == STORE_SESSION:
        return (scope.user_id,) if scope.agent_id is None else (scope.user_id, scope.agent_id)
    if session.startswith(STORE_SESSION + "/") and scope.agent_id is not None:
        return (scope.user_id, scope.agent_id, session[len(STORE_SESSION) + 1:])
    return None


def _time(iso: str) -> datetime:
    try:
        t = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return datetime.now(timezone.utc)
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


class OpticalMemoryStore(BaseStore):
    """LangGraph key-value store over an :class:`~optical_memory.OpticalMemory`
    (see the module doc). One memory may back a store and a middleware."""

    def __init__(self, memory: OpticalMemory) -> None:
        self.memory = memory

    # -- reads ---------------------------------------------------------------

    def _records(self, prefix: tuple[str, ...]) -> list[Any]:
        """This store's items under a namespace prefix, newest first."""
        if not prefix:
            raise InputError("a namespace prefix naming the user is needed: (user, ...)")
        scope = Scope(prefix[0], prefix[1] if len(prefix) > 1 else None)
        out = []
        for rec in self.memory.list_turns(**scope.as_kwargs(), newest_first=True,
                                          limit=MAX_SCAN):
            ns = namespace_of(rec.scope)
            if ns is not None and ns[:len(prefix)] == prefix and rec.name:
                out.append(rec)
        return out

    def _find(self, namespace: tuple[str, ...], key: str) -> Any | None:
        scope = scope_of(namespace)
        for rec in self.memory.list_turns(**scope.as_kwargs(), newest_first=True,
                                          limit=MAX_SCAN):
            if rec.scope == scope and rec.name == key:
                return rec
        return None

    @staticmethod
    def _value(rec: Any) -> dict[str, Any]:
        value = json.loads(turn_message(rec)["content"])
        return value if isinstance(value, dict) else {"value": value}

    def _item(self, rec: Any) -> Item:
        ns = namespace_of(rec.scope)
        assert ns is not None
        when = _time(rec.created_at)
        return Item(value=self._value(rec), key=rec.name, namespace=ns, created_at=when,
                    updated_at=when)

    def _search_item(self, rec: Any, score: float | None) -> SearchItem:
        ns = namespace_of(rec.scope)
        assert ns is not None
        when = _time(rec.created_at)
        return SearchItem(ns, rec.name, self._value(rec), when, when, score)

    def _get(self, op: GetOp) -> Item | None:
        rec = self._find(op.namespace, op.key)
        return None if rec is None else self._item(rec)

    def _search(self, op: SearchOp) -> list[SearchItem]:
        prefix = tuple(op.namespace_prefix)
        want = op.limit + op.offset
        if op.query:
            scope = Scope(prefix[0], prefix[1] if len(prefix) > 1 else None) if prefix else None
            if scope is None:
                raise InputError("a namespace prefix naming the user is needed: (user, ...)")
            found: list[tuple[Any, float | None]] = []
            for hit in self.memory.retrieve(op.query, k=min(MAX_SCAN, 4 * want + 20),
                                            **scope.as_kwargs()):
                rec = self.memory.get_item(hit.item_id, **scope.as_kwargs()) \
                    if hit.item_id else None
                ns = namespace_of(rec.scope) if rec is not None else None
                if rec is None or ns is None or ns[:len(prefix)] != prefix or not rec.name:
                    continue
                if all(r.id != rec.id for r, _ in found):
                    found.append((rec, float(hit.score)))
            pairs = found
        else:
            pairs = [(rec, None) for rec in self._records(prefix)]
        pairs = [(r, s) for r, s in pairs if _matches(self._value(r), op.filter)]
        return [self._search_item(r, s) for r, s in pairs[op.offset:want]]

    def _list(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        prefixes = [tuple(c.path) for c in op.match_conditions or () if c.match_type == "prefix"]
        if not prefixes or any("*" in p for p in prefixes):
            raise InputError("list_namespaces needs prefix=(user, ...) (no wildcards)")
        suffixes = [tuple(c.path) for c in op.match_conditions or () if c.match_type == "suffix"]
        seen: dict[tuple[str, ...], None] = {}
        for rec in self._records(prefixes[0]):
            ns = namespace_of(rec.scope)
            assert ns is not None
            if any(ns[-len(s):] != s for s in suffixes if s):
                continue
            seen.setdefault(ns if op.max_depth is None else ns[:op.max_depth])
        out = sorted(seen)
        return out[op.offset:op.offset + op.limit]

    # -- writes --------------------------------------------------------------

    def _put(self, op: PutOp) -> None:
        if not isinstance(op.key, str) or not op.key:
            raise InputError(f"key must be a non-empty string (got {op.key!r})")
        scope = scope_of(tuple(op.namespace))
        old = self._find(tuple(op.namespace), op.key)
        if op.value is not None:
            if not isinstance(op.value, Mapping):
                raise InputError(f"value must be a dict (got {type(op.value).__name__})")
            text = json.dumps(dict(op.value), ensure_ascii=False, sort_keys=True, default=str)
            self.memory.add([{"role": "user", "name": op.key, "content": text}],
                            **scope.as_kwargs())
        if old is not None:
            self.memory.delete(item_ids=[old.id], missing_ok=True, **scope.as_kwargs())

    # -- BaseStore -----------------------------------------------------------

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        results: list[Result] = []
        for op in ops:
            if isinstance(op, GetOp):
                results.append(self._get(op))
            elif isinstance(op, SearchOp):
                results.append(self._search(op))
            elif isinstance(op, PutOp):
                self._put(op)
                results.append(None)
            elif isinstance(op, ListNamespacesOp):
                results.append(self._list(op))
            else:
                raise InputError(f"unknown store operation {type(op).__name__}")
        return results

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        return await asyncio.to_thread(self.batch, list(ops))


def _matches(value: Mapping[str, Any], filter: Mapping[str, Any] | None) -> bool:
    return not filter or all(value.get(k) == v for k, v in filter.items())


__all__ = ["STORE_SESSION", "OpticalMemoryStore", "namespace_of", "scope_of"]
