"""Decode many images on all cores.

OCR of a dense page is CPU-bound and single-threaded at its best setting
(tesseract with OMP_THREAD_LIMIT=1), so throughput comes from one process per
core. Each worker process builds its decoder once and reuses it. A decoder
marked ``thread_safe`` (its heavy work runs outside the GIL: the native
reader) reads pages in threads of this process instead, sharing one instance.
"""
from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from typing import Any

from optical_memory.config import DEFAULT_DECODER
from optical_memory.decode.base import (
    Decoder,
    DecodeResult,
    ImageInput,
    _resolve,
    get_decoder,
)
from optical_memory.errors import InputError

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]

_WORKER_DECODER: Decoder | None = None


def _worker_init(name: str, options: dict[str, Any]) -> None:
    global _WORKER_DECODER
    _WORKER_DECODER = get_decoder(name, **options)


def _worker_decode(index: int, image: ImageInput) -> tuple[int, DecodeResult]:
    assert _WORKER_DECODER is not None, "worker not initialised"
    return index, _WORKER_DECODER.decode(image)


def _per_worker_options(name: str, options: dict[str, Any], workers: int) -> dict[str, Any]:
    """Share the cores between workers for decoders that take ``threads``."""
    if "threads" in options:
        return options
    try:
        params = inspect.signature(_resolve(name)).parameters
    except (TypeError, ValueError):
        return options
    if "threads" not in params:
        return options
    return {**options, "threads": max(1, (os.cpu_count() or 1) // workers)}


def decode_many(
    images: Iterable[ImageInput],
    decoder: str = DEFAULT_DECODER,
    workers: int | None = None,
    options: dict[str, Any] | None = None,
    progress: Progress | None = None,
) -> list[DecodeResult]:
    """Decode ``images`` with the decoder registered as ``decoder``.

    workers:  processes to use; None → os.cpu_count(). One worker (or one
              image) decodes in this process, without a pool.
    options:  keyword options for :func:`get_decoder`, the same in every worker.
    progress: called as progress(done, total) after each image, in this process.

    Returns one :class:`DecodeResult` per image, in input order. The first
    failing image raises its error (DecodeError, InputError...) after the
    pool is shut down.
    """
    items = list(images)
    options = dict(options or {})
    total = len(items)
    if workers is None:
        workers = os.cpu_count() or 1
    if workers < 1:
        raise InputError(f"workers must be >= 1 (got {workers})")
    workers = min(workers, max(total, 1))
    # Build once here, too: unknown names/options and missing dependencies
    # fail fast with their own error instead of inside a worker.
    worker_options = options if workers == 1 else _per_worker_options(decoder, options, workers)
    local = get_decoder(decoder, **worker_options)
    if progress is not None:
        progress(0, total)
    if workers == 1:
        results = []
        for i, image in enumerate(items):
            results.append(local.decode(image))
            if progress is not None:
                progress(i + 1, total)
        return results

    out: list[DecodeResult | None] = [None] * total
    done = 0
    pool: Executor
    work: Callable[[int, ImageInput], tuple[int, DecodeResult]] = _worker_decode
    if getattr(local, "thread_safe", False):
        pool = ThreadPoolExecutor(max_workers=workers)

        def work(index: int, image: ImageInput) -> tuple[int, DecodeResult]:
            return index, local.decode(image)
    else:
        pool = ProcessPoolExecutor(max_workers=workers, initializer=_worker_init,
                                   initargs=(decoder, worker_options))
    with pool:
        futures = [pool.submit(work, i, image) for i, image in enumerate(items)]
        try:
            for fut in as_completed(futures):
                index, result = fut.result()
                out[index] = result
                done += 1
                if progress is not None:
                    progress(done, total)
        except BaseException:
            for f in futures:
                f.cancel()
            raise
    return out  # type: ignore[return-value]  # every slot filled above
