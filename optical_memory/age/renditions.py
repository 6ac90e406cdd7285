"""Tier renditions: a page's image at the size of its age tier.

Every page is stored once as its master PNG; a smaller tier's image is a
resample **of the master** (never a resample of a resample) by the method
measured to read back best at that tier for the memory's decoder
(:func:`~optical_memory.age.legibility.tier_method`; Lanczos, :func:`resample_png`,
on every tier measured so far), stored as a rendition and cached in process
as base64 for the context's hot path. The rendition PNG records how it was
made in a ``tEXt`` chunk (:func:`rendition_meta`: method, and the read-back
measured for the page at that tier with the reader that measured it);
renditions stored before carry none and are Lanczos resamples. With a DeepEncoder configured, every
tier's rendition (the full-size one repeating the master PNG) also carries
the page's vision tokens (:class:`~optical_memory.encoder.page_tokens.PageTokens`).
"""
from __future__ import annotations

import base64
import io
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from optical_memory.cache import LRUCache
from optical_memory.scope import Scope
from optical_memory.tokens.billing import deepseek_mode

if TYPE_CHECKING:  # pragma: no cover
    from optical_memory.age.legibility import Legibility
    from optical_memory.age.policy import AgePolicy
    from optical_memory.encoder.page_tokens import PageTokens
    from optical_memory.store import PageRecord, Store
    from optical_memory.tokens import VisionTarget
    from optical_memory.types import Page

#: ``(page_id, tier, master size, master PNG or None)``: one rendition to make.
Job = tuple[str, str, tuple[int, int], "bytes | None"]
#: Keyword of the ``tEXt`` chunk holding a rendition's meta (JSON).
META_CHUNK = "optical-memory"


def rendition_png(master_png: bytes, size: Sequence[int], method: str = "lanczos",
                  meta: Mapping[str, Any] | None = None) -> bytes:
    """The master resampled to ``size`` by pixel ``method``, as PNG with
    ``{"method": method, **meta}`` in its ``tEXt`` chunk."""
    import numpy as np
    from PIL import Image, PngImagePlugin

    from optical_memory.age.methods import resample_pixels

    with Image.open(io.BytesIO(master_png)) as img:
        img.load()
        gray = np.asarray(img.convert("L"), dtype=np.uint8)
    px = resample_pixels(gray, size, method)
    info = PngImagePlugin.PngInfo()
    info.add_text(META_CHUNK, json.dumps({"method": method, **(meta or {})}, sort_keys=True))
    buf = io.BytesIO()
    Image.fromarray(px).save(buf, format="PNG", optimize=False, compress_level=6, pnginfo=info)
    return buf.getvalue()


def rendition_meta(png: bytes) -> dict[str, Any]:
    """How a stored rendition was made: ``{"method": ..., "readback": ...,
    "reader": ...}`` (``{"method": "lanczos"}`` for renditions stored before
    the method was recorded)."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as img:
        raw = getattr(img, "text", {}).get(META_CHUNK)
    try:
        meta = json.loads(raw) if raw else {}
    except json.JSONDecodeError:
        meta = {}
    return meta if isinstance(meta, dict) and meta.get("method") else {"method": "lanczos"}


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


def resample_page(page: Page, size: Sequence[int]) -> Page:
    """``page`` as a tier image of ``size`` (:func:`resample_png` of its PNG),
    keeping its text, spans and layout meta (what a reader of the tier needs);
    the page itself at its own size."""
    import numpy as np
    from PIL import Image

    from optical_memory.types import Page

    if (int(size[0]), int(size[1])) == (page.width, page.height):
        return page
    with Image.open(io.BytesIO(resample_png(page.to_png(), size))) as im:
        pixels = np.asarray(im.convert("L"), dtype=np.uint8)
    return Page(pixels, page.text, page.spans, page.font_size, meta=page.meta)


class Renditions:
    """Makes, stores and serves tier images of stored pages."""

    def __init__(self, store: Store, aging: AgePolicy, target: VisionTarget, cache: LRUCache,
                 tokens: PageTokens | None = None, legibility: Legibility | None = None,
                 decoder: str = "native") -> None:
        self.store = store
        self.aging = aging
        self.target = target
        self.cache = cache
        self.tokens = tokens
        self.legibility = legibility
        self.decoder = legibility.decoder if legibility is not None else decoder

    def make(self, master_png: bytes, tier: str, size: Sequence[int],
             page_meta: Mapping[str, Any] | None = None) -> bytes:
        """``tier``'s image of a page by the tier's measured method, its meta
        (method; the page's read-back there and the reader, when measured) inside."""
        from optical_memory.age.legibility import measured, tier_method

        meta: dict[str, Any] = {}
        got = measured(page_meta, self.decoder).get(tier)
        if got is not None:
            meta = {"readback": got, "reader": self.decoder}
        return rendition_png(master_png, size, tier_method(self.decoder,
                                                           self.aging.tier(tier).scale), meta)

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
                page_meta = None
                if master_png is None:
                    rec = self.page(page_id, scope)
                    master_png, page_meta = rec.png, rec.meta
                    assert master_png is not None
                png = master_png if full else self.make(master_png, tier, size, page_meta)
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
        png = self.page(page_id, scope).png
        assert png is not None
        return png

    def page(self, page_id: str, scope: Scope) -> PageRecord:
        """The stored page with its master PNG (:class:`NotFoundError` if gone)."""
        from optical_memory.store import NotFoundError

        rec = self.store.get_page(page_id, scope)
        if rec is None or rec.png is None:
            raise NotFoundError(f"no page {page_id!r} under {scope}")
        return rec


__all__ = ["META_CHUNK", "Job", "Renditions", "rendition_meta", "rendition_png", "resample_page",
           "resample_png"]
