"""Vision-token cost models: how many tokens a VLM bills for a W×H image.

Each target pairs a small pure *rule* (one frozen dataclass per accounting
scheme, read bottom-up below) with its name, source and the page size the
renderer should draw for it. ``tokens(w, h)`` is what the model bills or feeds
to its language model; ``seen_size(w, h)`` is the size of the content the model
processes after its own resize, so a renderer can draw at that size directly.

Sizes are always ``(width, height)`` in pixels.
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from typing import Protocol

from optical_memory.errors import InputError, UnknownTargetError

Size = tuple[int, int]

# Float results of a resize are compared with this slack before ceil/floor, so
# that 1408.0000000001 px counts as 44 patches of 32, not 45.
_EPS = 1e-9


def _ceil(x: float) -> int:
    return math.ceil(x - _EPS)


def _floor(x: float) -> int:
    return math.floor(x + _EPS)


def _round_half_up(x: float) -> int:
    return math.floor(x + 0.5)


def _check_size(width: object, height: object) -> Size:
    try:
        w, h = operator.index(width), operator.index(height)  # type: ignore[arg-type]
    except TypeError:
        raise InputError(f"image size must be integers, got {width!r}×{height!r}") from None
    if w < 1 or h < 1:
        raise InputError(f"image size must be positive, got {w}×{h}")
    return w, h


def _fit(width: int, height: int, side: int) -> Size:
    """Largest size with the aspect of ``width×height`` inside ``side×side``.

    Same rounding as ``PIL.ImageOps.contain`` (used by ``ImageOps.pad``).
    """
    if width == height:
        return side, side
    if width > height:
        return side, max(1, round(height * side / width))
    return max(1, round(width * side / height)), side


class VisionRule(Protocol):
    def tokens(self, width: int, height: int) -> int: ...

    def seen_size(self, width: int, height: int) -> Size: ...


# --------------------------------------------------------------------------
# DeepSeek-OCR (arXiv 2510.18234; github.com/deepseek-ai/DeepSeek-OCR,
# DeepSeek-OCR-master/DeepSeek-OCR-hf/modeling_deepseekocr.py; facts in
# docs/deepencoder.md). One view of side S gives (S/64)² tokens
# (16× conv compression of SAM's S/16 grid); the LM also receives one
# `image_newline` per grid row and one `view_seperator` per image.
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class DeepSeekSingleView:
    """Tiny/small (stretch) and base/large (letterbox) modes: size-independent.

    ``layout`` adds the newline per row and the final separator:
    q² + q + 1 (tiny 73, small 111, base 273, large 421); without it q²
    (64/100/256/400, the counts the paper reports).
    """

    side: int
    pad: bool
    layout: bool = True

    @property
    def grid(self) -> int:
        return self.side // 64

    def tokens(self, width: int, height: int) -> int:
        q = self.grid
        return q * q + (q + 1 if self.layout else 0)

    def seen_size(self, width: int, height: int) -> Size:
        # pad: resized to fit, then letterboxed with (127,127,127); the content
        # is the fitted part. stretch: resized to S×S whatever the aspect.
        return _fit(width, height, self.side) if self.pad else (self.side, self.side)


def gundam_grid(
    width: int, height: int, *, tile: int = 640, min_tiles: int = 2, max_tiles: int = 9
) -> Size:
    """Tile grid ``(cols, rows)`` DeepSeek-OCR's Gundam mode cuts a page into.

    ``(1, 1)`` (no local tiles, global view only) when neither side exceeds
    ``tile``. Otherwise the grid with ``min_tiles ≤ cols·rows ≤ max_tiles``
    whose aspect is closest to the image's; on a tie the later (larger) grid
    wins when the image area exceeds half the grid's pixel area. This is
    ``find_closest_aspect_ratio`` of DeepSeek-OCR's ``dynamic_preprocess``
    (adapted from InternVL), candidate order included. The HF release allows
    up to 9 tiles; the vLLM release caps at 6 (pass ``max_tiles=6``).
    """
    width, height = _check_size(width, height)
    if width <= tile and height <= tile:
        return 1, 1
    aspect = width / height
    area = width * height
    candidates = sorted(
        {
            (i, j)
            for n in range(min_tiles, max_tiles + 1)
            for i in range(1, n + 1)
            for j in range(1, n + 1)
            if min_tiles <= i * j <= max_tiles
        },
        key=lambda ij: ij[0] * ij[1],
    )
    best, best_diff = (1, 1), math.inf
    for cols, rows in candidates:
        diff = abs(aspect - cols / rows)
        if diff < best_diff:
            best, best_diff = (cols, rows), diff
        elif diff == best_diff and area > 0.5 * tile * tile * cols * rows:
            best = (cols, rows)
    return best


@dataclass(frozen=True)
class DeepSeekGundam:
    """Gundam: n local 640-px tiles (100 tokens each) + a global 1024 view (256).

    Raw: 100·n + 256. With layout the local tiles are stitched into one
    (10·rows)×(10·cols) grid with a newline per row, then the global view's 16
    rows each with a newline, then one separator: 273 + 100·n + 10·rows.
    """

    tile: int = 640
    global_side: int = 1024
    max_tiles: int = 9
    layout: bool = True

    def tokens(self, width: int, height: int) -> int:
        cols, rows = gundam_grid(width, height, tile=self.tile, max_tiles=self.max_tiles)
        n = cols * rows if cols * rows > 1 else 0
        q_local, q_global = self.tile // 64, self.global_side // 64
        tokens = q_global * q_global + n * q_local * q_local
        if self.layout:
            tokens += q_global + 1 + (rows * q_local if n else 0)
        return tokens

    def seen_size(self, width: int, height: int) -> Size:
        cols, rows = gundam_grid(width, height, tile=self.tile, max_tiles=self.max_tiles)
        if cols * rows > 1:
            # Local tiles: resized (no pad) to (640·cols, 640·rows), cut row-major.
            return self.tile * cols, self.tile * rows
        return _fit(width, height, self.global_side)


# --------------------------------------------------------------------------
# OpenAI, https://platform.openai.com/docs/guides/images-vision
# ("Calculating costs"). Tile models: GPT-4o, GPT-4.1, GPT-4.5, o1, o3.
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenAITiles:
    """``detail="high"``: fit in 2048², scale the short side down to 768, then
    85 + 170 per 512-px tile. ``detail="low"``: 85 whatever the size.

    Worked examples from the docs: 1024² → 768² → 4 tiles → 765;
    2048×4096 → 1024×2048 → 768×1536 → 6 tiles → 1105.
    """

    detail: str = "high"
    base: int = 85
    per_tile: int = 170
    tile: int = 512
    max_side: int = 2048
    short_side: int = 768
    low_side: int = 512

    def seen_size(self, width: int, height: int) -> Size:
        if self.detail == "low":
            if max(width, height) > self.low_side:
                return _fit(width, height, self.low_side)
            return (width, height)
        scale = min(1.0, self.max_side / max(width, height))
        w, h = width * scale, height * scale
        scale = min(1.0, self.short_side / min(w, h))
        return max(1, _round_half_up(w * scale)), max(1, _round_half_up(h * scale))

    def tokens(self, width: int, height: int) -> int:
        if self.detail == "low":
            return self.base
        w, h = self.seen_size(width, height)
        return self.base + self.per_tile * _ceil(w / self.tile) * _ceil(h / self.tile)


@dataclass(frozen=True)
class OpenAIPatches:
    """Patch models (GPT-4.1-mini/nano, o4-mini): one token per 32-px patch.

    If ⌈W/32⌉·⌈H/32⌉ > 1536 the image is scaled by √(32²·1536/(W·H)), then
    scaled again so the width is a whole number of patches. Billed tokens are
    patches × a per-model multiplier, rounded to the nearest integer (the docs'
    1024² example on gpt-4.1-mini bills 1024 × 1.62 = 1659).
    Worked examples: 1024² → 1024 patches; 1800×2400 → 1056×1408 → 1452.
    """

    multiplier: float
    patch: int = 32
    max_patches: int = 1536

    def seen_size(self, width: int, height: int) -> Size:
        p = self.patch
        if _ceil(width / p) * _ceil(height / p) <= self.max_patches:
            return width, height
        shrink = math.sqrt(p * p * self.max_patches / (width * height))
        w, h = width * shrink, height * shrink
        fit = _floor(w / p) / (w / p)
        return max(1, _round_half_up(w * fit)), max(1, _round_half_up(h * fit))

    def patches(self, width: int, height: int) -> int:
        w, h = self.seen_size(width, height)
        return min(self.max_patches, _ceil(w / self.patch) * _ceil(h / self.patch))

    def tokens(self, width: int, height: int) -> int:
        return _round_half_up(self.patches(width, height) * self.multiplier)


# --------------------------------------------------------------------------
# Anthropic, https://docs.anthropic.com/en/docs/build-with-claude/vision
# ("Evaluate image size" / "Calculate image costs"): tokens ≈ W·H/750; an
# image whose long edge exceeds 1568 px or that exceeds ~1,600 tokens is
# scaled down (aspect kept). Docs' table: 1000² ≈ 1334, 1092² ≈ 1590,
# 200² ≈ 54, i.e. the quotient rounded up.
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class ClaudeArea:
    max_edge: int = 1568
    # "~1,600 tokens" × 750 px per token. The docs' no-resize table (1092²,
    # 951×1268, 896×1344, 819×1456, 784×1568) spans 1.19–1.23 MP, so the real
    # threshold is fuzzy; 1.2 MP keeps 1092² (the 1:1 maximum) unscaled.
    max_pixels: int = 1_200_000
    pixels_per_token: int = 750

    def seen_size(self, width: int, height: int) -> Size:
        scale = min(1.0, self.max_edge / max(width, height),
                    math.sqrt(self.max_pixels / (width * height)))
        if scale >= 1.0:
            return width, height
        return max(1, _floor(width * scale)), max(1, _floor(height * scale))

    def tokens(self, width: int, height: int) -> int:
        w, h = self.seen_size(width, height)
        return _ceil(w * h / self.pixels_per_token)


# --------------------------------------------------------------------------
# Google Gemini. https://ai.google.dev/gemini-api/docs/tokens (multimodal
# tokens): both sides ≤ 384 → 258 tokens; larger images are "cropped and
# scaled as needed into tiles of 768x768 pixels, each counted as 258 tokens".
# The tile size is spelled out on Vertex AI's page
# (https://cloud.google.com/vertex-ai/generative-ai/docs/multimodal/send-multimodal-prompts#image-requirements,
# Gemini 1.5): tile side = min(W, H) / 1.5, clamped to [256, 768]; each tile
# is resized to 768² and costs 258. That rule is implemented here; for images
# with a short side ≥ 1152 it equals ⌈W/768⌉·⌈H/768⌉ tiles.
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class GeminiTiles:
    small_side: int = 384
    per_tile: int = 258
    min_unit: int = 256
    max_unit: int = 768

    def unit(self, width: int, height: int) -> int:
        return max(self.min_unit, min(self.max_unit, _floor(min(width, height) / 1.5)))

    def grid(self, width: int, height: int) -> Size:
        if width <= self.small_side and height <= self.small_side:
            return 1, 1
        unit = self.unit(width, height)
        return _ceil(width / unit), _ceil(height / unit)

    def tokens(self, width: int, height: int) -> int:
        cols, rows = self.grid(width, height)
        return self.per_tile * cols * rows

    def seen_size(self, width: int, height: int) -> Size:
        # No whole-image resize is documented: tiles are cut from the image as
        # sent (and each tile is then resized to 768²).
        return width, height


# --------------------------------------------------------------------------
# Qwen2.5-VL: `smart_resize` in qwen-vl-utils (github.com/QwenLM/Qwen2.5-VL,
# qwen-vl-utils/src/qwen_vl_utils/vision_process.py) and in transformers'
# Qwen2VLImageProcessor. Sides rounded to multiples of 28 (14-px patches,
# 2×2 merge), then rescaled into [min_pixels, max_pixels]. One LM token per
# 28×28 cell, plus <|vision_start|> and <|vision_end|> around the image.
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class QwenSmartResize:
    factor: int = 28
    min_pixels: int = 4 * 28 * 28
    max_pixels: int = 16384 * 28 * 28
    max_ratio: int = 200
    markers: int = 2

    def seen_size(self, width: int, height: int) -> Size:
        f = self.factor
        if max(width, height) / min(width, height) > self.max_ratio:
            raise InputError(
                f"aspect ratio must be ≤ {self.max_ratio}, got {width}×{height} "
                f"({max(width, height) / min(width, height):.1f})"
            )
        # round() is Python's (half to even), exactly as in smart_resize.
        h_bar = max(f, round(height / f) * f)
        w_bar = max(f, round(width / f) * f)
        if h_bar * w_bar > self.max_pixels:
            beta = math.sqrt(height * width / self.max_pixels)
            h_bar = max(f, math.floor(height / beta / f) * f)
            w_bar = max(f, math.floor(width / beta / f) * f)
        elif h_bar * w_bar < self.min_pixels:
            beta = math.sqrt(self.min_pixels / (height * width))
            h_bar = math.ceil(height * beta / f) * f
            w_bar = math.ceil(width * beta / f) * f
        return w_bar, h_bar

    def tokens(self, width: int, height: int) -> int:
        w, h = self.seen_size(width, height)
        return (w // self.factor) * (h // self.factor) + self.markers


# --------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class VisionTarget:
    """A model (or mode) whose vision-token bill we predict.

    ``page_size`` is the page W×H to render for this target: a size the model
    processes without resampling or padding, so no billed pixel is blank.
    """

    name: str
    family: str
    description: str
    source: str
    page_size: Size
    rule: VisionRule = field(repr=False)

    def tokens(self, width: int, height: int) -> int:
        """Vision tokens billed for a ``width×height`` image."""
        w, h = _check_size(width, height)
        return self.rule.tokens(w, h)

    def seen_size(self, width: int, height: int) -> Size:
        """``(w, h)`` of the content the model processes after its own resize."""
        w, h = _check_size(width, height)
        return self.rule.seen_size(w, h)

    @property
    def page_tokens(self) -> int:
        """Tokens for one page of :attr:`page_size`."""
        return self.tokens(*self.page_size)


_DEEPSEEK_SRC = (
    "DeepSeek-OCR, arXiv 2510.18234 (Table: native/dynamic modes); "
    "github.com/deepseek-ai/DeepSeek-OCR modeling_deepseekocr.py"
)
_OPENAI_SRC = "https://platform.openai.com/docs/guides/images-vision#calculating-costs"
_ANTHROPIC_SRC = "https://docs.anthropic.com/en/docs/build-with-claude/vision#evaluate-image-size"
_GEMINI_SRC = (
    "https://ai.google.dev/gemini-api/docs/tokens#multimodal-tokens; tile size: "
    "https://cloud.google.com/vertex-ai/generative-ai/docs/multimodal/send-multimodal-prompts#image-requirements"
)
_QWEN_SRC = "github.com/QwenLM/Qwen2.5-VL qwen-vl-utils vision_process.py smart_resize"


def _deepseek_targets() -> list[VisionTarget]:
    out = []
    # Single-view modes: a square page of the mode's side is processed as is
    # (no stretch distortion, no letterbox band), so every billed pixel is page.
    for mode, side, pad in (("tiny", 512, False), ("small", 640, False), ("base", 1024, True),
                            ("large", 1280, True)):
        how = "letterboxed" if pad else "stretched"
        for layout in (True, False):
            rule = DeepSeekSingleView(side=side, pad=pad, layout=layout)
            q = rule.grid
            suffix = "" if layout else "-raw"
            what = f"{q}² + {q} newlines + 1 separator" if layout else f"{q}² as in the paper"
            out.append(
                VisionTarget(
                    name=f"deepseek-ocr:{mode}{suffix}",
                    family="deepseek-ocr",
                    description=f"DeepSeek-OCR {mode}: any image {how} to {side}², "
                                f"{rule.tokens(side, side)} tokens ({what})",
                    source=_DEEPSEEK_SRC,
                    page_size=(side, side),
                    rule=rule,
                )
            )
    # Gundam: 1920² gets the largest grid, 3×3 tiles of 640 (exact, no resize)
    # and an unpadded square global view; the big grid amortises the global
    # view's 273 tokens (at 1280², large mode sees the same pixels for 421).
    for layout in (True, False):
        suffix = "" if layout else "-raw"
        out.append(
            VisionTarget(
                name=f"deepseek-ocr:gundam{suffix}",
                family="deepseek-ocr",
                description=(
                    "DeepSeek-OCR gundam: n 640² tiles (100 each) + a 1024² global view (256)"
                    + (", plus newlines and separator: 273 + 100n + 10·rows" if layout
                       else ": 100n + 256")
                ),
                source=_DEEPSEEK_SRC + "; tiling: dynamic_preprocess / find_closest_aspect_ratio",
                page_size=(1920, 1920),
                rule=DeepSeekGundam(layout=layout),
            )
        )
    return out


def _openai_targets() -> list[VisionTarget]:
    # High detail: a 512-wide page is never rescaled (short side < 768) and is
    # a whole number of 512 tiles; 512×2048 costs 765 like 1024² but keeps
    # 1.05 MP instead of the 0.59 MP that 1024² is shrunk to.
    high = OpenAITiles("high")
    out = [
        VisionTarget(
            name=name,
            family="openai-tiles",
            description=f"OpenAI {model}, detail=high: 85 + 170 per 512² tile after fit-2048 / "
                        "short-side-768",
            source=_OPENAI_SRC,
            page_size=(512, 2048),
            rule=high,
        )
        for name, model in (("openai:gpt-4o", "GPT-4o"), ("openai:gpt-4.1", "GPT-4.1"))
    ]
    out.append(
        VisionTarget(
            name="openai:gpt-4o-low",
            family="openai-tiles",
            description="OpenAI GPT-4o, detail=low: 85 tokens, image seen at ≤ 512²",
            source=_OPENAI_SRC,
            page_size=(512, 512),
            rule=OpenAITiles("low"),
        )
    )
    # Patch models: 1024×1536 is exactly 32×48 = 1536 patches, the cap, with no
    # rescale and no partial patch.
    for name, model, mult in (
        ("openai:gpt-4.1-mini", "GPT-4.1-mini", 1.62),
        ("openai:gpt-4.1-nano", "GPT-4.1-nano", 2.46),
        ("openai:o4-mini", "o4-mini", 1.72),
    ):
        out.append(
            VisionTarget(
                name=name,
                family="openai-patches",
                description=f"OpenAI {model}: ⌈W/32⌉·⌈H/32⌉ patches (≤ 1536) × {mult}",
                source=_OPENAI_SRC,
                page_size=(1024, 1536),
                rule=OpenAIPatches(multiplier=mult),
            )
        )
    return out


def _other_targets() -> list[VisionTarget]:
    return [
        VisionTarget(
            name="anthropic:claude",
            family="anthropic",
            # 1092² is the docs' largest 1:1 size that is not downscaled.
            description="Anthropic Claude: ⌈W·H/750⌉ after downscaling to long edge ≤ 1568 "
                        "and ≤ ~1.2 MP",
            source=_ANTHROPIC_SRC,
            page_size=(1092, 1092),
            rule=ClaudeArea(),
        ),
        VisionTarget(
            name="gemini",
            family="gemini",
            # 1536² is 2×2 tiles of exactly 768 (tile side clamped at 768), so
            # tiles need no rescale; it costs 4 × 258 under both Google rules.
            description="Google Gemini: 258 if both sides ≤ 384, else 258 per tile of side "
                        "min(W,H)/1.5 in [256, 768]",
            source=_GEMINI_SRC,
            page_size=(1536, 1536),
            rule=GeminiTiles(),
        ),
        VisionTarget(
            name="qwen2.5-vl",
            family="qwen-vl",
            # Sides that are multiples of 28 pass smart_resize unchanged;
            # 1036 = 37·28 is what a 1024² page is rounded to anyway.
            description="Qwen2.5-VL: smart_resize to multiples of 28, (W/28)·(H/28) + 2 vision "
                        "start/end markers",
            source=_QWEN_SRC,
            page_size=(1036, 1036),
            rule=QwenSmartResize(),
        ),
    ]


_REGISTRY: dict[str, VisionTarget] = {
    t.name: t for t in (*_deepseek_targets(), *_openai_targets(), *_other_targets())
}


def list_targets() -> list[str]:
    """Names of all registered targets, sorted."""
    return sorted(_REGISTRY)


def get_target(name: str) -> VisionTarget:
    """The registered :class:`VisionTarget` called ``name``."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise UnknownTargetError(
            f"unknown vision target {name!r} (known: {', '.join(list_targets())})"
        ) from None
