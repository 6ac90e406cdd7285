"""Fit / legibility: the densest layout whose pages a decoder still reads back.

    from optical_memory.fit import fit, recommended_config
    cfg = recommended_config("deepseek-ocr:base")          # a RenderConfig
    result = fit(text, "deepseek-ocr:base", verify=True)   # pages + measured precision
    result.page_precision, result.config.font_size

How the choice is made
----------------------
The package ships a *calibration* (``optical_memory/data/calibration.json``):
for each (decoder, script, page side, font, newline mode, line spacing, font
size) the mean and minimum read-back precision over sample pages, with the
text tokens (o200k) and characters each page held. :func:`calibrate`
regenerates it; ``benchmarks/fidelity.py --write-calibration`` does the same
and prints the full table.

:func:`recommended_config` keeps the entries of the target's page side whose
**mean** precision is ≥ ``threshold`` and returns the one that holds the most
text tokens per page. When none reaches the threshold it returns the most
legible entry (and logs a warning): the caller still gets pages, and
:func:`fit` with ``verify=True`` says what they read back at.

Page sides
~~~~~~~~~~
An entry's ``side`` is the side of the square image the decoder read;
``master_side`` is the side it was rendered at (equal for fresh pages; larger
for pages resampled down with Lanczos, i.e. aged pages). Its font size in px
*at the read side* is ``font_size * side / master_side``. For a target the
side that matters is the short side of what the model sees
(``target.seen_size(*target.page_size)``): the nearest calibrated side is
used, fresh entries preferred, and the font size is scaled by the ratio of the
two sides (a 1280² page gets 1280/1024 × the 1024² font). A page rendered
directly at a smaller side is hinted at its own size, so the resampled
calibration is, if anything, pessimistic for it.

Scoring
~~~~~~~
Precision is ``1 − edit distance / max length`` after whitespace
normalisation (:func:`optical_memory.decode.precision`), against the page's
visible text ``Page.text``. In ``newline_mode="marker"`` that text holds the
newline marker, and the read-back must hold it too: the marker *is* a newline
of the source, so a decoder that drops it has lost information
(``marker_as_space=True`` scores the lenient variant, marker mapped to a
space on both sides, which is what break-mode scoring effectively does with
its newlines).
"""
from __future__ import annotations

from optical_memory.decode.tesseract import LATIN_ARGS

import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError, InputError
from .render import NEWLINE_MARKER, RenderConfig, RenderItem, Renderer, Turn
from .tokens import get_counter, get_target
from .types import Page

log = logging.getLogger(__name__)

__all__ = [
    "CALIBRATION_FILE",
    "Calibration",
    "CalibrationEntry",
    "FitResult",
    "calibrate",
    "decoder_options",
    "detect_script",
    "first_page",
    "fit",
    "font_path",
    "load_calibration",
    "merge",
    "page_precision",
    "recommended_config",
    "recommended_entry",
    "resample",
    "sample_texts",
]

SCRIPTS = ("latin", "cjk")

#: Faces a calibration may name: key → bundled file (None = the renderer default).
FONTS: dict[str, str | None] = {
    "sans": None,
    "condensed": "DejaVuSansCondensed.ttf",
}

#: Shipped calibration, inside the package.
CALIBRATION_FILE = "calibration.json"

#: Default sweep of :func:`calibrate` (px at the master side).
DEFAULT_SIZES = (8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0)

Progress = Callable[[int, int], None]


def font_path(font: str) -> str | None:
    """File of calibration face ``font`` (None: the renderer's bundled default)."""
    try:
        name = FONTS[font]
    except KeyError:
        raise ConfigError(f"unknown font {font!r} (known: {', '.join(FONTS)})") from None
    if name is None:
        return None
    return str(resources.files("optical_memory.render") / "fonts" / name)


# --------------------------------------------------------------------------
# Calibration data


@dataclass(frozen=True)
class CalibrationEntry:
    """Measured read-back of one layout on one decoder.

    side: side of the square image the decoder read (px). master_side: side
    the page was rendered at (== side for fresh pages; larger: resampled down
    with Lanczos, then upscaled back to master_side by the decoder).
    font_size: px at master_side. mean/min_precision: over ``samples`` pages.
    tokens_per_page / chars_per_page: mean source text each page held
    (o200k_base tokens, characters).
    """

    decoder: str
    script: str
    side: int
    master_side: int
    font: str
    newline_mode: str
    line_spacing: float
    font_size: float
    margin: int
    mean_precision: float
    min_precision: float
    tokens_per_page: float
    chars_per_page: float
    samples: int
    hinting: str = "normal"  # RenderConfig.hinting (absent in older files: "normal")

    @property
    def fresh(self) -> bool:
        return self.side == self.master_side

    @property
    def effective_font_size(self) -> float:
        """Font size in px at the side the decoder read."""
        return self.font_size * self.side / self.master_side

    @property
    def family(self) -> tuple:
        """Entries differing only in font size share a family (a size ladder)."""
        return (self.decoder, self.script, self.side, self.master_side, self.font,
                self.newline_mode, self.line_spacing, self.margin, self.hinting)


@dataclass
class Calibration:
    """A set of :class:`CalibrationEntry` plus how they were measured (``meta``)."""

    entries: list[CalibrationEntry]
    meta: dict[str, Any] = field(default_factory=dict)

    # -- (de)serialisation -----------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"version": 1, "meta": self.meta, "entries": [asdict(e) for e in self.entries]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        if not isinstance(data, dict) or data.get("version") != 1:
            raise ConfigError(
                f"calibration must be a dict with version 1 (got version "
                f"{data.get('version') if isinstance(data, dict) else type(data).__name__!r})"
            )
        try:
            entries = [CalibrationEntry(**e) for e in data["entries"]]
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"malformed calibration entries: {exc}") from exc
        return cls(entries=entries, meta=dict(data.get("meta", {})))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1, ensure_ascii=False) + "\n",
                        encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"calibration file not found: {str(path)!r}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"calibration file {str(path)!r} is not JSON: {exc}") from exc
        return cls.from_dict(data)

    # -- queries -----------------------------------------------------------------
    def select(self, decoder: str, script: str) -> list[CalibrationEntry]:
        out = [e for e in self.entries if e.decoder == decoder and e.script == script]
        if not out:
            have = sorted({(e.decoder, e.script) for e in self.entries})
            raise ConfigError(
                f"no calibration for decoder {decoder!r}, script {script!r} "
                f"(calibrated: {', '.join(f'{d}/{s}' for d, s in have) or 'nothing'}); "
                "run optical_memory.fit.calibrate() for it"
            )
        return out


def _packaged_path() -> Path:
    return Path(str(resources.files("optical_memory") / "data" / CALIBRATION_FILE))


_CACHE: dict[str, Calibration] = {}


def load_calibration(path: str | Path | None = None) -> Calibration:
    """The calibration at ``path``, or the one the package ships (cached)."""
    p = Path(path) if path is not None else _packaged_path()
    key = str(p.resolve())
    cal = _CACHE.get(key)
    if cal is None:
        cal = _CACHE[key] = Calibration.load(p)
    return cal


# --------------------------------------------------------------------------
# Choosing a layout


@dataclass(frozen=True)
class _Choice:
    config: RenderConfig
    entry: CalibrationEntry
    scale: float  # page font px per calibrated (read-side) px
    ladder: tuple[RenderConfig, ...]  # larger sizes of the same family, ascending


def _check_threshold(threshold: float) -> float:
    if not (isinstance(threshold, (int, float)) and 0.0 < threshold <= 1.0):
        raise InputError(f"threshold must be in (0, 1] (got {threshold!r})")
    return float(threshold)


def _check_script(script: str) -> str:
    if script not in SCRIPTS:
        raise InputError(f"script must be one of {SCRIPTS} (got {script!r})")
    return script


def _round_size(px: float) -> float:
    return round(px * 4) / 4  # quarter pixels: stable configs, no float noise


def _config_for(entry: CalibrationEntry, page_size: tuple[int, int], scale: float) -> RenderConfig:
    w, h = page_size
    return RenderConfig(
        width=w, height=h,
        font_size=_round_size(entry.effective_font_size * scale),
        line_spacing=entry.line_spacing,
        margin=entry.margin,
        newline_mode=entry.newline_mode,
        font_path=font_path(entry.font),
        hinting=entry.hinting,
    )


def _choose(target: str, decoder: str, threshold: float, script: str,
            calibration: Calibration | None) -> _Choice:
    tgt = get_target(target)  # UnknownTargetError for an unknown name
    threshold = _check_threshold(threshold)
    script = _check_script(script)
    cal = calibration or load_calibration()
    entries = cal.select(decoder, script)
    page_w, page_h = tgt.page_size
    seen_short = min(tgt.seen_size(page_w, page_h))
    page_short = min(page_w, page_h)
    # Nearest calibrated read side; fresh pages first at equal distance.
    side = min({e.side for e in entries}, key=lambda s: (abs(s - seen_short), -s))
    at_side = [e for e in entries if e.side == side]
    fresh = [e for e in at_side if e.fresh]
    pool = fresh or at_side
    # Page px per calibrated px: seen/side maps the calibration onto what the
    # model sees, page/seen maps that back onto the page we render.
    scale = (seen_short / side) * (page_short / seen_short)
    passing = [e for e in pool if e.mean_precision >= threshold]
    if passing:
        best = max(passing, key=lambda e: (e.tokens_per_page, e.mean_precision))
    else:
        best = max(pool, key=lambda e: (e.mean_precision, -e.effective_font_size))
        log.warning(
            "no calibrated layout for %s/%s at side %d reaches precision %.3f; "
            "using the most legible one (%.1f px, %s, mean %.4f)",
            decoder, script, side, threshold, best.effective_font_size,
            best.newline_mode, best.mean_precision,
        )
    ladder = sorted(
        (e for e in pool if e.family == best.family
         and e.effective_font_size > best.effective_font_size),
        key=lambda e: e.effective_font_size,
    )
    return _Choice(
        config=_config_for(best, tgt.page_size, scale),
        entry=best,
        scale=scale,
        ladder=tuple(_config_for(e, tgt.page_size, scale) for e in ladder),
    )


def recommended_entry(
    target: str = "deepseek-ocr:base",
    *,
    decoder: str = "tesseract",
    threshold: float = 0.99,
    script: str = "latin",
    calibration: Calibration | None = None,
) -> CalibrationEntry:
    """The calibration entry :func:`recommended_config` builds its layout from."""
    return _choose(target, decoder, threshold, script, calibration).entry


def recommended_config(
    target: str = "deepseek-ocr:base",
    *,
    decoder: str = "tesseract",
    threshold: float = 0.99,
    script: str = "latin",
    calibration: Calibration | None = None,
) -> RenderConfig:
    """The densest calibrated layout for ``target`` whose mean read-back
    precision with ``decoder`` is ≥ ``threshold``.

    Returns a :class:`RenderConfig` of the target's page size (font size,
    line spacing, margin, newline mode and face from the calibration). Raises
    :class:`UnknownTargetError` for an unknown target, :class:`InputError`
    for a threshold outside (0, 1] or an unknown script, and
    :class:`ConfigError` when the calibration lacks the decoder/script.
    """
    return _choose(target, decoder, threshold, script, calibration).config


# --------------------------------------------------------------------------
# Scoring


def page_precision(page: Page, hypothesis: str, *, marker_as_space: bool = False) -> float:
    """Read-back precision of ``hypothesis`` against ``page.text``.

    By default the newline marker must be read like any character, and the
    whitespace next to it does not count (as the whitespace around a real
    line break collapses into one space in break mode; see
    ``decode.metrics.normalize_whitespace``). ``marker_as_space``: map the
    marker to a space on both sides (lenient).
    """
    from .decode import precision

    ref = page.text
    if marker_as_space:
        ref = ref.replace(NEWLINE_MARKER, " ")
        hypothesis = hypothesis.replace(NEWLINE_MARKER, " ")
        return precision(ref, hypothesis)
    return precision(ref, hypothesis, marker=NEWLINE_MARKER)


#: Tesseract's language model turns straight quotes into typographic ones
#: (" → “ ”), which alone cost ~1 point of precision on pydoc pages: the
#: tesseract decoder blacklists them for Latin by default (its LATIN_ARGS).
TESSERACT_LATIN_ARGS = LATIN_ARGS  # the tesseract decoder's own default for Latin


def decoder_options(decoder: str, script: str, master_side: int = 1024) -> dict[str, Any]:
    """Decoder settings used for calibration and verification of ``script``.

    rapidocr upscales smaller (aged) images back to ``master_side``.
    tesseract reads every page upscaled (Lanczos) to twice ``master_side``:
    its LSTM wants an x-height well above the ~5 px of 10 px text, and on
    pydoc pages in marker mode 2× lifts 10 px from 0.913 to 0.973 and 11 px
    from 0.955 to 0.985 (3× adds < 0.001); Chinese at 12 px goes from ~0.79
    to ~0.90. It reads Latin with :data:`TESSERACT_LATIN_ARGS` and CJK with
    ``lang="chi_sim"`` (with "+eng" it drifts into Latin garbage on dense pages).
    """
    opts: dict[str, Any] = {"upscale_to": master_side}
    if decoder == "tesseract":
        opts["upscale_to"] = 2 * master_side
        if script == "cjk":
            opts["lang"] = "chi_sim"
        else:
            opts["extra_args"] = TESSERACT_LATIN_ARGS
    return opts


# --------------------------------------------------------------------------
# Fit


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
    decoder: str = "tesseract"
    threshold: float = 0.99
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


_CJK_RE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")


def detect_script(text: str) -> str:
    """"cjk" when at least 30% of the non-space characters are CJK, else "latin"."""
    chars = [c for c in text if not c.isspace()]
    if not chars:
        return "latin"
    cjk = sum(1 for c in chars if _CJK_RE.match(c))
    return "cjk" if cjk >= 0.3 * len(chars) else "latin"


def _items_text(items: Sequence[RenderItem | Turn]) -> str:
    return "\n".join(it.content if isinstance(it, Turn) else it.text for it in items)


def fit(
    text_or_items: str | Iterable[RenderItem | Turn],
    target: str = "deepseek-ocr:base",
    *,
    decoder: str = "tesseract",
    threshold: float = 0.99,
    verify: bool = False,
    script: str | None = None,
    calibration: Calibration | None = None,
    workers: int | None = None,
    options: dict[str, Any] | None = None,
    progress: Progress | None = None,
) -> FitResult:
    """Render ``text_or_items`` with the recommended layout for ``target``.

    script: "latin" or "cjk"; None detects it from the text.
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
            from .decode import decode_many

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
    decoders: Sequence[str] = ("tesseract",),
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
    page. Writes to ``out`` (default: the package's shipped file) unless
    ``write`` is False. ``progress(done, total)`` counts page reads.
    """
    from .decode import decode_many

    for s in scripts:
        _check_script(s)
    for f in fonts:
        font_path(f)
    if any(side > master_side or side < 1 for side in page_sides):
        raise InputError(f"page_sides must be in [1, master_side={master_side}] (got {list(page_sides)})")
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
                                    options=decoder_options(decoder, script, master_side),
                                    progress=_tick)
                done += len(mine)
                for (key, sp), r in zip(mine, reads):
                    scores.setdefault((decoder, side) + key, []).append(
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
    if write:
        target = Path(out) if out is not None else _packaged_path()
        cal.save(target)
        _CACHE.pop(str(target.resolve()), None)
    return cal


def merge(*calibrations: Calibration) -> Calibration:
    """One calibration holding every entry; later ones replace equal keys."""
    by_key: dict[tuple, CalibrationEntry] = {}
    meta: dict[str, Any] = {}
    for cal in calibrations:
        meta.update(cal.meta)
        for e in cal.entries:
            by_key[e.family + (e.font_size,)] = e
    return Calibration(entries=list(by_key.values()), meta=meta)
