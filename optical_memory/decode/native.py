"""The native decoder: the package's own line reader, trained on the
renderer's pages (:mod:`optical_memory.reader`), in numpy on the CPU.

Lines come from the page's layout when it is known (a
:class:`~optical_memory.types.Page`, or a stored page handed over with its
``meta``: the memory does this for decoders with ``uses_layout``) and from
the row ink profile otherwise; each line is cropped, scaled to 16 px and read
by a small convolutional CTC model, all lines of a page in a few batches:
int8 in onnxruntime when it is installed (the ``rapidocr`` extra), else
float32 in numpy (``engine``; :mod:`optical_memory.reader.infer`).

It reads what the memory draws: Latin (with Latin-1 and Extended-A), Greek,
Cyrillic, common symbols and the newline marker. Glyphs outside that set
come back as U+FFFD and are counted in ``meta["unknown"]`` (the model's
unknown class, and guesses found by width and doubt:
:mod:`optical_memory.reader.unknown`); pages in CJK
belong with tesseract (``lang="chi_sim+eng"``) or rapidocr.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from optical_memory.decode.base import DecodeResult, ImageInput, coerce_image
from optical_memory.errors import InputError
from optical_memory.types import Page

LINE_MODES = ("auto", "layout", "ink")

_READERS: dict[str, Any] = {}
_LOCK = threading.Lock()


def _reader(weights: str | None, engine: str, threads: int):
    from optical_memory.reader.infer import NumpyReader

    key = f"{weights}|{engine}|{threads}"
    with _LOCK:
        reader = _READERS.get(key)
        if reader is None:
            reader = _READERS[key] = NumpyReader(weights, engine=engine, threads=threads)
    return reader


class NativeDecoder:
    """Read a page with the bundled line reader.

    weights: path of a ``reader.json`` recipe (None: the weights shipped in
        the package).
    lines: where line boxes come from: "auto" (the layout when the input
        carries one, else the ink profile), "layout" (required), "ink".
    batch: lines read per matrix product (memory ~ batch × line width).
    engine: "auto" (int8 onnxruntime when installed, else numpy), "onnx" or
        "numpy" (float32, no dependency beyond numpy).
    threads: onnxruntime threads per page (0: one per core; :func:`decode_many`
        gives each of its workers cores // workers and reads pages in threads).
    unknown: mark guesses over glyphs outside the character set as U+FFFD
        (counted in ``meta["unknown"]``; :mod:`optical_memory.reader.unknown`).
    """

    name = "native"
    #: One instance may decode pages from several threads at once (the model
    #: runs outside the GIL): :func:`~optical_memory.decode.decode_many` reads
    #: pages in threads of one process instead of starting processes.
    thread_safe = True
    #: The memory hands this decoder stored pages as :class:`Page` with their
    #: layout ``meta`` (see :func:`optical_memory.decode.readback.read_page`).
    uses_layout = True

    def __init__(self, weights: str | Path | None = None, lines: str = "auto",
                 batch: int = 32, engine: str = "auto", threads: int = 0,
                 unknown: bool = True) -> None:
        from optical_memory.reader.infer import ENGINES

        if lines not in LINE_MODES:
            raise InputError(f"lines must be one of {LINE_MODES} (got {lines!r})")
        if not isinstance(batch, int) or batch < 1:
            raise InputError(f"batch must be a positive int (got {batch!r})")
        if engine not in ENGINES:
            raise InputError(f"engine must be one of {ENGINES} (got {engine!r})")
        if not isinstance(threads, int) or threads < 0:
            raise InputError(f"threads must be an int >= 0 (got {threads!r})")
        self.reader = _reader(None if weights is None else str(weights), engine, threads)
        self.lines = lines
        self.batch = batch
        self.unknown = bool(unknown)

    @classmethod
    def availability(cls) -> bool | str:
        from optical_memory.reader.infer import default_weights

        return True if default_weights().is_file() else "reader weights missing from the package"

    def decode(self, image: ImageInput) -> DecodeResult:
        from optical_memory.reader.lines import crop_lines, find_lines, layout_boxes

        t0 = time.perf_counter()
        meta = image.meta if isinstance(image, Page) else None
        gray = np.asarray(coerce_image(image), dtype=np.uint8)
        h, w = gray.shape
        boxes = None
        source = "ink"
        if self.lines != "ink" and meta:
            boxes = layout_boxes(meta, (w, h))
            source = "layout"
        if boxes is None:
            if self.lines == "layout":
                raise InputError(
                    "lines='layout' needs a Page (or stored page) with its layout meta")
            boxes = find_lines(gray)
            source = "ink"
        crops = crop_lines(gray, boxes, height=self.reader.height, stretch=self.reader.stretch)
        t_lines = time.perf_counter() - t0
        present = [c for c in crops if c is not None]
        spacing = None
        if meta and source == "layout":
            try:
                spacing = float(meta["line_spacing"])
            except (KeyError, TypeError, ValueError):
                spacing = None
        reads = iter(self.reader.read(present, batch=self.batch, line_spacing=spacing,
                                      mark_unknown=self.unknown))
        texts: list[str] = []
        confidences: list[float | None] = []
        unknown = 0
        for crop in crops:
            if crop is None:
                texts.append("")
                confidences.append(None)
                continue
            r = next(reads)
            texts.append(r.text.rstrip())
            confidences.append(round(r.confidence, 4))
            unknown += r.unknown
        while texts and not texts[-1]:
            texts.pop()
            confidences.pop()
        while texts and not texts[0]:
            texts.pop(0)
            confidences.pop(0)
        read = [c for c in confidences if c is not None]
        return DecodeResult(
            text="\n".join(texts),
            decoder=self.name,
            seconds=time.perf_counter() - t0,
            meta={
                "size": (w, h),
                "lines": len(texts),
                "line_source": source,
                "line_confidence": confidences,
                "mean_confidence": round(float(np.mean(read)), 4) if read else None,
                "min_confidence": round(float(min(read)), 4) if read else None,
                "unknown": unknown,
                "engine": self.reader.engine,
                "seconds_lines": round(t_lines, 4),
                "weights": self.reader.recipe.get("data_recipe_hash"),
            },
        )


__all__ = ["NativeDecoder"]
