"""The sweep that moves pages down the age tiers.

A page's age is what its exact scope has gained since its newest item
(items or text tokens, per the policy's unit): the scope's totals minus the
page's ranks (:class:`~optical_memory.render.paging.PageInfo`). A page moves
to the tier its age calls for (in the policy's ``"legible"`` mode only as far
as its read-back stays at the floor:
:class:`~optical_memory.age.legibility.Legibility`), never up: deleting items
does not make pages younger. Renditions (and vision tokens) are made before the tier is set, so
a page never points at a tier image that does not exist. A page another
process deletes during the sweep is skipped, not an error.
"""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from optical_memory.age.renditions import Job, Renditions
from optical_memory.render.paging import PageInfo
from optical_memory.scope import Scope
from optical_memory.store import NotFoundError

if TYPE_CHECKING:  # pragma: no cover
    from optical_memory.age.policy import AgePolicy
    from optical_memory.store import PageRecord, Store, StoreStats


def age_pages(store: Store, aging: AgePolicy, renditions: Renditions, scope: Scope,
              totals: dict[Scope, StoreStats] | None = None
              ) -> tuple[list[PageRecord], dict[str, int]]:
    """Pages visible under ``scope`` (no PNG), each moved to the tier its age
    calls for; returns them and, per tier, how many moved into it.
    ``totals`` caches :meth:`Store.stats` per exact scope (filled here)."""
    pages = store.list_pages(scope, with_png=False)
    totals = {} if totals is None else totals
    moved: dict[str, int] = {}
    out = []
    jobs: dict[Scope, list[Job]] = {}
    for p in pages:
        info = PageInfo.of(p)
        if info is None:
            out.append(p)
            continue
        if p.scope not in totals:
            totals[p.scope] = store.stats(p.scope)
        st = totals[p.scope]
        turns, tokens = st.items - info.item_rank, st.text_tokens - info.token_rank
        age = turns if aging.unit == "turns" else tokens
        want = aging.tier_for_age(max(0, age)).name
        if renditions.legibility is not None:  # "legible": only while it still reads back
            want = renditions.legibility.allowed(p.meta, p.tier, want)
        if p.tier in aging.names and aging.rank(want) <= aging.rank(p.tier):
            out.append(p)
            continue
        jobs.setdefault(p.scope, []).append((p.id, want, (p.width, p.height), None))
        moved[want] = moved.get(want, 0) + 1
        out.append(replace(p, tier=want))
    gone: set[str] = set()
    for exact, todo in jobs.items():  # renditions (and tokens) first, in batches
        try:
            renditions.ensure(todo, exact)
        except NotFoundError:  # a page was deleted by another process meanwhile
            for job in todo:
                try:
                    renditions.ensure([job], exact)
                except NotFoundError:
                    gone.add(job[0])
        for page_id, want, _, _ in todo:
            if page_id in gone:
                continue
            try:
                store.set_tier(page_id, want, exact)
            except NotFoundError:
                gone.add(page_id)
    if gone:
        out = [p for p in out if p.id not in gone]
    return out, moved


__all__ = ["age_pages"]
