"""What a target bills for one page image, by tier size.

DeepSeek-OCR is one model with several modes (tiny 512², small 640², base
1024², large 1280², gundam tiles): an aged page is billed in the cheapest
single-view mode that holds it without shrinking. Every other target bills
the rendition size by its own rule (:meth:`VisionTarget.tokens`).
"""
from __future__ import annotations

from optical_memory.errors import ConfigError
from optical_memory.tokens.vision import VisionTarget, get_target

_DEEPSEEK_SINGLE = ("tiny", "small", "base", "large")


def image_tokens(target: VisionTarget, width: int, height: int) -> int:
    """Vision tokens ``target`` bills for a ``width×height`` image.

    DeepSeek-OCR is one model with several modes: an aged page is sent in the
    cheapest single-view mode whose side holds it without shrinking
    (``-raw`` targets keep ``-raw`` modes), or in the target's own mode when
    that is cheaper (:func:`deepseek_mode` names the mode).
    """
    if target.family == "deepseek-ocr":
        return get_target(_mode_target_name(target, deepseek_mode(target, width, height))).tokens(
            width, height
        )
    return target.tokens(width, height)


def deepseek_mode(target: VisionTarget | str, width: int, height: int) -> str:
    """The DeepSeek-OCR mode (``"tiny"``, ``"small"``, ``"base"``, ``"large"``,
    ``"gundam"``) a ``width×height`` image is sent in for a deepseek-ocr
    ``target``: the cheapest single-view mode whose side holds the image
    without shrinking it, or the target's own mode when that is not dearer.
    Its token count is what :func:`image_tokens` bills. :class:`ConfigError`
    for a target of another family.
    """
    tgt = get_target(target) if isinstance(target, str) else target
    if tgt.family != "deepseek-ocr":
        raise ConfigError(f"{tgt.name!r} is not a deepseek-ocr target (it has no DeepSeek modes)")
    own = tgt.name.split(":", 1)[1].removesuffix("-raw")
    best, cost = own, tgt.tokens(width, height)
    for mode in _DEEPSEEK_SINGLE:
        mode_target = get_target(_mode_target_name(tgt, mode))
        if mode_target.page_size[0] >= max(width, height):
            mode_cost = mode_target.tokens(width, height)
            if mode_cost < cost:
                best, cost = mode, mode_cost
    return best


def _mode_target_name(target: VisionTarget, mode: str) -> str:
    suffix = "-raw" if target.name.endswith("-raw") else ""
    return f"deepseek-ocr:{mode}{suffix}"


__all__ = ["deepseek_mode", "image_tokens"]
