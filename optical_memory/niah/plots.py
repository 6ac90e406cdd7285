"""Tables and PNGs from cell results: the heatmap and the forgetting curve.

The heatmap follows gkamradt/LLMTest_NeedleInAHaystack: depth % in rows
(0 at the top), context length in columns, colours ``#F0496E → #EBB839 →
#0CD79F`` from score 0 to 1. The forgetting curve is what only this project
can draw: recall of the needle against the age tier, each tier placed at the
compression ratio (text tokens / vision tokens) it costs. matplotlib runs on
the Agg backend (no display needed).
"""
from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optical_memory.errors import EmptyInputError

GKAMRADT_COLOURS = ("#F0496E", "#EBB839", "#0CD79F")


@dataclass(frozen=True)
class GridTable:
    """Mean ``metric`` per (depth, length); ``nan`` where no cell ran."""

    depths: tuple[float, ...]
    lengths: tuple[int, ...]
    values: tuple[tuple[float, ...], ...]  # [depth][length]
    cells: int

    @property
    def mean(self) -> float:
        vals = [v for row in self.values for v in row if not math.isnan(v)]
        return sum(vals) / len(vals) if vals else float("nan")


@dataclass(frozen=True)
class TierRow:
    """One tier of the forgetting curve (means over its cells)."""

    tier: str
    side: int
    cells: int
    ratio: float
    page_ratio: float
    vision_tokens_per_page: float
    recall: float  # % (RULER's mean × 100 of string_match_all)
    retrieved: float  # %
    precision: float | None


def _select(results: Iterable[Mapping[str, Any]], **match: Any) -> list[Mapping[str, Any]]:
    out = [r for r in results if all(r.get(k) == v for k, v in match.items() if v is not None)]
    return out


def grid_table(results: Iterable[Mapping[str, Any]], *, tier: str | None = None,
               metric: str = "score") -> GridTable:
    """Depth × length table of the mean ``metric`` (``score``, ``retrieved``,
    ``answer_score``...) over cells of ``tier`` (every tier if ``None``)."""
    cells = [r for r in _select(results, tier=tier) if r.get(metric) is not None]
    if not cells:
        raise EmptyInputError(f"no cells with {metric!r}" + (f" at tier {tier!r}" if tier else ""))
    depths = tuple(sorted({float(r["depth_percent"]) for r in cells}))
    lengths = tuple(sorted({int(r["context_length"]) for r in cells}))
    acc: dict[tuple[float, int], list[float]] = {}
    for r in cells:
        key = (float(r["depth_percent"]), int(r["context_length"]))
        acc.setdefault(key, []).append(float(r[metric]))
    values = tuple(
        tuple(sum(acc[(d, n)]) / len(acc[(d, n)]) if (d, n) in acc else float("nan")
              for n in lengths)
        for d in depths
    )
    return GridTable(depths, lengths, values, len(cells))


def _tier_order(names: Iterable[str]) -> list[str]:
    from optical_memory.age import AgePolicy

    known = AgePolicy().names
    names = set(names)
    return [t for t in known if t in names] + sorted(names - set(known))


def forgetting_table(results: Iterable[Mapping[str, Any]]) -> list[TierRow]:
    """One row per tier, youngest first: mean ratio, recall and retrieval."""
    results = list(results)
    if not results:
        raise EmptyInputError("no cells to tabulate")
    rows = []
    for tier in _tier_order(r["tier"] for r in results):
        cells = [r for r in results if r["tier"] == tier]
        precs = [r["readback_precision"] for r in cells if r.get("readback_precision") is not None]
        page_ratios = [r["page_ratio"] for r in cells if r.get("page_ratio") is not None]
        rows.append(TierRow(
            tier=tier,
            side=int(cells[0].get("tier_size", [0])[0]),
            cells=len(cells),
            ratio=sum(r["ratio"] for r in cells) / len(cells),
            page_ratio=sum(page_ratios) / len(page_ratios) if page_ratios else float("nan"),
            vision_tokens_per_page=(
                sum(r["vision_tokens"] / max(1, r["pages"]) for r in cells) / len(cells)),
            recall=100.0 * sum(float(r["score"]) for r in cells) / len(cells),
            retrieved=100.0 * sum(float(r["retrieved"]) for r in cells) / len(cells),
            precision=sum(precs) / len(precs) if precs else None,
        ))
    return rows


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _length_label(n: int) -> str:
    if n >= 1000 and n % 1000 == 0:
        return f"{n / 1000:.0f}k"
    return f"{n / 1000:.1f}k" if n >= 1000 else str(n)


def heatmap(results: Iterable[Mapping[str, Any]], path: str | os.PathLike[str], *,
            tier: str | None = None, metric: str = "score", title: str | None = None,
            annotate: bool = True) -> Path:
    """Draw gkamradt's heatmap of ``metric`` (depth rows × length columns) to
    ``path`` (PNG); returns the path."""
    from matplotlib.colors import LinearSegmentedColormap

    table = grid_table(results, tier=tier, metric=metric)
    plt = _pyplot()
    cmap = LinearSegmentedColormap.from_list("gkamradt", list(GKAMRADT_COLOURS)).with_extremes(
        bad="#dddddd")
    nd, nl = len(table.depths), len(table.lengths)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.75 * nl + 3), max(4.0, 0.42 * nd + 2)))
    im = ax.imshow(table.values, cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(nl), [_length_label(n) for n in table.lengths], rotation=45, ha="right")
    ax.set_yticks(range(nd), [f"{d:.0f}" for d in table.depths])
    ax.set_xlabel("Context length (text tokens)")
    ax.set_ylabel("Depth percent")
    if annotate and nd * nl <= 400:
        for i, row in enumerate(table.values):
            for j, v in enumerate(row):
                if not math.isnan(v):
                    ax.text(j, i, f"{v:.2f}".rstrip("0").rstrip(".") if v < 1 else "1",
                            ha="center", va="center", fontsize=7, color="#222222")
    fig.colorbar(im, ax=ax, label=metric)
    ax.set_title(title or f"Needle in a haystack: {metric} ({table.mean * 100:.1f}% over "
                          f"{table.cells} cells{', tier ' + tier if tier else ''})")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def forgetting_curve(results: Iterable[Mapping[str, Any]], path: str | os.PathLike[str], *,
                     title: str | None = None, series: str | None = "haystack") -> Path:
    """Recall (and retrieval) against compression ratio, one point per tier,
    one line per value of ``series`` (e.g. ``haystack``); PNG at ``path``."""
    results = list(results)
    if not results:
        raise EmptyInputError("no cells to plot")
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for r in results:
        groups.setdefault(str(r.get(series, "all")) if series else "all", []).append(r)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, cells in sorted(groups.items()):
        rows = forgetting_table(cells)
        xs = [row.ratio for row in rows]
        line, = ax.plot(xs, [row.recall for row in rows], marker="o",
                        label=f"{name}: read-back recall")
        for row in rows:
            ax.annotate(f"{row.tier} ({row.side}px)\n{row.ratio:.1f}x, {row.recall:.1f}%",
                        (row.ratio, row.recall), textcoords="offset points", xytext=(4, -24),
                        fontsize=8, color=line.get_color())
    ax.set_xlabel("Compression ratio (text tokens / vision tokens) of the haystack at the tier")
    ax.set_ylabel("Needles recalled (%)")
    ax.set_ylim(-2, 105)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title(title or "Forgetting curve: recall vs age tier")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def budget_curves(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike[str], *,
                  target: str, title: str | None = None) -> Path:
    """Matched-budget curves (:mod:`optical_memory.niah.matched` rows) for
    ``target``: needles recalled vs budget, one line per method, one panel
    per history kind, and the share of the history each context carries."""
    sel = [r for r in rows if r["target"] == target]
    if not sel:
        raise EmptyInputError(f"no rows for target {target!r}")
    kinds = sorted({str(r["kind"]) for r in sel})
    methods = list(dict.fromkeys(str(r["method"]) for r in sel))
    budgets = sorted({int(r["budget"]) for r in sel})
    plt = _pyplot()
    fig, axes = plt.subplots(2, len(kinds), figsize=(5.5 * len(kinds), 7.5), squeeze=False)
    for j, kind in enumerate(kinds):
        for m in methods:
            recall, carried = [], []
            for b in budgets:
                cell = [r for r in sel if r["kind"] == kind and r["method"] == m
                        and r["budget"] == b]
                recall.append(100 * sum(bool(r["recalled"]) for r in cell) / max(1, len(cell)))
                carried.append(100 * sum(float(r["carried_share"]) for r in cell)
                               / max(1, len(cell)))
            axes[0][j].plot(budgets, recall, marker="o", label=m)
            axes[1][j].plot(budgets, carried, marker="o", label=m)
        axes[0][j].set_title(f"{kind}: needles recalled")
        axes[1][j].set_title(f"{kind}: share of the history in the context")
        for i, ylabel in ((0, "needles recalled (%)"), (1, "history carried (%)")):
            ax = axes[i][j]
            ax.set_xscale("log", base=2)
            ax.set_xticks(budgets, [_length_label(b) for b in budgets])
            ax.set_xlabel(f"budget ({target} tokens)")
            ax.set_ylabel(ylabel)
            ax.set_ylim(-2, 105)
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8, loc="best")
    fig.suptitle(title or f"Matched budget, {target}")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def markdown_grid(table: GridTable, *, percent: bool = True) -> str:
    """The grid as a markdown table (rows: depth %, columns: length)."""
    head = "| depth % | " + " | ".join(_length_label(n) for n in table.lengths) + " |"
    sep = "|---:|" + "---:|" * len(table.lengths)
    lines = [head, sep]
    for d, row in zip(table.depths, table.values):
        cells = ["" if math.isnan(v) else (f"{100 * v:.0f}" if percent else f"{v:.2f}")
                 for v in row]
        lines.append(f"| {d:.0f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_tiers(rows: Sequence[TierRow]) -> str:
    lines = ["| tier | side px | vision tok/page | haystack ratio | needle-page ratio | cells "
             "| recall % | retrieved % | page precision |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        prec = "" if r.precision is None else f"{r.precision:.3f}"
        lines.append(f"| {r.tier} | {r.side} | {r.vision_tokens_per_page:.0f} | {r.ratio:.1f}x | "
                     f"{r.page_ratio:.1f}x | {r.cells} | {r.recall:.1f} | {r.retrieved:.1f} | "
                     f"{prec} |")
    return "\n".join(lines)


def group_key(cell: Mapping[str, Any]) -> str:
    """``{haystack}_{kind}-{value_type}`` (``control-`` first for negative controls)."""
    control = "control-" if cell.get("omit_needle") else ""
    return f"{control}{cell.get('haystack', 'haystack')}_{cell.get('needle_kind', 'single')}-" \
           f"{cell.get('value_type', 'number')}"


def plot_folder(results: Iterable[Mapping[str, Any]], out_dir: str | os.PathLike[str], *,
                metric: str = "score") -> list[Path]:
    """One heatmap per (group, tier) and one forgetting curve per group with
    more than one tier; returns the PNG paths."""
    results = list(results)
    if not results:
        raise EmptyInputError("no cell results to plot")
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for r in results:
        groups.setdefault(group_key(r), []).append(r)
    paths = []
    folder = Path(out_dir)
    for name, cells in sorted(groups.items()):
        tiers = _tier_order(r["tier"] for r in cells)
        for tier in tiers:
            tier_cells = [r for r in cells if r["tier"] == tier and r.get(metric) is not None]
            if tier_cells:
                paths.append(heatmap(tier_cells, folder / f"heatmap_{name}_{tier}.png", tier=tier,
                                     metric=metric, title=f"{name}, tier {tier}: {metric} "
                                     f"({100 * grid_table(tier_cells, metric=metric).mean:.1f}%)"))
        if len(tiers) > 1:
            paths.append(forgetting_curve(cells, folder / f"forgetting_{name}.png",
                                          title=f"Forgetting curve: {name}"))
    return paths


__all__ = [
    "GKAMRADT_COLOURS",
    "GridTable",
    "TierRow",
    "budget_curves",
    "forgetting_curve",
    "forgetting_table",
    "grid_table",
    "group_key",
    "heatmap",
    "markdown_grid",
    "markdown_tiers",
    "plot_folder",
]
