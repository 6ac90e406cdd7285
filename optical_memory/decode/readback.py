"""Read-back of stored pages: a page (at any tier) decoded to text and scored
against the text the memory laid on it, and the per-tier measurement behind
``optical-memory tiers``.

Precision is ``1 − edit distance / length`` against the page's stored text,
with the newline marker the memory draws counted as a line break
(:func:`~optical_memory.decode.metrics.precision`); ``None`` when the memory
keeps no text.
"""
from __future__ import annotations

import functools
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from optical_memory.decode.metrics import precision
from optical_memory.render.config import NEWLINE_MARKER, RenderItem

if TYPE_CHECKING:  # pragma: no cover
    from optical_memory.age.legibility import Legibility
    from optical_memory.age.policy import AgePolicy
    from optical_memory.decode.base import Decoder
    from optical_memory.render import Renderer
    from optical_memory.store import PageRecord
    from optical_memory.tokens import TextCounter, VisionTarget
    from optical_memory.types import Page


@dataclass(frozen=True)
class DecodedPage:
    """A page read back. ``precision`` is 1 − edit distance / length against
    the page's stored text (``None`` with ``keep_text=False``)."""

    page_id: str
    tier: str
    width: int
    height: int
    text: str
    decoder: str
    precision: float | None
    seconds: float


@dataclass(frozen=True)
class TierReport:
    """One tier measured on a sample page (``optical-memory tiers``);
    ``calibrated``: the calibrated read-back for the decoder at this tier,
    ``calibrated_source`` "user-calibrated" (the user's own calibration of
    the decoder) or "calibrated" (shipped, held-out pages, CPU readers);
    ``method``: how the tier image is made."""

    tier: str
    max_age: int | None
    width: int
    height: int
    vision_tokens: int
    text_tokens: int
    ratio: float
    precision: float | None
    seconds: float | None
    calibrated: float | None = None
    method: str = "master"
    calibrated_source: str = "calibrated"


class Decoders:
    """The decoders a memory uses, built once per (name, options); the
    memory's own decoder gets its ``options``.

    :meth:`for_page` reads a page with the options its meta calls for
    (:func:`~optical_memory.decode.languages.page_options`: tesseract
    languages from the page's scripts, rapidocr's line grid); options the
    memory was given explicitly win over them.
    """

    def __init__(self, default: str, options: Mapping[str, Any] | None = None) -> None:
        self.default = default
        self.options = dict(options or {})
        self._built: dict[tuple[str, str], Decoder] = {}
        self._lock = threading.Lock()

    def get(self, name: str | None = None, page_options: Mapping[str, Any] | None = None
            ) -> Decoder:
        """Decoder ``name`` (default: the memory's) with ``page_options``
        under the memory's own options."""
        name = name or self.default
        opts = dict(page_options or {})
        if name == self.default:
            if "lang" in self.options:  # a language named by the caller must be there
                opts.pop("lang_fallback", None)
            opts.update(self.options)
        key = (name, repr(sorted(opts.items())))
        with self._lock:
            dec = self._built.get(key)
        if dec is None:
            from optical_memory.decode.base import get_decoder

            dec = get_decoder(name, **opts)
            with self._lock:
                if len(self._built) >= 64:  # bounded: one entry per layout and language set
                    self._built.clear()
                dec = self._built.setdefault(key, dec)
        return dec

    def for_page(self, page: Any, name: str | None = None) -> Decoder:
        """The decoder reading ``page`` (a Page or PageRecord: its ``meta``,
        and its ``text`` for pages stored before scripts were recorded).

        The memory's own decoder, when it is ``native``, hands a page holding
        scripts the native reader does not read well (:data:`NATIVE_SCRIPTS`;
        e.g. Russian, Chinese, Thai, Hebrew) to tesseract, or to rapidocr when tesseract is
        not installed and rapidocr reads them; a decoder named for the call
        is used as named."""
        from optical_memory.decode.languages import page_options, page_shares

        text = getattr(page, "text", None)
        shares = page_shares(page.meta, text)
        if name is None and self.default == "native":
            name = native_fallback(shares) or "native"
        name = name or self.default
        return self.get(name, page_options(name, page.meta, text, shares=shares))

    def read(self, page: Page) -> str:
        """The default decoder's text for a rendered ``page``, read with the
        options its scripts and layout call for."""
        return self.for_page(page).decode(page).text


#: Scripts the native reader reads well enough to keep (held-out gettext
#: catalogues, ``benchmarks/reader_unshaped.py``): Russian, since it trained
#: on Russian man pages and word-list sentences, ~0.99 fresh and at 640²
#: (tesseract ``rus+eng`` 0.97 fresh, 0.89 at 640²); Greek 0.98 (tesseract
#: without the ``ell`` pack: 0.28). Other scripts go to the fallback.
NATIVE_SCRIPTS = frozenset({"latin", "greek", "cyrillic"})


@functools.lru_cache(maxsize=1)
def _installed() -> frozenset[str]:
    from optical_memory.decode.base import available_decoders

    return frozenset(n for n, ok in available_decoders().items() if ok is True)


def native_fallback(shares: Mapping[str, float]) -> str | None:
    """The decoder reading a page of script ``shares`` instead of ``native``:
    None when native reads every script holding at least
    :data:`~optical_memory.scripts.MIN_SHARE` of its letters; else tesseract
    if installed, else rapidocr if installed and it reads those scripts,
    else None (native reads it anyway and marks what it cannot read)."""
    from optical_memory.decode.languages import RAPIDOCR_SCRIPTS
    from optical_memory.scripts import MIN_SHARE

    other = {s for s, v in shares.items() if v >= MIN_SHARE and s not in NATIVE_SCRIPTS}
    if not other:
        return None
    installed = _installed()
    if "tesseract" in installed:
        return "tesseract"
    if "rapidocr" in installed and other <= RAPIDOCR_SCRIPTS:
        return "rapidocr"
    return None


def with_layout(png: bytes, meta: Mapping[str, Any], decoder: Decoder) -> Any:
    """What ``decoder`` is given for a stored page's (tier) image: the PNG, or
    for a decoder that finds lines from the layout (``uses_layout``) a
    :class:`~optical_memory.types.Page` of it carrying the page's layout meta."""
    if not getattr(decoder, "uses_layout", False):
        return png
    import numpy as np

    from optical_memory.decode.base import coerce_image
    from optical_memory.types import Page

    pixels = np.asarray(coerce_image(png), dtype=np.uint8)
    return Page(pixels=pixels, text="", spans=(), font_size=float(meta.get("font_size", 0) or 0),
                meta=dict(meta))


def read_page(rec: PageRecord, png: bytes, tier: str, size: tuple[int, int],
              decoder: Decoder) -> DecodedPage:
    """``rec`` decoded from its tier image ``png`` and scored against its text."""
    result = decoder.decode(with_layout(png, rec.meta, decoder))
    prec = None
    if rec.text is not None:
        prec = precision(rec.text, result.text, marker=NEWLINE_MARKER)
    return DecodedPage(rec.id, tier, size[0], size[1], result.text, result.decoder, prec,
                       result.seconds)


def sample_items(sample: str | None, counter: TextCounter) -> list[RenderItem]:
    """What ``optical-memory tiers`` measures: ``sample`` as a text, or (``None``)
    the turns of the synthetic conversation."""
    from optical_memory.errors import EmptyInputError

    if sample is None:
        from optical_memory.conversation import generate_conversation
        from optical_memory.ingest import turn_draft

        conv = generate_conversation(tokens=8000, seed=7)
        return [turn_draft(m, i, counter, keep_text=True).render
                for i, m in enumerate(conv.messages)]
    if not isinstance(sample, str) or not sample.strip():
        raise EmptyInputError("the sample text is empty")
    return [RenderItem("sample", "text", sample)]


def measure_tiers(items: Sequence[RenderItem], renderer: Renderer, aging: AgePolicy,
                  target: VisionTarget, counter: TextCounter,
                  decoder: Decoder | Decoders | None, decoder_name: str = "", *,
                  legibility: Legibility | None = None) -> list[TierReport]:
    """Each tier's size, token cost, ratio and read-back (``decoder``, or the
    memory's :class:`Decoders` reading the page with the options its scripts
    call for; ``None`` skips reading) on the first page ``items`` fill, with
    the calibrated figure ``legibility`` (the memory's) gives the tier (else
    the shipped one)."""
    from optical_memory.age.legibility import calibrated_readback, tier_method
    from optical_memory.age.methods import resample_pixels
    from optical_memory.render.paging import page_holding
    from optical_memory.tokens.billing import image_tokens
    from optical_memory.types import encode_png

    page = renderer.draw(renderer.layout(list(items))[0])
    if isinstance(decoder, Decoders):
        decoder_name = decoder_name or decoder.default
        decoder = decoder.for_page(page)
    decoder_name = decoder_name or getattr(decoder, "name", "")
    texts = {it.item_id: it.text for it in items}
    held = page_holding(page.spans, texts, {}, counter).text_tokens
    master = page.to_png()
    out = []
    for tier in aging.tiers:
        w, h = aging.size(tier, (page.width, page.height))
        method = tier_method(decoder_name, tier.scale)
        png = master if method == "master" else encode_png(
            resample_pixels(page.pixels, (w, h), method))
        vt = image_tokens(target, w, h)
        prec = secs = None
        if decoder is not None:
            res = decoder.decode(with_layout(png, page.meta, decoder))
            prec = precision(page.text, res.text, marker=NEWLINE_MARKER)
            secs = res.seconds
        cal, source = calibrated_readback(decoder_name, tier.scale), "calibrated"
        if legibility is not None:
            rb = legibility.readback(None, tier.name)
            cal, source = rb.value, rb.source
        out.append(TierReport(tier.name, tier.max_age, w, h, vt, held, held / vt, prec, secs,
                              cal, method, source))
    return out


__all__ = ["NATIVE_SCRIPTS", "DecodedPage", "Decoders", "TierReport", "measure_tiers",
           "native_fallback", "read_page", "sample_items", "with_layout"]
