"""Tier renditions: a page's image at the size of its age tier.

Every page is stored once as its master PNG; a smaller tier's image is a
Lanczos resample **of the master** (:func:`resample_png`; never a re-render,
never a resample of a resample), stored as a rendition and cached in process
as base64 for the context's hot path. With a DeepEncoder configured, every
tier's rendition (the full-size one repeating the master PNG) also carries
the page's vision tokens (:class:`~optical_memory.encoder.page_tokens.PageTokens`).
"""
from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

from optical_memory.cache import LRUCache
from optical_memory.scope import Scope
from optical_memory.tokens.billing import deepseek_mode

if TYPE_CHECKING:  # pragma: no cover
    from optical_memory.age.policy import AgePolicy
    from optical_memory.encoder.page_tokens import PageTokens
    from optical_memory.store import PageRecord, Store
    from optical_memory.tokens import VisionTarget

#: ``(page_id, tier, master size, master PNG or None)``: one rendition to make.
Job = tuple[str, str, tuple[int, int], "bytes | None"]


def resample_png(master_png: bytes, size: Sequence[int]) -> bytes:
    """Lanczos-resample a master page PNG to ``size`` and encode it as PNG.

    The one function aging uses, so a test can compare a stored rendition to
    a direct resample of the master.
    """
    import numpy as np
    from PIL import Image

    from optical_memory.types import encode_png

    with Image.open(io.BytesIO(master_png)) as img:
        img.load()
        gray = img.convert("L")
    w, h = int(size[0]), int(size[1])
    if (w, h) != gray.size:
        gray = gray.resize((w, h), Image.Resampling.LANCZOS)
    return encode_png(np.asarray(gray, dtype=np.uint8))


class Renditions:
    """Makes, stores and serves tier images of stored pages."""

    def __init__(self, store: Store, aging: AgePolicy, target: VisionTarget, cache: LRUCache,
                 tokens: PageTokens | None = None) -> None:
        self.store = store
        self.aging = aging
        self.target = target
        self.cache = cache
        self.tokens = tokens

    def ensure(self, jobs: Sequence[Job], scope: Scope) -> None:
        """Store each job's tier rendition unless present. Without an encoder
        a full-size tier needs none (the master is its image); with one,
        every tier gets a rendition holding the page's vision tokens by this
        encoder, encoded in batches per mode."""
        from optical_memory.store import RenditionRecord

        to_encode: list[tuple[str, str, tuple[int, int], bytes]] = []
        for page_id, tier, master, master_png in jobs:
            size = self.aging.size(tier, master)
            full = size == tuple(master)
            if full and self.tokens is None:
                continue
            rend = self.store.get_rendition(page_id, tier, scope)
            if rend is not None and (self.tokens is None or (
                    rend.encoder == self.tokens.name and rend.vision_tokens is not None)):
                continue
            if rend is not None:
                png = rend.png
            else:
                if master_png is None:
                    master_png = self.master_png(page_id, scope)
                png = master_png if full else resample_png(master_png, size)
            if self.tokens is None:
                self.store.put_rendition(
                    RenditionRecord(page_id, tier, size[0], size[1], png), scope)
            else:
                to_encode.append((page_id, tier, size, png))
        if not to_encode:
            return
        assert self.tokens is not None
        modes = [deepseek_mode(self.target, w, h) for _, _, (w, h), _ in to_encode]
        encoded = self.tokens.encode([png for *_, png in to_encode], modes)
        for (page_id, tier, size, png), (tensor, layout) in zip(to_encode, encoded):
            self.tokens.put(page_id, tier, size, png, tensor, layout, scope)

    def png(self, page: PageRecord, tier: str, scope: Scope) -> bytes:
        """The page's PNG at ``tier``: the master for a full-size tier, else
        the stored (or freshly made) rendition."""
        from optical_memory.store import NotFoundError

        master = (page.width, page.height)
        size = self.aging.size(tier, master)
        if size == master:
            return page.png if page.png is not None else self.master_png(page.id, scope)
        rend = self.store.get_rendition(page.id, tier, scope)
        if rend is None:
            self.ensure([(page.id, tier, master, page.png)], scope)
            rend = self.store.get_rendition(page.id, tier, scope)
            if rend is None:  # deleted by another process meanwhile
                raise NotFoundError(f"no page {page.id!r} under {scope}")
        return rend.png

    def b64(self, page: PageRecord, scope: Scope) -> str:
        """Base64 of the page's PNG at its current tier (cached)."""
        return self.cache.get_or_make(
            ("b64", page.id, page.tier),
            lambda: base64.b64encode(self.png(page, page.tier, scope)).decode("ascii"),
            len)

    def master_png(self, page_id: str, scope: Scope) -> bytes:
        from optical_memory.store import NotFoundError

        rec = self.store.get_page(page_id, scope)
        if rec is None or rec.png is None:
            raise NotFoundError(f"no page {page_id!r} under {scope}")
        return rec.png


__all__ = ["Job", "Renditions", "resample_png"]
