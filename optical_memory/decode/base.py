"""The decoder protocol, its result type, image coercion and the registry.

A decoder reads a page image back to text. Every backend takes the same
inputs (see :data:`ImageInput`) and returns a :class:`DecodeResult`; backends
are looked up by name with :func:`get_decoder` so callers (CLI, benchmarks,
the memory facade) never import a backend module directly, and a backend
whose dependency is absent costs nothing until it is asked for.
"""
from __future__ import annotations

import importlib
import inspect
import io
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Union, runtime_checkable

from optical_memory.errors import InputError, UnknownDecoderError
from optical_memory.types import Page

if TYPE_CHECKING:  # numpy and PIL are imported where images are touched
    import numpy as np
    import PIL.Image

logger = logging.getLogger(__name__)

# A Page, a uint8 array [H, W] or [H, W, 3] (RGB), a PIL image, encoded image
# bytes (PNG/JPEG/...) or a path to an image file.
ImageInput = Union[Page, "np.ndarray", "PIL.Image.Image", bytes, str, os.PathLike]

#: Most pixels an input image may have (5,000 x 5,000; a page is at most 1,280²,
#: 2,560² once upscaled for OCR). Decoding holds about five bytes per pixel at
#: worst (RGBA), so this bounds a decode near 150 MB. Encoded images
#: are checked from their header before decoding, so a decompression bomb is
#: refused without being inflated.
MAX_IMAGE_PIXELS = 25_000_000
# What Pillow raises on malformed files (DecompressionBombError subclasses
# Exception only; broken chunks surface as SyntaxError / ValueError / EOFError).
_PIL_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, SyntaxError, EOFError)


@dataclass(frozen=True)
class DecodeResult:
    """What one decoder read from one image.

    text:    the text read, lines joined by "\\n", trailing whitespace stripped.
    decoder: the registry name of the decoder that read it.
    seconds: wall time of the read (coercion and resampling included).
    meta:    backend details (image size, scale, model, usage, ...).
    """

    text: str
    decoder: str
    seconds: float
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LineGrid:
    """Where the text lines of a page lie, for decoders that read line by line.

    top:    px from the top edge to the top of the first line (the margin);
    pitch:  px from one line's top to the next (font size × line spacing);
    height: the page height ``top`` and ``pitch`` are measured at. An image of
            another height (an aged tier, an upscaled copy) is mapped by
            proportion.

    The renderer lays every line of a page on this grid (whatever the style
    or fallback face), so a page the memory wrote can be cut into lines
    without detecting them (:meth:`of_page` reads the grid from page meta).
    """

    top: float
    pitch: float
    height: int

    def __post_init__(self) -> None:
        if not (self.top >= 0 and self.pitch > 0 and self.height > 0):
            raise InputError(f"line grid needs top >= 0, pitch > 0, height > 0 (got {self})")

    @classmethod
    def of_page(cls, meta: Any) -> LineGrid | None:
        """The grid of a page from its layout meta (``margin``, ``font_size``,
        ``line_spacing``, ``height``, as the renderer records them), or ``None``."""
        try:
            pitch = float(meta["font_size"]) * float(meta["line_spacing"])
            return cls(float(meta["margin"]), pitch, int(meta["height"]))
        except (KeyError, TypeError, ValueError, InputError):
            return None

    def rows(self, image_height: int, pad: float = 0.1) -> list[tuple[int, int, int, int]]:
        """Each line's rows in an image ``image_height`` px tall: (y0, y1) of
        the line widened by ``pad`` × pitch on both sides (glyphs may overhang
        their line box), then (c0, c1), its inner part (the box minus 20% on
        both sides) where a line that holds text has ink."""
        import numpy as np

        scale = image_height / self.height
        top, pitch = self.top * scale, self.pitch * scale
        count = int((self.height - 2 * self.top) // self.pitch)
        out = []
        for i in range(count):
            y = top + i * pitch
            y0 = max(0, int(y - pad * pitch))
            y1 = min(image_height, int(np.ceil(y + pitch + pad * pitch)))
            c0, c1 = int(y + 0.2 * pitch), int(np.ceil(y + 0.8 * pitch))
            if y1 > y0:
                out.append((y0, y1, c0, max(c1, c0 + 1)))
        return out


@runtime_checkable
class Decoder(Protocol):
    """Anything that reads an image back to text."""

    name: str

    def decode(self, image: ImageInput) -> DecodeResult: ...


# --------------------------------------------------------------------------
# Image coercion


def coerce_image(image: ImageInput):  # -> PIL.Image.Image
    """Turn any :data:`ImageInput` into an 8-bit gray PIL image (mode "L").

    Pages are gray; colour is converted with the usual luma weights and
    transparency is composited onto white (see :func:`_normalise_mode` for
    every mode, animated images and EXIF orientation), in bounded memory.
    Raises :class:`InputError` naming the input when it cannot be read.
    """
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    bad_image: tuple[type[BaseException], ...] = (
        UnidentifiedImageError, Image.DecompressionBombError, *_PIL_ERRORS)
    if isinstance(image, Page):
        img = Image.fromarray(np.ascontiguousarray(image.pixels, dtype=np.uint8))
    elif isinstance(image, np.ndarray):
        img = _array_to_pil(image)
    elif isinstance(image, Image.Image):
        img = image
    elif isinstance(image, (bytes, bytearray, memoryview)):
        try:
            img = Image.open(io.BytesIO(bytes(image)))
            _check_pixels(img.width, img.height)
            img.load()
        except InputError:
            raise
        except bad_image as exc:
            raise InputError(
                f"cannot decode image bytes ({len(image)} bytes, "
                f"starting {bytes(image[:8])!r}): {exc}"
            ) from exc
    elif isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if not path.is_file():
            raise InputError(f"image file not found: {str(path)!r}")
        try:
            img = Image.open(path)
            _check_pixels(img.width, img.height)
            img.load()
        except InputError:
            raise
        except bad_image as exc:
            raise InputError(f"cannot read image file {str(path)!r}: {exc}") from exc
    else:
        raise InputError(
            "image must be a Page, numpy array, PIL image, image bytes or a path "
            f"(got {type(image).__name__})"
        )
    _check_pixels(img.width, img.height)
    return _normalise_mode(img)


def _check_pixels(width: int, height: int) -> None:
    if width * height > MAX_IMAGE_PIXELS:
        raise InputError(f"image too large: {width}x{height} = {width * height} pixels "
                         f"(limit {MAX_IMAGE_PIXELS})")


def _array_to_pil(arr: np.ndarray):
    import numpy as np
    from PIL import Image

    if arr.dtype != np.uint8:
        raise InputError(f"image array must be uint8 (got {arr.dtype})")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        return Image.fromarray(np.ascontiguousarray(arr))
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        return Image.fromarray(np.ascontiguousarray(arr))  # RGB or RGBA
    raise InputError(f"image array must be [H, W], [H, W, 3] or [H, W, 4] (got shape {arr.shape})")


#: Rows converted at a time when an image is brought to 8-bit gray, so the
#: conversion holds one strip of temporaries, never a second full-size copy.
_STRIP_ROWS = 256
#: EXIF orientation tag → the transpose that shows the image upright.
_EXIF_TRANSPOSE = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM",
                   5: "TRANSPOSE", 6: "ROTATE_270", 7: "TRANSVERSE", 8: "ROTATE_90"}


def _normalise_mode(img):
    """``img`` as an 8-bit gray ("L") image, upright, in bounded memory.

    Every mode is converted strip by strip (:data:`_STRIP_ROWS` rows) into one
    preallocated uint8 array: 1/8/16/32-bit and float gray (16-bit and wider
    rescaled to 0..255 by the image's maximum, not clipped), palette,
    gray+alpha and RGBA (composited onto white: a transparent background
    would read as black), RGB, CMYK. The first frame of an animated image
    is used; an EXIF orientation is applied. Peak memory beyond the decoded
    image is about one byte per pixel.
    """
    from PIL import Image

    if img.width == 0 or img.height == 0:
        raise InputError(f"image is empty ({img.width}x{img.height})")
    orientation = _exif_orientation(img)
    if img.mode == "L":
        gray = img
    elif img.mode == "1":
        gray = img.convert("L")
    else:
        gray = Image.fromarray(_gray_strips(img))
    if orientation in _EXIF_TRANSPOSE:
        gray = gray.transpose(getattr(Image.Transpose, _EXIF_TRANSPOSE[orientation]))
    return gray


def _exif_orientation(img) -> int:
    try:
        return int(img.getexif().get(0x0112, 1))
    except Exception:  # a broken EXIF block must not make the image unreadable
        return 1


def _gray_strips(img) -> np.ndarray:
    import numpy as np
    from PIL import Image

    w, h = img.size
    out = np.empty((h, w), dtype=np.uint8)
    wide = img.mode.startswith("I") or img.mode == "F"
    scale = 1.0
    if wide:
        _, hi = img.getextrema()
        scale = 255.0 / float(hi) if hi and hi > 255 else 1.0
    alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        img.mode == "P" and "transparency" in img.info)
    for y in range(0, h, _STRIP_ROWS):
        strip = img.crop((0, y, w, min(h, y + _STRIP_ROWS)))
        if wide:
            arr = np.asarray(strip, dtype=np.float32) * np.float32(scale)
            out[y:y + arr.shape[0]] = np.clip(arr, 0, 255).astype(np.uint8)
            continue
        if alpha:
            rgba = strip.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            strip = Image.alpha_composite(white, rgba)
        out[y:y + strip.height] = np.asarray(strip.convert("L"), dtype=np.uint8)
    return out


def upscale(img, long_side: int | None):  # (PIL.Image, int|None) -> (PIL.Image, float)
    """Enlarge ``img`` with Lanczos so its long side is ``long_side`` px.

    Aged pages are resampled down (e.g. 1024 → 640 or 512); CPU OCR reads
    them far better after scaling back up than at their stored size (10 px
    text aged to 512 and upscaled reads 0.97 with rapidocr, 0.53 with
    tesseract; see ``docs/measurements.md``). Images already that large, or
    ``long_side`` None, are returned unchanged. Returns (image, scale factor applied).
    """
    if long_side is None:
        return img, 1.0
    if long_side <= 0:
        raise InputError(f"upscale_to must be a positive int or None (got {long_side})")
    current = max(img.width, img.height)
    if current >= long_side:
        return img, 1.0
    from PIL import Image

    scale = long_side / current
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    return img.resize(size, Image.Resampling.LANCZOS), scale


def encode_image(img, fmt: str = "PNG") -> bytes:
    """Encode a PIL image (PNG by default) to bytes."""
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def clean_text(text: str) -> str:
    """Strip trailing whitespace per line and blank lines at both ends.

    Line structure is kept; form feeds (tesseract's page break) are dropped.
    """
    lines = [line.rstrip() for line in text.replace("\f", "\n").replace("\r\n", "\n").split("\n")]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Registry

# name -> "module:attribute" of a decoder class (imported on demand) or a
# factory callable registered at run time.
_REGISTRY: dict[str, str | Callable[..., Decoder]] = {
    "native": "optical_memory.decode.native:NativeDecoder",
    "openai": "optical_memory.decode.openai_compat:OpenAICompatDecoder",
    "rapidocr": "optical_memory.decode.rapidocr:RapidOCRDecoder",
    "tesseract": "optical_memory.decode.tesseract:TesseractDecoder",
}


def register_decoder(name: str, factory: str | Callable[..., Decoder]) -> None:
    """Register a decoder under ``name``.

    ``factory`` is a class/callable taking keyword options, or a
    "module:attribute" string resolved on first use. Use the string form for
    decoders that :func:`decode_many` must build in worker processes started
    with "spawn", since those do not inherit run-time registrations.
    """
    if not name or not isinstance(name, str):
        raise InputError(f"decoder name must be a non-empty str (got {name!r})")
    _REGISTRY[name] = factory


def decoder_names() -> list[str]:
    return sorted(_REGISTRY)


def check_decoder_name(name: object) -> str:
    """``name`` if a decoder is registered under it, else :class:`UnknownDecoderError`
    (nothing is imported)."""
    if not isinstance(name, str) or name not in _REGISTRY:
        raise UnknownDecoderError(f"unknown decoder {name!r} (known: {', '.join(decoder_names())})")
    return name


def _resolve(name: str) -> Callable[..., Decoder]:
    entry = _REGISTRY[check_decoder_name(name)]
    if isinstance(entry, str):
        module_name, _, attr = entry.partition(":")
        return getattr(importlib.import_module(module_name), attr)
    return entry


def get_decoder(name: str, **options: Any) -> Decoder:
    """Build the decoder registered as ``name`` with keyword ``options``.

    Raises :class:`UnknownDecoderError` for an unknown name,
    :class:`InputError` for an option the decoder does not take, and
    :class:`DependencyMissingError` (naming what to install) when the
    backend's binary or package is absent.
    """
    factory = _resolve(name)
    _check_options(name, factory, options)
    return factory(**options)


def _check_options(name: str, factory: Callable[..., Any], options: dict[str, Any]) -> None:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    known = [p for p, v in params.items() if v.kind is not inspect.Parameter.VAR_POSITIONAL]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise InputError(
            f"unknown option(s) {', '.join(map(repr, unknown))} for decoder {name!r} "
            f"(known: {', '.join(known)})"
        )


def available_decoders() -> dict[str, bool | str]:
    """Name → True when the decoder can run here, else the reason it cannot.

    Each backend class may define a ``availability()`` classmethod returning
    True or a reason string; backends without one are assumed available.
    """
    out: dict[str, bool | str] = {}
    for name in decoder_names():
        try:
            factory = _resolve(name)
        except ImportError as exc:  # a backend module failing to import
            out[name] = f"cannot import: {exc}"
            continue
        check = getattr(factory, "availability", None)
        out[name] = check() if callable(check) else True
    return out
