"""Vision tokens of stored pages: batching pages through a DeepEncoder, and
the token cache (in process, and in the store as a safetensors blob on each
page's tier rendition).

A page is encoded in the DeepSeek-OCR mode its tier is billed in
(:func:`~optical_memory.tokens.billing.deepseek_mode`), once per page and
tier; a blob made by another encoder (config, weights or dtype: its
:func:`~optical_memory.encoder.cache.encoder_name`) is recomputed.
"""
from __future__ import annotations

import base64
import hashlib
import io
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from optical_memory.cache import LRUCache
from optical_memory.config import ENCODE_BATCH
from optical_memory.errors import ConfigError, VisionTokensError
from optical_memory.scope import Scope
from optical_memory.tokens.billing import deepseek_mode

if TYPE_CHECKING:  # pragma: no cover - torch is optional
    from optical_memory.context import ContextPage
    from optical_memory.encoder.model import DeepEncoder
    from optical_memory.store import Store
    from optical_memory.tokens import VisionTarget

logger = logging.getLogger(__name__)


def check_token_target(target: VisionTarget) -> None:
    """:class:`ConfigError` unless ``target`` bills what a DeepEncoder gives:
    a deepseek-ocr mode with its newlines and separator (not ``-raw``)."""
    if target.family != "deepseek-ocr" or target.name.endswith("-raw"):
        raise ConfigError(
            f"the encoder needs a deepseek-ocr target (e.g. 'deepseek-ocr:base'), whose "
            f"token counts include the newlines and separator it outputs (got {target.name!r})"
        )


def check_encoder(encoder: Any, target: VisionTarget) -> str:
    """Check an ``encoder`` argument against the memory's ``target``; its
    cache name (:func:`~optical_memory.encoder.cache.encoder_name`)."""
    check_token_target(target)
    from optical_memory.encoder import DeepEncoder
    from optical_memory.encoder.cache import encoder_name
    from optical_memory.encoder.preprocess import PIXELS_PER_TOKEN

    if not isinstance(encoder, DeepEncoder):
        raise ConfigError(f"encoder must be a DeepEncoder (got {type(encoder).__name__})")
    step = encoder.config.pixels_per_token
    if step != PIXELS_PER_TOKEN:
        raise ConfigError(f"the encoder's config gives one token per {step} px; DeepSeek-OCR "
                          f"modes need {PIXELS_PER_TOKEN} (patch 16 x compressor 4)")
    return encoder_name(encoder)


def tensor_bytes(tensor: Any) -> int:
    return int(tensor.numel()) * int(tensor.element_size())


class PageTokens:
    """Encodes page PNGs and keeps their tokens (store + ``cache``)."""

    def __init__(self, store: Store, encoder: DeepEncoder, target: VisionTarget,
                 cache: LRUCache) -> None:
        self.store = store
        self.encoder = encoder
        self.name = check_encoder(encoder, target)
        self.cache = cache

    def encode(self, pngs: Sequence[bytes], modes: Sequence[str]) -> list[tuple[Any, Any]]:
        """``(tensor [N, D] on CPU, TokenLayout)`` per PNG, each in its mode,
        :data:`~optical_memory.config.ENCODE_BATCH` pages per encoder call."""
        import numpy as np
        from PIL import Image

        out: list[tuple[Any, Any] | None] = [None] * len(pngs)
        by_mode: dict[str, list[int]] = {}
        for i, mode in enumerate(modes):
            by_mode.setdefault(mode, []).append(i)
        for mode, idx in by_mode.items():
            for start in range(0, len(idx), ENCODE_BATCH):
                chunk = idx[start:start + ENCODE_BATCH]
                images = []
                for i in chunk:
                    with Image.open(io.BytesIO(pngs[i])) as img:
                        images.append(np.asarray(img.convert("L"), dtype=np.uint8))
                result = self.encoder.encode(images, mode)
                for i, tensor, layout in zip(chunk, result.embeddings, result.layouts):
                    out[i] = (tensor.detach().to("cpu"), layout)
        logger.debug("encoded %d page images (%s)", len(pngs), ", ".join(sorted(by_mode)))
        return [o for o in out if o is not None]

    def put(self, page_id: str, tier: str, size: tuple[int, int], png: bytes,
            tensor: Any, layout: Any, scope: Scope) -> None:
        """Store ``page_id``'s ``tier`` rendition with its tokens, and cache them."""
        from optical_memory.encoder.cache import TokenMeta, pack_tokens
        from optical_memory.store import RenditionRecord

        blob = pack_tokens(tensor, TokenMeta(layout.mode, self.name, layout))
        self.store.put_rendition(RenditionRecord(page_id, tier, size[0], size[1], png,
                                                 vision_tokens=blob, encoder=self.name), scope)
        self._remember((page_id, tier, layout.mode), tensor, layout)

    def _remember(self, key: tuple[str, str, str], tensor: Any, layout: Any) -> None:
        self.cache.put(("tokens", *key), (tensor, layout), tensor_bytes(tensor))

    def for_context(self, pages: Sequence[ContextPage], target: VisionTarget, scope: Scope
                    ) -> list[tuple[Any, Any]]:
        """``(tensor, layout)`` per context page: from the in-process cache,
        else the stored rendition's blob, else encoded now (and stored for
        stored pages; pending pages are cached in process only)."""
        from optical_memory.encoder.cache import unpack_tokens

        found: list[tuple[Any, Any] | None] = [None] * len(pages)
        keys, modes, missing = [], [], []
        for i, p in enumerate(pages):
            mode = deepseek_mode(target, p.width, p.height)
            ident = p.page_id or "pending:" + hashlib.sha256(p.png_b64.encode("ascii")).hexdigest()
            key = (ident, p.tier, mode)
            keys.append(key)
            modes.append(mode)
            hit = self.cache.get(("tokens", *key))
            if hit is not None:
                found[i] = hit
                continue
            if p.page_id is not None:
                rend = self.store.get_rendition(p.page_id, p.tier, scope)
                if rend is not None and rend.vision_tokens and rend.encoder == self.name:
                    try:
                        tensor, meta = unpack_tokens(rend.vision_tokens)
                    except VisionTokensError as exc:
                        logger.warning("recomputing vision tokens of page %s (%s): %s",
                                       p.page_id, p.tier, exc)
                    else:
                        if meta.mode == mode and meta.encoder == self.name:
                            self._remember(key, tensor, meta.layout)
                            found[i] = (tensor, meta.layout)
                            continue
            missing.append(i)
        if missing:
            pngs = [base64.b64decode(pages[i].png_b64) for i in missing]
            encoded = self.encode(pngs, [modes[i] for i in missing])
            for i, png, (tensor, layout) in zip(missing, pngs, encoded):
                p = pages[i]
                if p.page_id is not None:
                    self.put(p.page_id, p.tier, (p.width, p.height), png, tensor, layout, scope)
                else:
                    self._remember(keys[i], tensor, layout)
                found[i] = (tensor, layout)
        out = [f for f in found if f is not None]
        for p, (tensor, _) in zip(pages, out):
            if tensor.shape[0] != p.vision_tokens:
                raise ConfigError(
                    f"the encoder gave {tensor.shape[0]} vision tokens for page {p.page_id} "
                    f"({p.tier}, {p.width}x{p.height}) but {target.name} bills {p.vision_tokens}"
                )
        return out


__all__ = ["PageTokens", "check_encoder", "check_token_target", "tensor_bytes"]
