"""The forgetting curve in the age policy's two modes, from one set of cells.

A run's cells read the needle's page(s) at every tier (what ``"fade"`` mode
shows: the page shrinks with age regardless). ``"legible"`` mode, with the
write-time gate measuring each page at every tier (``AgePolicy(verify=True)``),
moves a page to an older tier only while its read-back there stays at or
above the floor: :func:`legible_cells` applies that rule to the needle
page's measured read-back (``readback_precision`` of each tier's cell) and
returns, for every age tier, the cell of the tier the page is shown at.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from optical_memory.niah.plots import TierRow, _tier_order


def legible_cells(cells: Iterable[Mapping[str, Any]], floor: float,
                  tiers: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """For each (haystack, length, depth) with a cell at every tier: per age
    tier, a copy of the cell of the tier the page is shown at in legible mode
    (``shown_tier``), with ``tier`` the age tier."""
    groups: dict[tuple, dict[str, Mapping[str, Any]]] = {}
    for c in cells:
        key = (c.get("haystack"), c["context_length"], c["depth_percent"])
        groups.setdefault(key, {})[c["tier"]] = c
    out = []
    for by_tier in groups.values():
        order = list(tiers) if tiers is not None else _tier_order(by_tier)
        if any(t not in by_tier for t in order):
            continue
        shown, stopped = order[0], False
        for age_tier in order:
            if age_tier != order[0] and not stopped:  # a page stopped once stays there
                prec = by_tier[age_tier].get("readback_precision")
                if prec is not None and prec >= floor:
                    shown = age_tier
                else:
                    stopped = True
            out.append(dict(by_tier[shown], tier=age_tier, shown_tier=shown))
    return out


def markdown_modes(rows: Sequence[TierRow], shown: Mapping[str, Mapping[str, int]]) -> str:
    """The legible-mode table: per age tier, where its pages are shown."""
    lines = ["| age tier | shown at (cells) | vision tok/page | needle-page ratio | cells | "
             "recall % | page precision |", "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        where = ", ".join(f"{t} {n}" for t, n in shown.get(r.tier, {}).items())
        prec = "" if r.precision is None else f"{r.precision:.3f}"
        lines.append(f"| {r.tier} | {where} | {r.vision_tokens_per_page:.0f} | "
                     f"{r.page_ratio:.1f}x | {r.cells} | {r.recall:.1f} | {prec} |")
    return "\n".join(lines)


def shown_counts(cells: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """Per age tier, how many cells are shown at each tier."""
    out: dict[str, dict[str, int]] = {}
    for c in cells:
        row = out.setdefault(c["tier"], {})
        row[c["shown_tier"]] = row.get(c["shown_tier"], 0) + 1
    return out


__all__ = ["legible_cells", "markdown_modes", "shown_counts"]
