"""The item half of the :class:`~optical_memory.memory.OpticalMemory` facade
(a mixin, so ``memory.py`` stays a short map of the data path): get, list,
update, delete, reset, and the plain reads integrations use. Each method
only forwards to :mod:`optical_memory.items` or the store.

Ids are scoped: an id not stored under the call's ``user_id`` / ``agent_id``
/ ``session_id`` raises :class:`~optical_memory.store.NotFoundError` (its
``missing`` names the ids) and changes nothing, in ``get``, ``update`` and
``delete(item_ids=...)`` alike; ``delete(..., missing_ok=True)`` deletes what
is there and lists the rest in ``Deleted.missing``.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from optical_memory import items
from optical_memory.items import ItemList, MemoryItem, UpdateResult
from optical_memory.scope import DEFAULT_USER, Scope
from optical_memory.store import Deleted, ItemRecord, PageRecord, ScopeCount, StoreStats

if TYPE_CHECKING:  # pragma: no cover
    from optical_memory.cache import LRUCache
    from optical_memory.context.assemble import ContextBuilder
    from optical_memory.render import Renderer
    from optical_memory.render.paging import Pager
    from optical_memory.store import Store
    from optical_memory.tokens import TextCounter


class ItemMethods:
    """Mixin of :class:`~optical_memory.memory.OpticalMemory` (see the module doc)."""

    store: Store
    counter: TextCounter
    renderer: Renderer
    keep_text: bool
    _pager: Pager
    _context: ContextBuilder
    _cache: LRUCache

    def get(self, item_id: str, *, user_id: str = DEFAULT_USER, agent_id: str | None = None,
            session_id: str | None = None) -> MemoryItem:
        """The item ``item_id`` with its text, metadata and the pages it lies on;
        :class:`~optical_memory.store.NotFoundError` if not stored under the scope."""
        return items.get(self.store, item_id, Scope(user_id, agent_id, session_id))

    def get_all(self, *, user_id: str = DEFAULT_USER, agent_id: str | None = None,
                session_id: str | None = None, kinds: Sequence[str] | None = None,
                roles: Sequence[str] | None = None, metadata: Mapping[str, Any] | None = None,
                limit: int = 100, cursor: str | None = None,
                newest_first: bool = False) -> ItemList:
        """Up to ``limit`` items under the scope, oldest first (or newest first),
        keeping ``kinds`` ("turn", "document", "text"), turns of ``roles`` and
        items whose metadata equals every ``metadata`` entry; ``next_cursor``
        of the result, passed as ``cursor``, gives the next page."""
        return items.get_all(self.store, Scope(user_id, agent_id, session_id), kinds=kinds,
                             roles=roles, metadata=metadata, limit=limit, cursor=cursor,
                             newest_first=newest_first)

    def update(self, item_id: str, text: str | None = None, *,
               metadata: Mapping[str, Any] | None = None, user_id: str = DEFAULT_USER,
               agent_id: str | None = None, session_id: str | None = None) -> UpdateResult:
        """Replace an item's text (a turn's content; its tool calls stay) and/or
        its metadata; the pages showing it, and pages linked to them by a split
        item, are laid out again (all in ``replaced``, new ids in ``repaged``,
        same place and tier). Needs ``keep_text=True`` for text."""
        result = items.update(self.store, self._pager, self.counter, self.renderer, item_id,
                              Scope(user_id, agent_id, session_id), text=text,
                              metadata=metadata, keep_text=self.keep_text)
        self._context.forget_pending()
        return result

    def delete(self, *, item_ids: Sequence[str] | None = None, user_id: str = DEFAULT_USER,
               agent_id: str | None = None, session_id: str | None = None,
               repage: bool = True, missing_ok: bool = False) -> Deleted:
        """Delete items (all under the scope, or ``item_ids``) and the pages left
        holding none. A page that also held other items still shows the deleted
        text; with ``repage`` (default) those items are laid out again without
        it (new ids in ``repaged``, keeping the old pages' place and tier; every
        page they took the place of, including pages linked by a split item,
        in ``replaced``).
        Pages that cannot be re-rendered (no text kept) are in ``partial_pages``.
        An id not under the scope raises NotFoundError, deleting nothing, unless
        ``missing_ok`` (then it is listed in ``missing``)."""
        scope = Scope(user_id, agent_id, session_id)
        deleted = self.store.delete(scope, item_ids=item_ids, missing_ok=missing_ok)
        self._context.forget_pending()
        if not (repage and deleted.partial_pages):
            return deleted
        done = self._pager.repage(deleted.partial_pages, scope)
        self._context.forget_pending()
        return replace(deleted, partial_pages=done.kept, repaged=done.made,
                       replaced=done.replaced, warnings=done.warnings)

    def reset(self, *, user_id: str | None = None, agent_id: str | None = None,
              session_id: str | None = None, all_scopes: bool = False) -> Deleted:
        """Erase a scope: every item and page under ``user_id`` (narrowed by
        ``agent_id`` / ``session_id``). ``reset(all_scopes=True)`` erases every
        user's memory in the store; a reset naming neither is refused."""
        scope = items.reset_scope(user_id, agent_id, session_id, all_scopes)
        if scope is not None:
            return self.delete(**scope.as_kwargs())
        deleted = self.store.clear()
        self._cache.clear()
        return deleted

    def get_item(self, item_id: str, *, user_id: str = DEFAULT_USER, agent_id: str | None = None,
                 session_id: str | None = None) -> ItemRecord | None:
        """The stored item ``item_id`` visible under the scope, else ``None``."""
        return self.store.get_item(item_id, Scope(user_id, agent_id, session_id))

    def get_page(self, page_id: str, *, user_id: str = DEFAULT_USER, agent_id: str | None = None,
                 session_id: str | None = None) -> PageRecord | None:
        """The stored page ``page_id`` (master PNG included), else ``None``."""
        return self.store.get_page(page_id, Scope(user_id, agent_id, session_id))

    def list_turns(self, *, user_id: str = DEFAULT_USER, agent_id: str | None = None,
                   session_id: str | None = None, newest_first: bool = False,
                   limit: int | None = None) -> list[ItemRecord]:
        """The chat turns under the scope, oldest first (or newest first)."""
        return self.store.list_items(Scope(user_id, agent_id, session_id), kinds=["turn"],
                                     newest_first=newest_first, limit=limit)

    def list_pages(self, *, user_id: str = DEFAULT_USER, agent_id: str | None = None,
                   session_id: str | None = None) -> list[PageRecord]:
        """The pages under the scope, without their PNGs, in store order."""
        return self.store.list_pages(Scope(user_id, agent_id, session_id), with_png=False)

    def stats(self, *, user_id: str = DEFAULT_USER, agent_id: str | None = None,
              session_id: str | None = None) -> StoreStats:
        """Totals under the scope (items, pages per tier, tokens, bytes)."""
        return self.store.stats(Scope(user_id, agent_id, session_id))

    def scopes(self) -> list[ScopeCount]:
        """Every stored (user, agent, session) with its item and page counts:
        store-wide, the one read that crosses users, for admin tools such as
        ``optical-memory serve``."""
        return self.store.scopes()


__all__ = ["ItemList", "ItemMethods", "MemoryItem", "UpdateResult"]
