"""Run a needle-in-a-haystack grid through the memory, one JSON per cell.

A *cell* is (context length, depth %, tier). For every (length, depth) the
haystack is built with its needles, stored in a fresh in-memory
:class:`~optical_memory.memory.OpticalMemory` (``keep_last=0``, so every
turn is paged), rendered once, and then for each tier:

- **retrieved**: ``retrieve(key)``'s top hit is the needle's item, its span
  lies inside the needle, and its page is one that holds the needle;
- **read-back**: only the page(s) holding the needle are decoded at the tier
  (``decode(page, tier=...)``, the same Lanczos rendition aging stores) and
  scored with RULER's ``string_match_all`` against the needle values;
- optionally **answer**: the question is asked over all pages at the tier
  (:mod:`optical_memory.niah.answer`) and scored the same way.

Each cell's JSON has gkamradt's fields ``{model, context_length,
depth_percent, version, needle, model_response, score,
test_duration_seconds}`` plus ours (tokens, ratio, tier, decoder...).
``score`` is in [0, 1]. Cells whose JSON exists are skipped on resume;
(length, depth) pairs run in parallel in a process pool. The per-cell files
are the live form of a run; to publish one, pack its folder into a single
``*.jsonl.gz`` (:func:`optical_memory.niah.packed.pack_cells`), which
:func:`load_results` reads as well.
"""
from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from optical_memory.config import DEFAULT_DECODER
from optical_memory.errors import ConfigError, InputError
from optical_memory.niah.answer import AnswerEndpoint, ask
from optical_memory.niah.haystack import Haystack, banned_text, build_haystack, source_name
from optical_memory.niah.needles import KINDS, VALUE_TYPES, NeedleSet, make_needles
from optical_memory.niah.scoring import string_match_all, string_match_part
from optical_memory.tokens import DEFAULT_TARGET, DEFAULT_TOKENIZER

logger = logging.getLogger(__name__)

VERSION = 1
_SCOPE_USER = "niah"
Progress = Callable[[int, int, "list[dict[str, Any]]"], None]


@dataclass(frozen=True)
class NiahConfig:
    """What to run. ``tiers=None`` runs every tier of the default
    :class:`~optical_memory.aging.AgePolicy`. ``omit_needle`` is a negative
    control: the queried needles are left out, and their would-be page is
    read and scored (must score 0). ``readback=False`` skips decoding
    (answer-only runs). ``font_px`` overrides the font size of the memory's
    default layout (:func:`~optical_memory.memory.default_render_config`);
    ``layout_decoder`` draws the pages in the layout calibrated for another
    decoder than the one reading them (e.g. tesseract's pages read by
    ``native``)."""

    lengths: tuple[int, ...]
    depths: tuple[float, ...]
    tiers: tuple[str, ...] | None = None
    haystack: str = "pydoc"
    kind: str = "single"
    value_type: str = "number"
    decoder: str = DEFAULT_DECODER
    decoder_options: Mapping[str, Any] = field(default_factory=dict)
    tokenizer: str = DEFAULT_TOKENIZER
    target: str = DEFAULT_TARGET
    seed: int = 0
    font_px: float | None = None
    readback: bool = True
    omit_needle: bool = False
    answer: AnswerEndpoint | None = None
    layout_decoder: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "lengths", tuple(int(x) for x in self.lengths))
        object.__setattr__(self, "depths", tuple(float(x) for x in self.depths))
        if not self.lengths or not self.depths:
            raise InputError(f"need at least one length and one depth "
                             f"(got {list(self.lengths)} and {list(self.depths)})")
        if min(self.lengths) < 64:
            raise InputError(f"context lengths must be >= 64 tokens (got {min(self.lengths)})")
        if not all(0.0 <= d <= 100.0 for d in self.depths):
            raise InputError(f"depths must be percentages in [0, 100] (got {list(self.depths)})")
        if self.kind not in KINDS:
            raise InputError(f"needle kind must be one of {KINDS} (got {self.kind!r})")
        if self.value_type not in VALUE_TYPES:
            raise InputError(f"value type must be one of {VALUE_TYPES} (got {self.value_type!r})")
        if not self.readback and self.answer is None:
            raise InputError("nothing to measure: readback=False and no answer endpoint")
        if self.font_px is not None and not (
                isinstance(self.font_px, int | float) and not isinstance(self.font_px, bool)
                and math.isfinite(self.font_px) and self.font_px > 0):
            raise InputError(f"font_px must be a positive number of px (got {self.font_px!r})")
        from optical_memory.age import AgePolicy

        policy = AgePolicy()
        tiers = policy.names if self.tiers is None else tuple(self.tiers)
        for t in tiers:
            policy.tier(t)  # ConfigError naming the known tiers
        object.__setattr__(self, "tiers", tiers)
        object.__setattr__(self, "decoder_options", dict(self.decoder_options))

    @property
    def tag(self) -> str:
        control = "control-" if self.omit_needle else ""
        control += f"font{self.font_px:g}-" if self.font_px else ""
        reader = self.decoder if self.readback else f"answer-{_slug(self.answer.model)}"  # type: ignore[union-attr]
        return f"{control}{source_name(self.haystack)}_{self.kind}-{self.value_type}_{reader}"

    def cell_name(self, length: int, depth: float, tier: str) -> str:
        return f"{self.tag}_len_{length}_depth_{int(round(depth * 100))}_{tier}.json"

    def differences(self, cell: Mapping[str, Any]) -> list[str]:
        """Settings of a stored cell that differ from this run's (the file
        name does not hold the target, tokenizer, seed or font size)."""
        from optical_memory.tokens import get_target

        want: dict[str, Any] = {
            "target": get_target(self.target).name,
            "tokenizer": self.tokenizer,
            "seed": self.seed,
            "needle_kind": self.kind,
            "value_type": self.value_type,
            "omit_needle": self.omit_needle,
            "decoder": self.decoder if self.readback else None,
        }
        if self.font_px is not None:
            want["font_px"] = float(self.font_px)
        return [f"{k} {cell.get(k)!r} (this run: {v!r})"
                for k, v in want.items() if cell.get(k) != v]


@dataclass(frozen=True)
class RunSummary:
    """results: every cell's dict (run now or loaded); ran / skipped: cells."""

    results: list[dict[str, Any]]
    ran: int
    skipped: int
    seconds: float


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "-" for c in text).strip("-") or "model"


def cell_seed(seed: int, length: int, depth: float) -> int:
    """The needle seed of one (length, depth): fixed by the run seed."""
    return seed * 1_000_003 + length * 101 + int(round(depth * 100))


# --------------------------------------------------------------------------
# One (length, depth): build, store, then measure every tier
# --------------------------------------------------------------------------


def _pages_holding(pages, item_id: str, start: int, end: int) -> list:
    """Pages whose span of ``item_id`` overlaps ``[start, end)`` (for an
    empty range: the page where ``start`` falls)."""
    out = []
    for p in pages:
        for s in p.spans:
            if s.item_id != item_id:
                continue
            if (start < s.end and end > s.start) if end > start else (s.start <= start <= s.end):
                out.append(p)
                break
    if end == start and len(out) > 1:
        out = out[:1]
    return out


def _excerpt(readback: str, needle: str, pad: int = 40) -> str:
    """The part of ``readback`` best aligned with ``needle``, with context."""
    from rapidfuzz import fuzz

    from optical_memory.decode import normalize_whitespace

    text = normalize_whitespace(readback)
    if not text:
        return ""
    al = fuzz.partial_ratio_alignment(needle, text)
    assert al is not None  # None only below a score_cutoff, and none is given
    return text[max(0, al.dest_start - pad):al.dest_end + pad]


def _store(mem, hay: Haystack) -> tuple[str, str]:
    """Add the haystack; returns (the target's item id, its stored text)."""
    if hay.kind == "text":
        res = mem.add(hay.text, user_id=_SCOPE_USER)
    else:
        res = mem.add(list(hay.messages or ()), user_id=_SCOPE_USER)
        mem.compact(user_id=_SCOPE_USER, force=True)
    item_id = res.item_ids[hay.target.index]
    item = mem.get_item(item_id, user_id=_SCOPE_USER)
    return item_id, (item.text or "") if item else ""


def _scope():
    from optical_memory.store import Scope

    return Scope(_SCOPE_USER, None, None)


def run_cell(config: NiahConfig, length: int, depth: float,
             tiers: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Measure one (length, depth) at ``tiers`` (default: the config's).
    Returns one result dict per tier."""
    from optical_memory import __version__
    from optical_memory.memory import OpticalMemory
    from optical_memory.tokens import get_counter

    tiers = tuple(tiers or config.tiers or ())
    t_build = time.perf_counter()
    counter = get_counter(config.tokenizer)
    needles: NeedleSet = make_needles(config.kind, config.value_type,
                                      seed=cell_seed(config.seed, length, depth),
                                      haystack=banned_text(config.haystack))
    hay = build_haystack(config.haystack, length, depth, needles, counter,
                         seed=cell_seed(config.seed, length, depth),
                         omit_targets=config.omit_needle)
    render_config = None
    if config.font_px or config.layout_decoder:
        from dataclasses import replace

        from optical_memory.memory import default_render_config

        render_config = default_render_config(config.target,
                                              config.layout_decoder or config.decoder)
        if config.font_px:
            render_config = replace(render_config, font_size=float(config.font_px))
    out = []
    with OpticalMemory(":memory:", target=config.target, tokenizer=config.tokenizer,
                       decoder=config.decoder, keep_last=0, render_config=render_config,
                       decoder_options=config.decoder_options) as mem:
        item_id, item_text = _store(mem, hay)
        pages = mem.list_pages(user_id=_SCOPE_USER)
        offset = 0 if hay.kind == "text" else item_text.find(
            str(hay.messages[hay.target.index]["content"]))  # type: ignore[index]
        t_start, t_end = hay.target.start + max(0, offset), hay.target.end + max(0, offset)
        if not config.omit_needle and item_text[t_start:t_end] != needles.block:
            raise RuntimeError(f"needle not found where placed in item {item_id} "
                               f"({t_start}:{t_end})")
        holding = _pages_holding(pages, item_id, t_start, t_end)
        ranks = _retrieval_ranks(mem, needles, item_id, item_text, pages,
                                 omitted=config.omit_needle)
        stats = mem.stats(user_id=_SCOPE_USER)
        build_s = time.perf_counter() - t_build
        master = mem.master_size
        page_text = sum(int(p.meta.get("memory", {}).get("text_tokens", 0)) for p in holding)
        for tier in tiers:
            t0 = time.perf_counter()
            w, h = mem.aging.size(tier, master)
            v_page = mem.aging.tokens(tier, mem.target, master)
            cell: dict[str, Any] = {
                "model": config.decoder if config.readback else config.answer.model,  # type: ignore[union-attr]
                "context_length": length,
                "depth_percent": depth,
                "version": f"optical-memory {__version__} niah/{VERSION}",
                "needle": needles.block,
                "model_response": "",
                "score": 0.0,
                "test_duration_seconds": 0.0,
                # ours
                "haystack": (config.haystack if config.haystack in ("pydoc", "chat")
                             else source_name(config.haystack)),
                "needle_kind": config.kind,
                "value_type": config.value_type,
                "keys": list(needles.keys),
                "references": list(needles.references),
                "question": needles.question,
                "omit_needle": config.omit_needle,
                "depth_actual": round(100 * hay.depth_actual, 3),
                "tier": tier,
                "tier_size": [w, h],
                "target": mem.target.name,
                "decoder": config.decoder if config.readback else None,
                "tokenizer": counter.name,
                "font_px": mem.render_config.font_size,
                "layout": {"font": os.path.basename(mem.render_config.font_path or "default"),
                           "font_px": mem.render_config.font_size,
                           "line_spacing": mem.render_config.line_spacing,
                           "page": list(master)},
                "text_tokens": stats.text_tokens,
                "pages": len(pages),
                "vision_tokens": v_page * len(pages),
                "ratio": round(stats.text_tokens / (v_page * len(pages)), 3),
                "needle_pages": len(holding),
                "page_text_tokens": page_text,
                "page_vision_tokens": v_page * len(holding),
                "page_ratio": round(page_text / (v_page * len(holding)), 3) if holding else None,
                "retrieved": sum(r == 0 for r in ranks) / len(ranks),
                "retrieved_rank": ranks,
                "build_seconds": round(build_s, 3),
                "seed": config.seed,
            }
            if config.readback:
                decoded = [mem.decode(p.id, tier=tier, user_id=_SCOPE_USER) for p in holding]
                readback = "\n".join(d.text for d in decoded)
                cell["model_response"] = _excerpt(readback, needles.block)
                cell["score"] = string_match_all(readback, needles.references)
                cell["score_part"] = string_match_part(readback, needles.references)
                precs = [d.precision for d in decoded if d.precision is not None]
                cell["readback_precision"] = round(sum(precs) / len(precs), 4) if precs else None
                cell["decode_seconds"] = round(sum(d.seconds for d in decoded), 3)
            if config.answer is not None:
                pngs = [mem.tier_png(p.id, tier, user_id=_SCOPE_USER) for p in pages]
                ans = ask(config.answer, pngs, needles.question, config.value_type)
                cell["answer_model"] = ans.model
                cell["answer_response"] = ans.text
                cell["answer_score"] = string_match_all(ans.text, needles.references)
                cell["answer_score_part"] = string_match_part(ans.text, needles.references)
                cell["answer_seconds"] = round(ans.seconds, 3)
                cell["answer_usage"] = ans.usage
                if not config.readback:
                    cell["model_response"] = ans.text
                    cell["score"] = cell["answer_score"]
            # the render is shared by the tiers: each carries its share
            cell["test_duration_seconds"] = round(
                time.perf_counter() - t0 + build_s / len(tiers), 3)
            out.append(cell)
    return out


def _retrieval_ranks(mem, needles: NeedleSet, item_id: str, item_text: str, pages,
                     *, omitted: bool) -> list[int | None]:
    """For each queried key: the rank of the first hit that is the needle
    (its item, a span inside a target needle of that key, a page holding
    it), or ``None`` if none of the top 5 is."""
    ranks: list[int | None] = []
    for key in needles.keys:
        if omitted:
            ranks.append(None)
            continue
        ranges = []
        for n in needles.targets:
            if n.key == key:
                at = item_text.find(n.text)
                ranges.append((at, at + len(n.text)))
        lo, hi = min(r[0] for r in ranges), max(r[1] for r in ranges)
        ok_pages = {p.id for p in _pages_holding(pages, item_id, lo, hi)}
        rank = None
        for i, h in enumerate(mem.retrieve(key, k=5, user_id=_SCOPE_USER)):
            if (h.item_id == item_id and h.page_id in ok_pages and h.span is not None
                    and lo <= h.span[0] < hi):
                rank = i
                break
        ranks.append(rank)
    return ranks


# --------------------------------------------------------------------------
# The grid
# --------------------------------------------------------------------------


def _write(path: Path, cell: Mapping[str, Any]) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(cell, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def is_cell(data: Any) -> bool:
    return (isinstance(data, dict)
            and {"context_length", "depth_percent", "tier", "score"} <= set(data))


def load_results(folder: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every cell JSON in ``folder`` (other JSON files are ignored), or every
    cell of a packed ``*.jsonl.gz`` file (:mod:`optical_memory.niah.packed`)."""
    from optical_memory.niah.packed import is_packed, read_packed

    if is_packed(folder) and Path(folder).is_file():
        return read_packed(folder)
    out = []
    for p in sorted(Path(folder).glob("*.json")):
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            logger.warning("skipping unreadable %s", p)
            continue
        if is_cell(data):
            out.append(data)
    return out


def run_grid(config: NiahConfig, out_dir: str | os.PathLike[str], *, workers: int = 1,
             resume: bool = True, progress: Progress | None = None) -> RunSummary:
    """Run every (length, depth, tier) cell of ``config`` into ``out_dir``.

    resume:   skip cells whose JSON exists (a (length, depth) whose tiers are
              all done is not even built).
    workers:  processes; each runs whole (length, depth) pairs (decoders such
              as tesseract are single-threaded, so one per core).
    progress: called as ``progress(done_cells, total_cells, new_cells)``.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InputError(f"workers must be an int >= 1 (got {workers!r})")
    t0 = time.perf_counter()
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    tasks: list[tuple[int, float, tuple[str, ...]]] = []
    skipped = 0
    for length in config.lengths:
        for depth in config.depths:
            todo = tuple(t for t in config.tiers or () if not (
                resume and _done(folder / config.cell_name(length, depth, t), config)))
            skipped += len(config.tiers or ()) - len(todo)
            if todo:
                tasks.append((length, depth, todo))
    total = skipped + sum(len(t[2]) for t in tasks)
    done = skipped
    if progress is not None:
        progress(done, total, [])

    def finish(cells: list[dict[str, Any]]) -> None:
        nonlocal done
        for cell in cells:
            _write(folder / config.cell_name(cell["context_length"], cell["depth_percent"],
                                             cell["tier"]), cell)
        done += len(cells)
        if progress is not None:
            progress(done, total, cells)

    # longest haystacks first: the pool's tail is then short cells
    tasks.sort(key=lambda t: -t[0])
    if workers == 1 or len(tasks) <= 1:
        for length, depth, tiers in tasks:
            finish(run_cell(config, length, depth, tiers))
    else:
        with ProcessPoolExecutor(max_workers=min(workers, len(tasks))) as pool:
            futures = [pool.submit(run_cell, config, *t) for t in tasks]
            try:
                for fut in as_completed(futures):
                    finish(fut.result())
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
    results = []
    for length in config.lengths:
        for depth in config.depths:
            for t in config.tiers or ():
                path = folder / config.cell_name(length, depth, t)
                if path.exists():
                    results.append(json.loads(path.read_text(encoding="utf-8")))
    return RunSummary(results, total - skipped, skipped, time.perf_counter() - t0)


def _done(path: Path, config: NiahConfig) -> bool:
    """Whether ``path`` holds this cell already, made with ``config``'s
    settings; :class:`ConfigError` if it was made with others (resuming would
    report their numbers under this run's names)."""
    if not path.exists():
        return False
    try:
        cell = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"cannot resume from {path}: {exc}; delete it or use --no-resume") from exc
    diffs = config.differences(cell) if isinstance(cell, dict) else ["not a cell object"]
    if diffs:
        raise ConfigError(
            f"{path.name} in {path.parent} was made with other settings: {'; '.join(diffs)}. "
            "Use another --out folder, or --no-resume to overwrite its cells."
        )
    return True


def linspace(lo: float, hi: float, n: int) -> list[float]:
    """``n`` evenly spaced values from ``lo`` to ``hi`` (gkamradt's linear grid)."""
    if n < 1:
        raise InputError(f"need n >= 1 (got {n})")
    if n == 1:
        return [float(lo)]
    return [lo + (hi - lo) * i / (n - 1) for i in range(n)]


def config_dict(config: NiahConfig) -> dict[str, Any]:
    d = asdict(config)
    if config.answer is not None:
        d["answer"] = {"base_url": config.answer.base_url, "model": config.answer.model}
    return d


__all__ = [
    "VERSION",
    "NiahConfig",
    "RunSummary",
    "cell_seed",
    "config_dict",
    "is_cell",
    "linspace",
    "load_results",
    "run_cell",
    "run_grid",
]
