"""Needle-in-a-haystack suite: what survives optical compression, and where.

    from optical_memory.niah import NiahConfig, run_grid, heatmap, forgetting_curve

    cfg = NiahConfig(lengths=(1000, 4000), depths=(0, 50, 100), tiers=("base", "tiny"))
    summary = run_grid(cfg, "niah-out", workers=2)
    heatmap(summary.results, "niah-out/heatmap_base.png", tier="base")

Conventions: gkamradt/LLMTest_NeedleInAHaystack (grid, depth moved back to
a sentence end, one JSON per cell, heatmap colours) and NVIDIA RULER (needle
templates and kinds, ``string_match_all`` / ``string_match_part``), plus the
axis only this project has: the age tier (compression ratio) of the page
that holds the needle. A finished run is published as one gzipped JSONL
(:mod:`optical_memory.niah.packed`).
"""
from optical_memory.niah.answer import AnswerEndpoint, ask
from optical_memory.niah.haystack import Haystack, build_haystack, corpus_text, cut_to_tokens
from optical_memory.niah.needles import KINDS, VALUE_TYPES, NeedleSet, make_needles
from optical_memory.niah.packed import (
    cells_for,
    pack_cells,
    read_packed,
    unpack_cells,
    write_packed,
)
from optical_memory.niah.plots import forgetting_curve, forgetting_table, grid_table, heatmap
from optical_memory.niah.runner import (
    NiahConfig,
    RunSummary,
    linspace,
    load_results,
    run_cell,
    run_grid,
)
from optical_memory.niah.scoring import mean_score, string_match_all, string_match_part

__all__ = [
    "KINDS",
    "VALUE_TYPES",
    "AnswerEndpoint",
    "Haystack",
    "NeedleSet",
    "NiahConfig",
    "RunSummary",
    "ask",
    "build_haystack",
    "cells_for",
    "corpus_text",
    "cut_to_tokens",
    "forgetting_curve",
    "forgetting_table",
    "grid_table",
    "heatmap",
    "linspace",
    "load_results",
    "make_needles",
    "mean_score",
    "pack_cells",
    "read_packed",
    "run_cell",
    "run_grid",
    "string_match_all",
    "string_match_part",
    "unpack_cells",
    "write_packed",
]
