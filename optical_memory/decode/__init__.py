"""Decoders: read page images back to text, proving the pixels still hold it.

    from optical_memory.decode import get_decoder, precision
    result = get_decoder("tesseract").decode(page)      # DecodeResult
    precision(page.text, result.text)                   # 1 - edit distance / max len

Backends (by name): "tesseract" (Debian tesseract-ocr), "rapidocr" (pip
rapidocr + onnxruntime, bundled models), "openai" (any OpenAI-compatible chat
endpoint with image input, e.g. vLLM serving DeepSeek-OCR).
"""
from typing import TYPE_CHECKING, Any

from optical_memory.decode.base import (
    Decoder,
    DecodeResult,
    ImageInput,
    LineGrid,
    available_decoders,
    coerce_image,
    decoder_names,
    get_decoder,
    register_decoder,
    upscale,
)
from optical_memory.decode.metrics import cer, edit_distance, normalize_whitespace, precision

if TYPE_CHECKING:  # pragma: no cover
    from optical_memory.decode.batch import decode_many


def __getattr__(name: str) -> Any:
    # decode_many brings in the process pool machinery (multiprocessing): only
    # when it is used, not with every import of the package
    if name == "decode_many":
        from optical_memory.decode.batch import decode_many

        return decode_many
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DecodeResult",
    "Decoder",
    "ImageInput",
    "LineGrid",
    "available_decoders",
    "cer",
    "coerce_image",
    "decode_many",
    "decoder_names",
    "edit_distance",
    "get_decoder",
    "normalize_whitespace",
    "precision",
    "register_decoder",
    "upscale",
]
