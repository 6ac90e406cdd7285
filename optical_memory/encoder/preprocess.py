"""Modes, Gundam tiling, token layout and pixel normalisation (numpy + PIL only).

A mode turns one page into a square *global view* of side ``base_size`` and, in
Gundam mode, a grid of ``image_size`` tiles:

- ``stretch`` modes (tiny, small) resize the page to S×S, ignoring its aspect;
- ``pad`` modes (base, large, gundam's global view) letterbox it, centred, on
  (127, 127, 127);
- Gundam cuts tiles only when a side exceeds ``image_size``: it picks the
  (cols, rows) grid, 2 ≤ cols·rows ≤ ``max_tiles``, whose aspect is closest to
  the page's, resizes the page to (cols·q, rows·q) pixels and cuts row-major.

Pixels are normalised like ``ToTensor`` then ``Normalize(0.5, 0.5)``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image, ImageOps

from optical_memory.errors import InputError, UnknownTargetError
from optical_memory.types import Page

PAD_COLOR = (127, 127, 127)  # int(0.5 · 255) per channel, as the release pads
IMAGE_MEAN = 0.5
IMAGE_STD = 0.5
PIXELS_PER_TOKEN = 64  # patch 16 × compressor 4

PageLike = Page | np.ndarray | Image.Image


@dataclass(frozen=True)
class Mode:
    """How a page becomes views; sides in pixels."""

    name: str
    base_size: int  # side of the global view
    image_size: int  # side of a Gundam tile (== base_size without tiles)
    crop: bool  # cut tiles when a side exceeds image_size
    resize: Literal["stretch", "pad"]  # how the global view is made
    min_tiles: int = 2
    max_tiles: int = 9  # the vLLM release caps at 6


MODES: dict[str, Mode] = {
    m.name: m
    for m in (
        Mode("tiny", 512, 512, False, "stretch"),
        Mode("small", 640, 640, False, "stretch"),
        Mode("base", 1024, 1024, False, "pad"),
        Mode("large", 1280, 1280, False, "pad"),
        Mode("gundam", 1024, 640, True, "pad"),
    )
}


def get_mode(mode: str | Mode) -> Mode:
    if isinstance(mode, Mode):
        return mode
    try:
        return MODES[mode]
    except KeyError:
        raise UnknownTargetError(
            f"unknown encoder mode {mode!r} (known: {', '.join(MODES)})"
        ) from None


# --------------------------------------------------------------------------- #
# Tiling and layout
# --------------------------------------------------------------------------- #


def candidate_grids(min_tiles: int = 2, max_tiles: int = 9) -> list[tuple[int, int]]:
    """All (cols, rows) with min_tiles ≤ cols·rows ≤ max_tiles, fewest tiles first."""
    grids = {
        (c, r)
        for c in range(1, max_tiles + 1)
        for r in range(1, max_tiles + 1)
        if min_tiles <= c * r <= max_tiles
    }
    return sorted(grids, key=lambda g: (g[0] * g[1], g))


def choose_grid(width: int, height: int, mode: str | Mode) -> tuple[int, int] | None:
    """The Gundam (cols, rows) tile grid for a page, or None when it is not tiled.

    Closest aspect ratio wins; on a tie the larger grid wins when the page's area
    exceeds half of that grid's pixel area (the release's rule).
    """
    m = get_mode(mode)
    if not m.crop or (width <= m.image_size and height <= m.image_size):
        return None
    aspect = width / height
    best, best_diff = (1, 1), math.inf
    for cols, rows in candidate_grids(m.min_tiles, m.max_tiles):
        diff = abs(aspect - cols / rows)
        if diff < best_diff:
            best, best_diff = (cols, rows), diff
        elif diff == best_diff and width * height > 0.5 * m.image_size**2 * cols * rows:
            best = (cols, rows)
    return best


@dataclass(frozen=True)
class TokenLayout:
    """Where each vision token of one page sits in the sequence fed to the LM.

    Order: the tile mosaic ((rows·q) × (cols·q) tokens, a newline after each
    row), then the global view (g × g, a newline after each row), then one
    view separator.
    """

    mode: str
    page_size: tuple[int, int]  # original (width, height) in pixels
    global_grid: int  # g: the global view gives g × g tokens
    tiles: tuple[int, int] = (0, 0)  # (cols, rows); (0, 0) when not tiled
    tile_grid: int = 0  # q: each tile gives q × q tokens

    @property
    def num_tiles(self) -> int:
        return self.tiles[0] * self.tiles[1]

    @property
    def mosaic_shape(self) -> tuple[int, int]:
        """(rows, cols) of the stitched tile tokens, (0, 0) when not tiled."""
        return self.tiles[1] * self.tile_grid, self.tiles[0] * self.tile_grid

    @property
    def num_vision_tokens(self) -> int:
        """Projected tokens, without newlines or separator (the paper's count)."""
        return self.global_grid**2 + self.num_tiles * self.tile_grid**2

    @property
    def num_tokens(self) -> int:
        """Length of the embedding sequence: tokens + newlines + separator."""
        rows, cols = self.mosaic_shape
        local = rows * (cols + 1) if self.num_tiles else 0
        return self.global_grid * (self.global_grid + 1) + local + 1

    @property
    def num_valid_tokens(self) -> int | None:
        """Tokens on page pixels (not padding) for letterboxed untiled modes:
        ⌈g² · min(w, h) / max(w, h)⌉, the paper's "valid" count; else None."""
        mode = MODES.get(self.mode)
        if mode is None or mode.resize != "pad" or self.num_tiles:
            return None
        w, h = self.page_size
        return math.ceil(self.global_grid**2 * min(w, h) / max(w, h))


def token_layout(width: int, height: int, mode: str | Mode) -> TokenLayout:
    """The layout a page of ``width`` × ``height`` pixels gets in ``mode``."""
    m = get_mode(mode)
    grid = choose_grid(width, height, m)
    return TokenLayout(
        mode=m.name,
        page_size=(width, height),
        global_grid=m.base_size // PIXELS_PER_TOKEN,
        tiles=grid or (0, 0),
        tile_grid=m.image_size // PIXELS_PER_TOKEN if grid else 0,
    )


# --------------------------------------------------------------------------- #
# Pixels
# --------------------------------------------------------------------------- #


def to_rgb(page: PageLike) -> Image.Image:
    """A Page, a uint8 array ([H, W], [H, W, 3] or [H, W, 4]) or a PIL image → RGB."""
    if isinstance(page, Page):
        page = page.pixels
    if isinstance(page, np.ndarray):
        if page.dtype != np.uint8:
            raise InputError(f"page pixels must be uint8 (got {page.dtype})")
        if page.ndim == 3 and page.shape[2] == 4:
            page = page[..., :3]
        if not (page.ndim == 2 or (page.ndim == 3 and page.shape[2] in (1, 3))):
            raise InputError(f"page pixels must be [H, W] or [H, W, 3] (got {page.shape})")
        if page.ndim == 3 and page.shape[2] == 1:
            page = page[..., 0]
        page = Image.fromarray(np.ascontiguousarray(page))
    if not isinstance(page, Image.Image):
        raise InputError(
            f"a page must be a Page, a uint8 numpy array or a PIL image (got {type(page).__name__})"
        )
    if page.width < 1 or page.height < 1:
        raise InputError(f"page is empty ({page.width}×{page.height})")
    return page if page.mode == "RGB" else page.convert("RGB")


def normalize(image: Image.Image) -> np.ndarray:
    """RGB image → float32 [3, H, W], (x / 255 − 0.5) / 0.5."""
    x = np.asarray(image, dtype=np.float32) / np.float32(255.0)
    x = (x - np.float32(IMAGE_MEAN)) / np.float32(IMAGE_STD)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def global_view(image: Image.Image, mode: Mode) -> Image.Image:
    """The square global view of side ``mode.base_size``."""
    S = mode.base_size
    if mode.resize == "stretch":
        return image.resize((S, S), Image.Resampling.BICUBIC)
    return ImageOps.pad(image, (S, S), method=Image.Resampling.BICUBIC, color=PAD_COLOR)


def cut_tiles(image: Image.Image, grid: tuple[int, int], tile: int) -> list[Image.Image]:
    """Resize to (cols·tile, rows·tile) and cut row-major into cols·rows tiles."""
    cols, rows = grid
    resized = image.resize((cols * tile, rows * tile), Image.Resampling.BICUBIC)
    return [
        resized.crop((c * tile, r * tile, (c + 1) * tile, (r + 1) * tile))
        for r in range(rows)
        for c in range(cols)
    ]


@dataclass(frozen=True)
class PreparedPage:
    """One page ready for the encoder: normalised views plus its layout."""

    global_view: np.ndarray  # float32 [3, S, S]
    tiles: np.ndarray  # float32 [n, 3, q, q]; n = 0 when not tiled
    layout: TokenLayout


def prepare(page: PageLike, mode: str | Mode) -> PreparedPage:
    """Page → normalised global view (+ Gundam tiles) and token layout."""
    m = get_mode(mode)
    image = to_rgb(page)
    layout = token_layout(image.width, image.height, m)
    view = normalize(global_view(image, m))
    if layout.num_tiles:
        tiles = np.stack([normalize(t) for t in cut_tiles(image, layout.tiles, m.image_size)])
    else:
        tiles = np.zeros((0, 3, m.image_size, m.image_size), dtype=np.float32)
    return PreparedPage(view, tiles, layout)
