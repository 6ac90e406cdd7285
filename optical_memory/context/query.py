"""Query-aware context: the passages matching a question, given again at
full resolution or as exact text, whichever costs the target fewer tokens.

Aged pages are shrunk (a forgetting curve) and a fact on a ``small`` or
``tiny`` page may no longer read back. For ``context(budget, query=...)``
the memory searches the query and takes the best passages that sit on pages
the context does not show at the fresh tier (an aged page, or one dropped
for the budget). Each passage is

- **re-drawn at full resolution**: the passage's exact source text laid out
  with the memory's own layout (font size, spacing) on small images as wide
  as the cheapest image the target bills, cut to the lines drawn — what a
  full-resolution crop of the master page around the passage shows; or
- **given as exact text**.

:func:`make_view` prices both (:func:`~optical_memory.tokens.billing.image_tokens`
for the images, the tokenizer for the text, each with its message framing)
and keeps the cheaper; the page budget shrinks by what the view costs
(``Accounting.query_tokens``). Needs the memory's exact text
(``keep_text=True``); without it a query adds nothing.
"""
from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from optical_memory.context.budget import MESSAGE_OVERHEAD
from optical_memory.tokens.billing import image_tokens

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from optical_memory.render import Renderer
    from optical_memory.tokens import VisionTarget

#: Passages a query brings at most.
QUERY_K = 3
#: Opens the query message when the passages come as images.
QUERY_IMAGES_NOTE = ("Passages of earlier pages that match the current question, "
                     "drawn again at full resolution:")
#: Opens the query message when the passages come as exact text.
QUERY_TEXT_NOTE = "Exact text of passages of earlier pages that match the current question:"
#: Image widths tried for the full-resolution passages (at most the page's).
ZOOM_WIDTHS = (512, 640, 768, 1024)


@dataclass(frozen=True)
class QueryPassage:
    """A passage a query brought: the page holding it, that page's tier in
    the store, and the exact text."""

    page_id: str
    tier: str | None
    item_id: str | None
    text: str


@dataclass(frozen=True)
class QueryView:
    """What a query added to a context.

    mode: ``"image"`` (passages re-drawn at full resolution), ``"text"``
          (exact text) or ``"none"`` (nothing matched off the readable pages).
    tokens: what the query message costs (framing + note + images or text).
    text_tokens / image_tokens: what each option would cost (the cheaper is
          ``tokens``; 0 for ``"none"``).
    text: the message's text (the note; in text mode, the passages too).
    images: base64 PNGs (image mode); sizes: their (width, height);
    layouts: the layout each image was drawn with (``Page.meta`` keys, the
          height that of the cut image): a reader's line grid.
    """

    query: str
    mode: str
    passages: tuple[QueryPassage, ...] = ()
    tokens: int = 0
    text_tokens: int = 0
    image_tokens: int = 0
    text: str = ""
    images: tuple[str, ...] = ()
    sizes: tuple[tuple[int, int], ...] = ()
    layouts: tuple[dict[str, Any], ...] = ()

    def message(self) -> dict[str, Any]:
        """The query message (a user message: note, then images or text)."""
        blocks: list[dict[str, Any]] = [{"type": "text", "text": self.text}]
        blocks += [{"type": "image", "base64": b, "mime_type": "image/png"} for b in self.images]
        return {"role": "user", "content": blocks}

    def to_dict(self) -> dict[str, Any]:
        return {"query": self.query, "mode": self.mode, "tokens": self.tokens,
                "text_tokens": self.text_tokens, "image_tokens": self.image_tokens,
                "passages": [{"page_id": p.page_id, "tier": p.tier, "item_id": p.item_id}
                             for p in self.passages],
                "image_sizes": [list(s) for s in self.sizes]}


def _trim(pixels: np.ndarray, margin: int) -> np.ndarray:
    """The image cut below its last inked row (plus the margin)."""
    import numpy as np

    ink = np.flatnonzero((pixels < 200).any(axis=1))
    if not ink.size:
        return pixels[: max(1, 2 * margin)]
    return pixels[: min(pixels.shape[0], int(ink[-1]) + 1 + max(1, margin))]


def draw_passages(texts: Sequence[str], renderer: Renderer, width: int,
                  ) -> list[tuple[np.ndarray, dict[str, Any]]]:
    """``texts`` laid out in ``renderer``'s layout on square images ``width``
    px wide, each cut below its last line; with its layout (height: the cut's)."""
    from optical_memory.render import Renderer as _Renderer, RenderItem

    cfg = renderer.config
    zoom = _Renderer(replace(cfg, width=width, height=width))
    items = [RenderItem(f"q{i}", "text", t) for i, t in enumerate(texts)]
    out = []
    for page in zoom.render_items(items):
        pixels = _trim(page.pixels, cfg.margin)
        out.append((pixels, dict(page.meta, height=int(pixels.shape[0]))))
    return out


def make_view(query: str, passages: Sequence[QueryPassage], *, renderer: Renderer,
              target: VisionTarget, count: Callable[[str], int], room: int) -> QueryView:
    """The cheaper of ``passages`` as full-resolution images or exact text,
    passages dropped from the end while it costs more than ``room`` tokens
    (``mode="none"`` when none fits)."""
    from optical_memory.types import encode_png

    passages = list(passages)
    widths = [w for w in ZOOM_WIDTHS if w <= renderer.config.width] or [renderer.config.width]
    while passages:
        body = "\n\n".join(f"[tier {p.tier}] {p.text.strip()}" for p in passages)
        text = f"{QUERY_TEXT_NOTE}\n{body}"
        text_cost = count(text) + MESSAGE_OVERHEAD
        best: tuple[int, list[tuple[np.ndarray, dict[str, Any]]]] | None = None
        for w in widths:
            imgs = draw_passages([p.text.strip() for p in passages], renderer, w)
            cost = sum(image_tokens(target, a.shape[1], a.shape[0]) for a, _ in imgs)
            if best is None or cost < best[0]:
                best = (cost, imgs)
        assert best is not None
        image_cost = best[0] + count(QUERY_IMAGES_NOTE) + MESSAGE_OVERHEAD
        if min(text_cost, image_cost) <= room:
            if image_cost < text_cost:
                pngs = tuple(base64.b64encode(encode_png(a)).decode("ascii") for a, _ in best[1])
                return QueryView(query, "image", tuple(passages), image_cost, text_cost,
                                 image_cost, QUERY_IMAGES_NOTE, pngs,
                                 tuple((a.shape[1], a.shape[0]) for a, _ in best[1]),
                                 tuple(m for _, m in best[1]))
            return QueryView(query, "text", tuple(passages), text_cost, text_cost, image_cost,
                             text)
        passages.pop()
    return QueryView(query, "none")


__all__ = ["QUERY_IMAGES_NOTE", "QUERY_K", "QUERY_TEXT_NOTE", "ZOOM_WIDTHS", "QueryPassage",
           "QueryView", "draw_passages", "make_view"]
