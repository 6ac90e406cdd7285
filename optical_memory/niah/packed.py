"""The published form of a run's cells: one gzipped JSONL file.

A live run writes one JSON file per cell into its output folder (that is
what :func:`~optical_memory.niah.runner.run_grid` resumes from). To publish
or commit a run, :func:`pack_cells` folds the cells of one or more run
folders into a single ``*.jsonl.gz``: one JSON object per line, the cell
dicts unchanged, sorted by their settings and (length, depth, tier), written
with gzip's ``mtime`` set to 0 and no file name in the header, so the same
cells always give the same bytes. :func:`read_packed` reads it back;
:func:`cells_for` picks the cells of one :class:`NiahConfig` out of it (as
the cell file names would), and :func:`unpack_cells` writes those into a run
folder so a later run resumes from them.

    pack_cells(["niah-out"], "cells.jsonl.gz")
    heatmap(read_packed("cells.jsonl.gz"), "heatmap.png", tier="base")
"""
from __future__ import annotations

import gzip
import io
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from optical_memory.errors import InputError

SUFFIX = ".jsonl.gz"


def is_packed(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a packed cell file (by its ``.jsonl.gz`` suffix)."""
    return str(path).endswith(SUFFIX)


def cell_identity(cell: Mapping[str, Any]) -> tuple:
    """What makes a cell distinct: its settings, then (length, depth, tier).
    Sortable (``None`` sorts as the empty string / 0); the packed file is in
    this order, except that tiers go youngest first."""

    def s(key: str) -> str:
        v = cell.get(key)
        return "" if v is None else str(v)

    def f(key: str) -> float:
        v = cell.get(key)
        return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else 0.0

    return (s("haystack"), s("needle_kind"), s("value_type"), bool(cell.get("omit_needle")),
            s("model"), s("decoder"), s("target"), s("tokenizer"), f("seed"), f("font_px"),
            int(cell["context_length"]), float(cell["depth_percent"]), str(cell["tier"]))


def _line(cell: Mapping[str, Any]) -> str:
    return json.dumps(cell, ensure_ascii=False, separators=(",", ":"))


def write_packed(cells: Iterable[Mapping[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Write ``cells`` to ``path`` as sorted, deterministic gzipped JSONL.
    A later cell with the same :func:`cell_identity` replaces an earlier one."""
    from optical_memory.niah.plots import _tier_order
    from optical_memory.niah.runner import is_cell

    by_id: dict[tuple, Mapping[str, Any]] = {}
    for cell in cells:
        if not is_cell(cell):
            raise InputError(f"not a needle-in-a-haystack cell: {str(cell)[:80]}")
        by_id[cell_identity(cell)] = cell
    rank = {t: i for i, t in enumerate(_tier_order({k[-1] for k in by_id}))}
    keys = sorted(by_id, key=lambda k: (*k[:-1], rank[k[-1]]))
    body = "".join(_line(by_id[k]) + "\n" for k in keys).encode("utf-8")
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as gz:
        gz.write(body)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, out)
    return out


def read_packed(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every cell of a packed file, in its (sorted) order."""
    from optical_memory.niah.runner import is_cell

    out = []
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                cell = json.loads(line)
            except ValueError as exc:
                raise InputError(f"{path}, line {n}: not JSON ({exc})") from exc
            if not is_cell(cell):
                raise InputError(f"{path}, line {n}: not a needle-in-a-haystack cell")
            out.append(cell)
    return out


def pack_cells(folders: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
               path: str | os.PathLike[str], *, merge: bool = True) -> Path:
    """Pack the cell JSON files of run folder(s) into ``path``.

    merge: keep the cells already in ``path`` (those of settings or grid
           points the folders do not hold); the folders' cells win on a tie.
    Missing folders are skipped. Returns ``path``.
    """
    from optical_memory.niah.runner import load_results

    if isinstance(folders, str | os.PathLike):
        folders = [folders]
    cells: list[dict[str, Any]] = []
    if merge and Path(path).exists():
        cells.extend(read_packed(path))
    for folder in folders:
        if Path(folder).is_dir():
            cells.extend(load_results(folder))
    return write_packed(cells, path)


def _reader_matches(config, cell: Mapping[str, Any]) -> bool:
    if config.readback:
        return cell.get("decoder") == config.decoder
    return cell.get("decoder") is None and cell.get("model") == config.answer.model


def cells_for(config, cells: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The cells of ``config``'s grid, in grid order (length, depth, tier):
    those a run folder would hold under ``config.cell_name(...)`` (same
    haystack, needle kind and value type, control flag and reader; the font
    size when the config sets one). Settings the name does not hold (target,
    tokenizer, seed) are left for resume to check."""
    from optical_memory.niah.haystack import source_name

    hay = config.haystack if config.haystack in ("pydoc", "chat") else source_name(config.haystack)
    found: dict[tuple[int, float, str], dict[str, Any]] = {}
    for c in cells:
        if (c.get("haystack") == hay and c.get("needle_kind") == config.kind
                and c.get("value_type") == config.value_type
                and bool(c.get("omit_needle")) == config.omit_needle and _reader_matches(config, c)
                and (config.font_px is None or c.get("font_px") == float(config.font_px))):
            key = (int(c["context_length"]), float(c["depth_percent"]), c["tier"])
            found.setdefault(key, dict(c))
    grid = [(n, d, t) for n in config.lengths for d in config.depths for t in config.tiers or ()]
    return [found[k] for k in grid if k in found]


def unpack_cells(source: str | os.PathLike[str] | Iterable[Mapping[str, Any]],
                 folder: str | os.PathLike[str], config, *, overwrite: bool = False) -> int:
    """Write the cells of ``config``'s grid from ``source`` (a packed file or
    cell dicts) into run folder ``folder`` under their cell file names, so
    that ``run_grid(config, folder)`` resumes from them. Files already there
    are kept unless ``overwrite``. Returns how many files were written."""
    from optical_memory.niah.runner import _write

    cells = read_packed(source) if isinstance(source, str | os.PathLike) else list(source)
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    written = 0
    for c in cells_for(config, cells):
        dest = out / config.cell_name(c["context_length"], c["depth_percent"], c["tier"])
        if overwrite or not dest.exists():
            _write(dest, c)
            written += 1
    return written


__all__ = [
    "SUFFIX",
    "cell_identity",
    "cells_for",
    "is_packed",
    "pack_cells",
    "read_packed",
    "unpack_cells",
    "write_packed",
]
