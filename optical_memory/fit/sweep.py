"""Rendering with the recommended layout (:func:`fit`) and measuring layouts
(:func:`calibrate`).

:func:`fit` renders text with :func:`~optical_memory.fit.recommended_config`'s
layout and, with ``verify=True``, reads every page back and steps the font
size up until every page holds. :func:`calibrate` renders the first page of
deterministic sample passages (:func:`sample_texts`) over a grid of layouts,
reads them back and records the precision per layout: a new
:class:`~optical_memory.fit.Calibration`, written to the user's data folder
(never over the calibration shipped in the package).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import DEFAULT_READBACK, LAYOUT_DECODER
from ..errors import InputError
from ..render import RenderConfig, Renderer, RenderItem, Turn
from ..tokens import get_counter
from ..types import Page
from .calibration import (
    _CACHE,
    Calibration,
    CalibrationEntry,
    check_writable,
    font_path,
    load_calibration,
    user_calibration_path,
)
from .choose import (
    _check_script,
    _choose,
    _round_size,
    decoder_options,
    detect_script,
    page_precision,
)

if TYPE_CHECKING:  # numpy is imported by the functions that use it
    import numpy as np

log = logging.getLogger(__name__)

#: Default sweep of :func:`calibrate` (px at the master side).
DEFAULT_SIZES = (8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0)

Progress = Callable[[int, int], None]


@dataclass
class FitResult:
    """Pages rendered for a target, with the layout chosen for them.

    config: the layout of ``pages`` (after any step-up, see :func:`fit`).
    expected_precision: the calibrated mean precision of that layout.
    page_precision: measured precision per page (``verify=True``), else None.
    decoder / threshold: what the pages were (to be) verified with.
    attempts: (font size, min page precision or None) per layout tried.
    """

    pages: list[Page]
    config: RenderConfig
    expected_precision: float
    page_precision: list[float] | None = None
    decoder: str = LAYOUT_DECODER
    threshold: float = DEFAULT_READBACK
    attempts: list[tuple[float, float | None]] = field(default_factory=list)

    @property
    def font_size(self) -> float:
        return float(self.config.font_size)

    @property
    def ok(self) -> bool | None:
        """Every page measured ≥ the threshold (None when not verified)."""
        if self.page_precision is None:
            return None
        return all(p >= self.threshold for p in self.page_precision)


def _items_text(items: Sequence[RenderItem | Turn]) -> str:
    return "\n".join(it.content if isinstance(it, Turn) else it.text for it in items)


def fit(
    text_or_items: str | Iterable[RenderItem | Turn],
    target: str = "deepseek-ocr:base",
    *,
    decoder: str = LAYOUT_DECODER,
    threshold: float = DEFAULT_READBACK,
    verify: bool = False,
    script: str | None = None,
    calibration: Calibration | None = None,
    workers: int | None = None,
    options: dict[str, Any] | None = None,
    progress: Progress | None = None,
) -> FitResult:
    """Render ``text_or_items`` with the recommended layout for ``target``.

    script: "latin" or "cjk"; None detects it from the text.
    threshold: read-back floor of the layout and of verification (default:
        the memory's :data:`~optical_memory.config.DEFAULT_READBACK`).
    verify: decode every page with ``decoder`` (``decode_many``, ``workers``
        processes, decoder ``options``), record the measured precision in
        ``page.meta["fit"]`` and in ``FitResult.page_precision``. If any page
        reads back below ``threshold``, the *whole* input is re-rendered at
        the next calibrated font size up (same face, mode and spacing) and
        verified again — whole, so page breaks, spans and markdown context
        stay consistent — until every page holds or the calibrated sizes run
        out; then the last (largest) attempt is returned with ``ok`` False
        and a warning logged.

    Every page gets ``page.meta["fit"]`` = {target, decoder, font_size,
    newline_mode, expected_precision, precision (None unless verified)}.
    """
    items: str | list[RenderItem | Turn]
    if isinstance(text_or_items, str):
        items = text_or_items
        sample = text_or_items
    else:
        items = list(text_or_items)
        sample = _items_text(items)
    script = _check_script(script or detect_script(sample))
    choice = _choose(target, decoder, threshold, script, calibration)
    expected = {choice.config.font_size: choice.entry.mean_precision}
    cal = calibration or load_calibration()
    for e in cal.select(decoder, script):
        if e.family == choice.entry.family:
            expected[_round_size(e.effective_font_size * choice.scale)] = e.mean_precision
    ladder = [choice.config, *choice.ladder]
    opts = {**decoder_options(decoder, script, max(choice.config.width, choice.config.height)),
            **(options or {})}
    attempts: list[tuple[float, float | None]] = []
    result: FitResult | None = None
    for cfg in ladder:
        pages = _render(items, cfg)
        exp = expected.get(cfg.font_size, choice.entry.mean_precision)
        measured: list[float] | None = None
        if verify:
            from ..decode import decode_many

            reads = decode_many(pages, decoder=decoder, workers=workers, options=opts,
                                progress=progress)
            measured = [page_precision(p, r.text) for p, r in zip(pages, reads)]
        for i, p in enumerate(pages):
            p.meta["fit"] = {
                "target": target, "decoder": decoder, "font_size": cfg.font_size,
                "newline_mode": cfg.newline_mode, "expected_precision": exp,
                "precision": measured[i] if measured is not None else None,
            }
        attempts.append((cfg.font_size, min(measured) if measured else None))
        result = FitResult(pages=pages, config=cfg, expected_precision=exp,
                           page_precision=measured, decoder=decoder, attempts=attempts,
                           threshold=threshold)
        if not verify or result.ok:
            return result
        worst = min(range(len(pages)), key=lambda i: measured[i])  # type: ignore[index]
        log.info("fit: page %d read back at %.4f < %.3f at %.2f px; stepping up",
                 worst, measured[worst], threshold, cfg.font_size)  # type: ignore[index]
    assert result is not None
    log.warning("fit: no calibrated font size reads back at >= %.3f with %s "
                "(largest %.2f px: worst page %.4f)", threshold, decoder,
                result.config.font_size, attempts[-1][1])
    return result


def _render(items: str | list[RenderItem | Turn], cfg: RenderConfig) -> list[Page]:
    r = Renderer(cfg)
    return r.render_text(items) if isinstance(items, str) else r.render_items(items)


# --------------------------------------------------------------------------
# Sample pages and calibration


def sample_texts(script: str, samples: int, *, split: str = "calibrate",
                 min_chars: int = 40_000) -> list[str]:
    """``samples`` deterministic source passages of at least ``min_chars``.

    latin: ``pydoc_data.topics`` (every Python install has it), topics sorted
    by name; split "calibrate" uses the even-numbered topics, "report" the
    odd-numbered ones, so layouts are chosen on other text than they are
    reported on. Passage k starts at topic k·n/samples of its split and runs
    on through the following topics.
    cjk: ``optical_memory/data/zh_prose.txt`` (16 paragraphs); passages start
    at even ("calibrate") or odd ("report") paragraphs and wrap around the
    corpus (it is shorter than a dense page).
    """
    _check_script(script)
    if split not in ("calibrate", "report"):
        raise InputError(f"split must be 'calibrate' or 'report' (got {split!r})")
    if samples < 1:
        raise InputError(f"samples must be >= 1 (got {samples})")
    if script == "latin":
        from pydoc_data.topics import topics

        keys = sorted(topics)
        chunks = [topics[k].strip("\n") for k in keys]
    else:
        raw = (resources.files("optical_memory") / "data" / "zh_prose.txt").read_text("utf-8")
        chunks = [p.strip() for p in raw.split("\n") if p.strip()]
    offset = 0 if split == "calibrate" else 1
    part = chunks[offset::2]
    out = []
    for k in range(samples):
        start = (k * len(part)) // samples
        pieces: list[str] = []
        size, j = 0, 0
        while size < min_chars:
            if script == "latin":  # on through the split's following topics
                piece = part[(start + j) % len(part)]
            else:  # on through the whole corpus, wrapping around
                piece = chunks[(2 * start + offset + j) % len(chunks)]
            pieces.append(piece)
            size += len(piece) + 2
            j += 1
        out.append(("\n\n" if script == "latin" else "\n").join(pieces))
    return out


def resample(pixels: np.ndarray, side: int) -> np.ndarray:
    """A page resampled (Lanczos) so its long side is ``side`` px (aged page)."""
    import numpy as np
    from PIL import Image

    h, w = pixels.shape[:2]
    if max(h, w) == side:
        return pixels
    scale = side / max(h, w)
    img = Image.fromarray(np.ascontiguousarray(pixels)).resize(
        (max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.LANCZOS)
    return np.asarray(img)


@dataclass(frozen=True)
class SamplePage:
    """First page of one sample passage at one layout."""

    page: Page
    tokens: int  # o200k tokens of the source text the page holds
    chars: int


def first_page(source: str, cfg: RenderConfig, tokenizer: str = "o200k_base") -> SamplePage:
    """Lay out ``source`` with ``cfg`` and draw only its first page."""
    r = Renderer(cfg)
    layout = r.layout(source)[0]
    page = r.draw(layout)
    held = "".join(source[s.start:s.end] for s in page.spans)
    return SamplePage(page=page, tokens=get_counter(tokenizer).count(held), chars=len(held))


def calibrate(
    *,
    sizes: Sequence[float] = DEFAULT_SIZES,
    decoders: Sequence[str] = (LAYOUT_DECODER,),
    page_sides: Sequence[int] = (1024,),
    samples: int = 6,
    scripts: Sequence[str] = ("latin",),
    newline_modes: Sequence[str] = ("break", "marker"),
    line_spacings: Sequence[float] = (1.2,),
    fonts: Sequence[str] = ("sans",),
    hinting: str = "normal",
    margin: int = 4,
    master_side: int = 1024,
    workers: int = 2,
    split: str = "calibrate",
    out: str | Path | None = None,
    write: bool = True,
    options: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
) -> Calibration:
    """Measure read-back precision over a grid of layouts; write the JSON.

    Each combination of script × font × newline mode × line spacing × size is
    rendered at ``master_side``² on the first page of ``samples`` passages
    (:func:`sample_texts`, ``split``); each side in ``page_sides`` below
    ``master_side`` reads the page resampled down (Lanczos) and upscaled back
    by the decoder; every decoder reads every page (``decode_many``,
    ``workers`` processes). CJK is rendered only in break mode (its corpus has
    no newline-heavy text). ``hinting``: :attr:`RenderConfig.hinting` of every
    page. Writes to ``out`` (default: :func:`user_calibration_path`,
    ``calibration.json`` in the user's data folder) unless ``write`` is
    False; ``out`` naming the calibration shipped inside the package is a
    :class:`ConfigError` (checked before anything is measured). Load the
    result with ``load_calibration(path)``. ``options``: keywords for every
    decoder, over :func:`~optical_memory.fit.decoder_options` (e.g. an
    endpoint's ``base_url`` and ``model``). ``progress(done, total)`` counts
    page reads.
    """
    import numpy as np

    from ..decode import decode_many

    dest: Path | None = None
    if write:  # before the sweep: a refused path costs nothing
        dest = check_writable(user_calibration_path() if out is None else out)
    for s in scripts:
        _check_script(s)
    for f in fonts:
        font_path(f)
    if any(side > master_side or side < 1 for side in page_sides):
        raise InputError(
            f"page_sides must be in [1, master_side={master_side}] (got {list(page_sides)})")
    t0 = time.perf_counter()
    # Render every sample page once.
    jobs: list[tuple[tuple, SamplePage]] = []
    for script in scripts:
        passages = sample_texts(script, samples, split=split)
        modes = newline_modes if script == "latin" else ("break",)
        for font in fonts:
            for mode in modes:
                for ls in line_spacings:
                    for size in sizes:
                        cfg = RenderConfig(width=master_side, height=master_side,
                                           font_size=float(size), line_spacing=float(ls),
                                           margin=margin, newline_mode=mode,
                                           font_path=font_path(font), hinting=hinting)
                        for src in passages:
                            jobs.append(((script, font, mode, float(ls), float(size)),
                                         first_page(src, cfg)))
    total = len(jobs) * len(page_sides) * len(decoders)
    done = 0
    scores: dict[tuple, list[tuple[float, int, int]]] = {}
    for decoder in decoders:
        for side in page_sides:
            for script in scripts:
                mine = [(k, sp) for k, sp in jobs if k[0] == script]
                if not mine:
                    continue
                images = [resample(sp.page.pixels, side) for _, sp in mine]

                def _tick(d: int, n: int, base: int = done) -> None:
                    if progress is not None:
                        progress(base + d, total)

                reads = decode_many(images, decoder=decoder, workers=workers,
                                    options={**decoder_options(decoder, script, master_side),
                                             **(options or {})},
                                    progress=_tick)
                done += len(mine)
                for (key, sp), r in zip(mine, reads):
                    scores.setdefault((decoder, side, *key), []).append(
                        (page_precision(sp.page, r.text), sp.tokens, sp.chars))
    entries = []
    for (decoder, side, script, font, mode, ls, size), vals in sorted(scores.items()):
        precs = [v[0] for v in vals]
        entries.append(CalibrationEntry(
            decoder=decoder, script=script, side=side, master_side=master_side, font=font,
            newline_mode=mode, line_spacing=ls, font_size=size, margin=margin,
            mean_precision=round(float(np.mean(precs)), 5),
            min_precision=round(float(min(precs)), 5),
            tokens_per_page=round(float(np.mean([v[1] for v in vals])), 1),
            chars_per_page=round(float(np.mean([v[2] for v in vals])), 1),
            samples=len(vals), hinting=hinting,
        ))
    cal = Calibration(entries=entries, meta={
        "corpus": {"latin": "pydoc_data.topics", "cjk": "optical_memory/data/zh_prose.txt"},
        "split": split, "tokenizer": "o200k_base",
        "scoring": "1 - edit_distance/max(len), whitespace-normalised, vs Page.text "
                   "(newline marker must be read; whitespace next to it does not count)",
        "resampling": "Lanczos down to side, decoder upscales back to master_side",
        "seconds": round(time.perf_counter() - t0, 1),
    })
    if dest is not None:
        cal.save(dest)
        _CACHE.pop(str(dest.resolve()), None)
    return cal
