"""RapidOCR decoder: PP-OCR detection + recognition on onnxruntime (CPU).

Only the models bundled in the ``rapidocr`` 3.x wheel are used; any other
model would be downloaded on first use, which fails offline. The detector is
tuned for dense pages: its defaults merge dense neighbouring lines and drop
text, while ``Det.use_dilation=False, Det.unclip_ratio=1.3`` read dense pages
well (0.97–0.99 on 1024² pages at 8–14 px; ``docs/measurements.md``).
Reads Chinese, Japanese and Latin with one model (not Cyrillic or Hangul),
and small fonts better than tesseract, at several times its cost per page.

Detected boxes are reassembled into lines in reading order
(:func:`boxes_to_lines`). Given the page's line grid (``line_grid``, a
:class:`~optical_memory.decode.base.LineGrid`; the memory passes it for every
page it wrote) there is no detection: each line is cut out and recognised on
its own. On the memory's default layout (11 px, lines 1.1 em) the detector
reads a dense CJK page column-wise (Chinese 0.02 read-back) while the
recognizer on the known lines reads it at 0.99, and English pydoc pages at
0.994 instead of 0.984 (``benchmarks/results/fidelity_scripts.md``).
"""
from __future__ import annotations

import importlib.util
import itertools
import logging
import os
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from optical_memory.decode.base import (
    DecodeResult,
    ImageInput,
    LineGrid,
    clean_text,
    coerce_image,
    upscale,
)
from optical_memory.errors import DecodeError, DependencyMissingError, InputError

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'optical-memory[rapidocr]'  (rapidocr>=3.4 onnxruntime)"

# Dense-page tuning (docs/measurements.md) plus quiet logs. The angle
# classifier is off: pages are rendered upright, and it costs time on every line.
DEFAULT_PARAMS: dict[str, Any] = {
    "Det.use_dilation": False,
    "Det.unclip_ratio": 1.3,
    "Global.use_cls": False,
    "Global.log_level": "error",  # an empty page is not worth a warning
}

# Line-grid reading: recognition only, and no line dropped for a low score.
GRID_PARAMS: dict[str, Any] = {
    "Global.use_det": False,
    "Global.use_cls": False,
    "Global.text_score": 0.0,
}
#: A line strip whose inner rows have no pixel darker than this holds no text.
INK_LEVEL = 160

# One engine per (process, settings): onnxruntime sessions are costly to build
# and must not be shared across fork (their thread pools do not survive it).
_ENGINES: dict[tuple[int, tuple], Any] = {}
_ENGINES_LOCK = threading.Lock()


def _engine(params: dict[str, Any]):
    key = (os.getpid(), tuple(sorted((k, repr(v)) for k, v in params.items())))
    with _ENGINES_LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            from rapidocr import RapidOCR

            logger.debug("building RapidOCR engine with %s", params)
            engine = RapidOCR(params=dict(params))
            _ENGINES[key] = engine
        return engine


# --------------------------------------------------------------------------
# Box → line reassembly


def boxes_to_lines(
    boxes: Sequence[Sequence[Sequence[float]]] | np.ndarray,
    texts: Sequence[str],
    *,
    min_overlap: float = 0.5,
    space_gap: float = 0.25,
) -> list[str]:
    """Reassemble OCR boxes into text lines in reading order.

    boxes: [N, 4, 2] corner points (x, y) per box; texts: N strings.
    A box joins a line when their vertical extents overlap by at least
    ``min_overlap`` × the smaller height. Within a line boxes are ordered by
    left edge and joined with a space when the gap between them exceeds
    ``space_gap`` × the line height, else concatenated.
    """
    items = []
    for box, text in zip(boxes, texts):
        if not text or not text.strip():
            continue
        pts = np.asarray(box, dtype=np.float64).reshape(-1, 2)
        x0, y0 = pts.min(axis=0)
        x1, y1 = pts.max(axis=0)
        items.append((float(x0), float(y0), float(x1), float(y1), text.strip()))
    items.sort(key=lambda it: ((it[1] + it[3]) / 2, it[0]))

    lines: list[list[tuple[float, float, float, float, str]]] = []
    spans: list[tuple[float, float]] = []  # vertical extent of each line
    for it in items:
        _, y0, _, y1, _ = it
        if lines:
            ly0, ly1 = spans[-1]
            overlap = min(y1, ly1) - max(y0, ly0)
            if overlap >= min_overlap * min(y1 - y0, ly1 - ly0):
                lines[-1].append(it)
                spans[-1] = (min(ly0, y0), max(ly1, y1))
                continue
        lines.append([it])
        spans.append((y0, y1))

    out = []
    for line, (ly0, ly1) in zip(lines, spans):
        line.sort(key=lambda it: it[0])
        height = max(ly1 - ly0, 1.0)
        parts = [line[0][4]]
        for prev, cur in itertools.pairwise(line):
            gap = cur[0] - prev[2]
            parts.append((" " if gap > space_gap * height else "") + cur[4])
        out.append("".join(parts))
    return out


# --------------------------------------------------------------------------


class RapidOCRDecoder:
    """Read a page with RapidOCR 3.x and its bundled default models.

    upscale_to: enlarge images whose long side is below this many px
                (Lanczos) before reading; None reads the image as stored.
    threads:    onnxruntime intra-op threads; None lets onnxruntime use all
                cores (decode_many sets cores // workers).
    params:     further RapidOCR settings in its dotted form, e.g.
                {"Global.text_score": 0.4}; they override the defaults above.
                Settings that select another model (Det.ocr_version, lang
                types...) trigger a download and fail offline.
    line_grid:  where the image's text lines lie (a :class:`LineGrid`):
                each line is recognised on its own, without detection;
                None detects text boxes.
    line_pad:   with ``line_grid``, how far beyond its line box a line is
                cut, as a fraction of the line pitch.
    """

    name = "rapidocr"

    def __init__(
        self,
        upscale_to: int | None = 1024,
        threads: int | None = None,
        params: dict[str, Any] | None = None,
        line_grid: LineGrid | None = None,
        line_pad: float = 0.05,
    ) -> None:
        reason = self.availability()
        if reason is not True:
            raise DependencyMissingError(str(reason))
        if upscale_to is not None and upscale_to <= 0:
            raise InputError(f"upscale_to must be a positive int or None (got {upscale_to})")
        if threads is not None and threads <= 0:
            raise InputError(f"threads must be a positive int or None (got {threads})")
        merged = dict(DEFAULT_PARAMS)
        if threads is not None:
            merged["EngineConfig.onnxruntime.intra_op_num_threads"] = int(threads)
            merged["EngineConfig.onnxruntime.inter_op_num_threads"] = 1
        merged.update(params or {})
        if line_grid is not None and not isinstance(line_grid, LineGrid):
            raise InputError(f"line_grid must be a LineGrid or None (got {line_grid!r})")
        if not 0 <= line_pad <= 1:
            raise InputError(f"line_pad must be in [0, 1] (got {line_pad!r})")
        self.line_grid = line_grid
        self.line_pad = float(line_pad)
        self.upscale_to = upscale_to
        self.threads = threads
        self.params = merged

    @classmethod
    def availability(cls) -> bool | str:
        missing = [m for m in ("rapidocr", "onnxruntime") if importlib.util.find_spec(m) is None]
        if missing:
            return f"python package(s) {', '.join(missing)} not installed ({INSTALL_HINT})"
        return True

    def decode(self, image: ImageInput) -> DecodeResult:
        t0 = time.perf_counter()
        img = coerce_image(image)
        size = img.size
        img, scale = upscale(img, self.upscale_to)
        arr = np.asarray(img)
        if arr.ndim == 3:
            arr = np.ascontiguousarray(arr[:, :, ::-1])  # RGB → BGR, as rapidocr expects
        if self.line_grid is not None:
            lines, scores = self._read_lines(arr, self.line_grid, size)
            boxes_read = len(scores)
        else:
            try:
                out = _engine(self.params)(arr)
            except Exception as exc:  # broad on purpose: rapidocr raises bare/own errors
                raise DecodeError(f"rapidocr failed on a {size} image: {exc}") from exc
            boxes = getattr(out, "boxes", None)
            texts = getattr(out, "txts", None)
            lines = [] if boxes is None or texts is None else boxes_to_lines(boxes, texts)
            scores = list(getattr(out, "scores", None) or ())
            boxes_read = len(texts or ())
        return DecodeResult(
            text=clean_text("\n".join(lines)),
            decoder=self.name,
            seconds=time.perf_counter() - t0,
            meta={
                "size": size,
                "scale": scale,
                "boxes": boxes_read,
                "mean_score": float(np.mean(scores)) if len(scores) else None,
                "line_grid": self.line_grid is not None,
            },
        )

    def _read_lines(self, arr: np.ndarray, grid: LineGrid, size: tuple[int, int]
                    ) -> tuple[list[str], list[float]]:
        """Each line of ``grid`` recognised on its own; blank lines are skipped."""
        engine = _engine({**self.params, **GRID_PARAMS})
        lines: list[str] = []
        scores: list[float] = []
        for y0, y1, c0, c1 in grid.rows(arr.shape[0], self.line_pad):
            if arr[c0:c1].min(initial=255) > INK_LEVEL:
                lines.append("")
                continue
            try:
                out = engine(np.ascontiguousarray(arr[y0:y1]))
            except Exception as exc:  # broad on purpose: rapidocr raises bare/own errors
                raise DecodeError(f"rapidocr failed on a line of a {size} image: {exc}") from exc
            lines.append(" ".join(t.strip() for t in (getattr(out, "txts", None) or ())))
            scores += [float(x) for x in (getattr(out, "scores", None) or ())]
        return lines, scores
