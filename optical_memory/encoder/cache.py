"""Vision tokens as bytes, for the memory's rendition cache (safetensors, never pickle).

One blob holds one page at one tier: a safetensors file with a single tensor
``vision_tokens`` [N, D] (the encoder's dtype, as the LM receives it:
newlines and the view separator in place) and string metadata::

    format   "optical-memory/vision-tokens/1"
    mode     DeepSeek-OCR mode the page was encoded in ("base", "small", ...)
    encoder  :func:`encoder_name` of the encoder that produced it
    layout   JSON: page_size, global_grid, tiles [cols, rows], tile_grid

    blob = pack_tokens(tokens, TokenMeta("base", encoder_name(enc), layout))
    tokens, meta = unpack_tokens(blob)   # VisionTokensError when corrupt

:class:`~optical_memory.memory.OpticalMemory` stores these in
``RenditionRecord.vision_tokens`` with ``RenditionRecord.encoder`` set to the
same name.
"""
from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import asdict, dataclass
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as _st_load, save as _st_save

from optical_memory.encoder.config import DeepEncoderConfig
from optical_memory.encoder.preprocess import MODES, TokenLayout
from optical_memory.errors import InputError, VisionTokensError

TOKENS_KEY = "vision_tokens"
FORMAT = "optical-memory/vision-tokens/1"
#: Largest safetensors header accepted (ours are a few hundred bytes).
MAX_HEADER_BYTES = 64 * 1024
#: Tensors whose first bytes make the weight part of :func:`encoder_name`:
#: small, present in every DeepEncoder, and different for any two checkpoints.
_FINGERPRINT_PARAMS = ("image_newline", "view_seperator", "projector.layers.bias")


@dataclass(frozen=True)
class TokenMeta:
    """What a blob's tensor is: the mode, the encoder and the token layout."""

    mode: str
    encoder: str
    layout: TokenLayout


def pack_tokens(tensor: torch.Tensor, meta: TokenMeta) -> bytes:
    """A [N, D] token tensor and its :class:`TokenMeta` → safetensors bytes.

    The tensor is copied to CPU (dtype kept). :class:`InputError` when it is
    not 2-D, when N differs from ``meta.layout.num_tokens``, or when the
    mode names disagree.
    """
    if not isinstance(tensor, torch.Tensor) or tensor.ndim != 2:
        shape = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
        raise InputError(f"vision tokens must be a [N, D] tensor (got {shape})")
    if not isinstance(meta, TokenMeta):
        raise InputError(f"meta must be a TokenMeta (got {type(meta).__name__})")
    if meta.mode != meta.layout.mode:
        raise InputError(f"meta.mode {meta.mode!r} differs from its layout's {meta.layout.mode!r}")
    if tensor.shape[0] != meta.layout.num_tokens:
        raise InputError(
            f"{tensor.shape[0]} token rows but the {meta.mode} layout has "
            f"{meta.layout.num_tokens}"
        )
    layout = meta.layout
    metadata = {
        "format": FORMAT,
        "mode": meta.mode,
        "encoder": meta.encoder,
        "layout": json.dumps({
            "page_size": list(layout.page_size),
            "global_grid": layout.global_grid,
            "tiles": list(layout.tiles),
            "tile_grid": layout.tile_grid,
        }, sort_keys=True),
    }
    data = tensor.detach().to("cpu").contiguous()
    return _st_save({TOKENS_KEY: data}, metadata=metadata)


def unpack_tokens(blob: bytes | bytearray | memoryview) -> tuple[torch.Tensor, TokenMeta]:
    """Inverse of :func:`pack_tokens`: ``(tensor [N, D] on CPU, meta)``.

    Raises :class:`VisionTokensError` for anything that is not such a blob
    (truncated, bad header, other tensors, missing or inconsistent metadata).
    """
    if not isinstance(blob, bytes | bytearray | memoryview):
        raise VisionTokensError(f"a vision-token blob must be bytes (got {type(blob).__name__})")
    data = bytes(blob)
    metadata = _read_metadata(data)
    try:
        tensors = _st_load(data)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise VisionTokensError(f"vision-token blob is corrupt ({len(data)} bytes): {exc}") from exc
    if set(tensors) != {TOKENS_KEY}:
        raise VisionTokensError(
            f"vision-token blob must hold exactly {TOKENS_KEY!r} (got {sorted(tensors)})"
        )
    tensor = tensors[TOKENS_KEY]
    meta = _meta_from(metadata)
    if tensor.ndim != 2 or tensor.shape[0] != meta.layout.num_tokens:
        raise VisionTokensError(
            f"vision-token blob holds a {tuple(tensor.shape)} tensor but its {meta.mode} layout "
            f"has {meta.layout.num_tokens} tokens"
        )
    return tensor, meta


def _read_metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors header, checked to be ours."""
    if len(data) < 8:
        raise VisionTokensError(f"vision-token blob is truncated ({len(data)} bytes)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > MAX_HEADER_BYTES or 8 + n > len(data):
        raise VisionTokensError(
            f"vision-token blob has a bad header length {n} ({len(data)} bytes in all)"
        )
    try:
        header = json.loads(data[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise VisionTokensError(f"vision-token blob header is not JSON: {exc}") from exc
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        got = metadata.get("format") if isinstance(metadata, dict) else None
        raise VisionTokensError(f"not a vision-token blob: format {got!r} (want {FORMAT!r})")
    return metadata


def _meta_from(metadata: dict[str, str]) -> TokenMeta:
    try:
        mode, encoder = metadata["mode"], metadata["encoder"]
        raw = json.loads(metadata["layout"])
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        width, height = (int(v) for v in raw["page_size"])
        cols, rows = (int(v) for v in raw["tiles"])
        layout = TokenLayout(
            mode=mode,
            page_size=(width, height),
            global_grid=int(raw["global_grid"]),
            tiles=(cols, rows),
            tile_grid=int(raw["tile_grid"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise VisionTokensError(f"vision-token blob has bad metadata: {exc!r}") from exc
    return TokenMeta(mode=mode, encoder=encoder, layout=layout)


def config_hash(config: DeepEncoderConfig) -> str:
    """sha256 (hex) of the encoder config's fields, as sorted JSON."""
    raw = json.dumps(asdict(config), sort_keys=True, default=_jsonable)
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def encoder_name(encoder: Any) -> str:
    """A stable name for what an encoder computes:
    ``deepencoder:<config hash 12>-<weights 8>-<dtype>``.

    The weight part hashes a few small tensors (:data:`_FINGERPRINT_PARAMS`),
    so two seeds or two checkpoints of one config get different names, and
    cached tokens of one are never served for the other.
    """
    digest = hashlib.sha256()
    params = dict(encoder.named_parameters())
    for name in _FINGERPRINT_PARAMS:
        p = params.get(name)
        if p is not None:
            raw = p.detach().to(device="cpu", dtype=torch.float32).contiguous()
            digest.update(name.encode("utf-8"))
            digest.update(raw.numpy().tobytes())
    dtype = str(encoder.dtype).removeprefix("torch.")
    return f"deepencoder:{config_hash(encoder.config)[:12]}-{digest.hexdigest()[:8]}-{dtype}"


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    return str(value)


__all__ = [
    "FORMAT",
    "TOKENS_KEY",
    "TokenMeta",
    "config_hash",
    "encoder_name",
    "pack_tokens",
    "unpack_tokens",
]
