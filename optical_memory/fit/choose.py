"""Choosing a layout from the calibration, and scoring a page's read-back.

:func:`recommended_config` keeps the entries of the target's page side whose
**mean** precision is ≥ ``threshold`` and returns the one that holds the most
text tokens per page. When none reaches the threshold it returns the most
legible entry (and logs a warning): the caller still gets pages, and
:func:`~optical_memory.fit.fit` with ``verify=True`` says what they read back at.

Page sides
----------
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
-------
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

import logging
import re
from dataclasses import dataclass
from typing import Any

from ..config import DEFAULT_READBACK, LAYOUT_DECODER
from ..decode.tesseract import LATIN_ARGS
from ..errors import InputError
from ..render import NEWLINE_MARKER, RenderConfig
from ..tokens import get_target
from ..types import Page
from .calibration import Calibration, CalibrationEntry, font_path, load_calibration

log = logging.getLogger(__name__)

SCRIPTS = ("latin", "cjk")


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
        # expected for small pages (e.g. 512 px wide): an outcome, not a fault;
        # layout_origin() says it in words where the layout is shown
        best = max(pool, key=lambda e: (e.mean_precision, -e.effective_font_size))
        log.info(
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
    decoder: str = LAYOUT_DECODER,
    threshold: float = DEFAULT_READBACK,
    script: str = "latin",
    calibration: Calibration | None = None,
) -> CalibrationEntry:
    """The calibration entry :func:`recommended_config` builds its layout from
    (when none reaches ``threshold``, the most legible: its ``mean_precision``
    says what it reads back)."""
    return _choose(target, decoder, threshold, script, calibration).entry


def recommended_config(
    target: str = "deepseek-ocr:base",
    *,
    decoder: str = LAYOUT_DECODER,
    threshold: float = DEFAULT_READBACK,
    script: str = "latin",
    calibration: Calibration | None = None,
) -> RenderConfig:
    """The densest calibrated layout for ``target`` whose mean read-back
    precision with ``decoder`` is ≥ ``threshold`` (default: the memory's
    :data:`~optical_memory.config.DEFAULT_READBACK`).

    Returns a :class:`RenderConfig` of the target's page size (font size,
    line spacing, margin, newline mode and face from the calibration). Raises
    :class:`UnknownTargetError` for an unknown target, :class:`InputError`
    for a threshold outside (0, 1] or an unknown script, and
    :class:`ConfigError` when the calibration lacks the decoder/script.
    """
    return _choose(target, decoder, threshold, script, calibration).config


def page_precision(page: Page, hypothesis: str, *, marker_as_space: bool = False) -> float:
    """Read-back precision of ``hypothesis`` against ``page.text``.

    By default the newline marker must be read like any character, and the
    whitespace next to it does not count (as the whitespace around a real
    line break collapses into one space in break mode; see
    ``decode.metrics.normalize_whitespace``). ``marker_as_space``: map the
    marker to a space on both sides (lenient).
    """
    from ..decode import precision

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
    An ``openai`` endpoint gets the image as it is (nothing): what a served
    model reads at a tier's own resolution is what is measured.
    """
    if decoder == "openai":
        return {}
    opts: dict[str, Any] = {"upscale_to": master_side}
    if decoder == "tesseract":
        opts["upscale_to"] = 2 * master_side
        if script == "cjk":
            opts["lang"] = "chi_sim"
        else:
            opts["extra_args"] = TESSERACT_LATIN_ARGS
    return opts


_CJK_RE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")


def detect_script(text: str) -> str:
    """"cjk" when at least 30% of the non-space characters are CJK, else "latin"."""
    chars = [c for c in text if not c.isspace()]
    if not chars:
        return "latin"
    cjk = sum(1 for c in chars if _CJK_RE.match(c))
    return "cjk" if cjk >= 0.3 * len(chars) else "latin"
