"""What each inspector page shows, assembled from the memory's public API only
(:class:`~optical_memory.memory.OpticalMemory` methods and
:mod:`optical_memory.render.boxes`), so it reads SQLite and PostgreSQL alike.
Plain values for the templates; no web framework here."""
from __future__ import annotations

import base64
import io
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optical_memory.errors import InputError
from optical_memory.memory import OpticalMemory
from optical_memory.render.boxes import Box, hit_boxes, span_boxes
from optical_memory.scope import Scope
from optical_memory.store import ItemRecord, PageRecord

#: Colours the items of a page are highlighted in, in turn.
PALETTE = ("#e6550d", "#3182bd", "#31a354", "#756bb1", "#d6616b", "#8c6d31", "#17becf",
           "#bcbd22")
HIT_COLOR = "#ffd400"
#: Most characters of an item's text shown in lists (the page view shows all).
PREVIEW_CHARS = 160


def scope_query(scope: Scope) -> str:
    """``user=…&agent=…&session=…`` for links (None parts left out)."""
    from urllib.parse import urlencode

    parts = {"user": scope.user_id, "agent": scope.agent_id, "session": scope.session_id}
    return urlencode({k: v for k, v in parts.items() if v is not None})


def scope_label(scope: Scope) -> str:
    out = f"user {scope.user_id}"
    if scope.agent_id is not None:
        out += f" · agent {scope.agent_id}"
    if scope.session_id is not None:
        out += f" · session {scope.session_id}"
    return out


def preview(text: str | None, limit: int = PREVIEW_CHARS) -> str:
    if text is None:
        return "(text not kept)"
    one = " ".join(text.split())
    return one if len(one) <= limit else one[: limit - 1] + "…"


@dataclass(frozen=True)
class Overlay:
    """A highlight on a page image, in percent of the page (so it fits the
    image at any tier and any display size)."""

    left: float
    top: float
    width: float
    height: float
    color: str
    cls: str
    item_id: str | None = None

    @classmethod
    def of(cls, box: Box, size: tuple[int, int], color: str, kind: str,
           item_id: str | None = None) -> Overlay:
        w, h = size
        return cls(round(100 * box.x0 / w, 3), round(100 * box.y0 / h, 3),
                   round(100 * (box.x1 - box.x0) / w, 3), round(100 * (box.y1 - box.y0) / h, 3),
                   color, kind, item_id)


# --------------------------------------------------------------------------
# Timeline: a scope's turns and the pages they are on
# --------------------------------------------------------------------------


#: Turns the timeline lists at first (the newest): listing every turn of a
#: 10,000-turn scope costs more than the rest of the view, so older pages are
#: numbered on request (``numbers=all``).
NUMBER_WINDOW = 1000


@dataclass(frozen=True)
class PageCard:
    page: PageRecord
    first_turn: int | None  # the lowest and highest turn number it holds (see Timeline)
    last_turn: int | None
    items: int
    chars: int
    unnumbered: int = 0  # items it holds that got no number (older turns, documents)


@dataclass(frozen=True)
class Timeline:
    """``complete``: every turn was listed and is numbered from the first (1 =
    the oldest); else only the newest ``numbered`` are, counted back from the
    newest (1 = the newest turn)."""

    scope: Scope
    tiers: list[tuple[str, list[PageCard]]]  # youngest tier first, pages in store order
    waiting: list[tuple[int, ItemRecord]]  # turns on no page yet, oldest first
    stats: Any
    complete: bool
    numbered: int


def timeline(mem: OpticalMemory, scope: Scope, *, window: int | None = NUMBER_WINDOW,
             waiting_limit: int = 200) -> Timeline:
    """The scope's pages grouped by tier, each with the numbers of the turns
    it holds (the newest ``window`` turns, or all with ``window=None``), and
    the turns on no page yet (newest ``waiting_limit``)."""
    kw = scope.as_kwargs()
    recent = mem.list_turns(**kw, newest_first=True, limit=window)
    complete = window is None or len(recent) < window
    number = {t.id: (len(recent) - k if complete else k + 1) for k, t in enumerate(recent)}
    pages = mem.list_pages(**kw)
    on_page: set[str] = set()
    by_tier: dict[str, list[PageCard]] = {}
    for p in pages:
        nums = [number[i] for i in p.item_ids if i in number]
        on_page.update(p.item_ids)
        card = PageCard(p, min(nums) if nums else None, max(nums) if nums else None,
                        len(p.item_ids), sum(s.end - s.start for s in p.spans),
                        len(p.item_ids) - len(nums))
        by_tier.setdefault(p.tier, []).append(card)
    order = list(mem.aging.names) + sorted(set(by_tier) - set(mem.aging.names))
    tiers = [(t, by_tier[t]) for t in order if t in by_tier]
    waiting = [(number[t.id], t) for t in reversed(recent) if t.id not in on_page]
    return Timeline(scope, tiers, waiting[-waiting_limit:], mem.stats(**kw), complete,
                    len(recent))


# --------------------------------------------------------------------------
# Page view
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class PageItem:
    item: ItemRecord | None
    item_id: str
    color: str
    shown: str  # the characters of the item this page shows
    start: int
    end: int
    turn: int | None


@dataclass(frozen=True)
class TierView:
    tier: str
    width: int
    height: int
    current: bool


@dataclass
class PageView:
    page: PageRecord
    scope: Scope
    items: list[PageItem]
    tiers: list[TierView]
    overlays: list[Overlay]
    focus: str | None
    readback: list[Any] = field(default_factory=list)
    closeup: Closeup | None = None


@dataclass(frozen=True)
class Closeup:
    """The master page enlarged ``zoom`` times in a ``width`` × ``height`` window
    whose top-left corner sits at ``(-left, -top)`` of the enlarged image: the
    hit (or the highlighted item) legible at a glance."""

    zoom: float
    width: int
    height: int
    left: float
    top: float
    image_width: float

    @classmethod
    def around(cls, boxes: Sequence[Box], size: tuple[int, int], *, zoom: float = 1.6,
               width: int = 880, height: int = 230) -> Closeup | None:
        if not boxes:
            return None
        b = boxes[0]
        cx, cy = (b.x0 + b.x1) / 2 * zoom, (b.y0 + b.y1) / 2 * zoom
        iw, ih = size[0] * zoom, size[1] * zoom
        if b.x1 * zoom + 40 <= width:  # the line's start and the run both fit
            left = 0.0
        else:
            left = min(max(cx - width / 2, 0.0), max(iw - width, 0.0))
            left = min(left, max(b.x0 * zoom - 40, 0.0))  # keep the run's start in view
        top = min(max(cy - height / 2, 0.0), max(ih - height, 0.0))
        return cls(zoom, width, height, round(left, 1), round(top, 1), iw)


def page_view(mem: OpticalMemory, page_id: str, scope: Scope, *,
              focus: str | None = None, hit: tuple[str, tuple[int, int]] | None = None,
              ) -> PageView:
    """A page at every tier with each item's region (``focus``: only that
    item's) and, with ``hit`` (item id, span in its text), the hit's words."""
    kw = scope.as_kwargs()
    page = mem.get_page(page_id, **kw)
    if page is None:
        from optical_memory.store import NotFoundError

        raise NotFoundError(f"no page {page_id!r} under {scope}")
    size = (page.width, page.height)
    numbers = _turn_numbers(mem, page, scope)
    items: list[PageItem] = []
    overlays: list[Overlay] = []
    near: list[Box] = []
    for n, item_id in enumerate(page.item_ids):
        color = PALETTE[n % len(PALETTE)]
        rec = mem.get_item(item_id, **kw)
        sp = next(s for s in page.spans if s.item_id == item_id)
        shown = rec.text[sp.start:sp.end] if rec is not None and rec.text is not None else ""
        items.append(PageItem(rec, item_id, color, shown, sp.start, sp.end, numbers.get(item_id)))
        if focus is None or focus == item_id:
            boxes = span_boxes(page, item_id, mem.render_config)
            overlays += [Overlay.of(b, size, color, "span", item_id) for b in boxes]
            if focus == item_id:
                near = boxes
    if hit is not None:
        found = _hit_boxes(mem, page, hit[0], hit[1], scope)
        overlays += [Overlay.of(b, size, HIT_COLOR, "hit", hit[0]) for b in found]
        near = found or near
    tiers = [TierView(t, *mem.aging.size(t, size), t == page.tier) for t in mem.aging.names]
    return PageView(page, scope, items, tiers, overlays, focus,
                    closeup=Closeup.around(near, size))


def _turn_numbers(mem: OpticalMemory, page: PageRecord, scope: Scope) -> dict[str, int]:
    ids = set(page.item_ids)
    turns = mem.list_turns(**scope.as_kwargs())
    return {t.id: n for n, t in enumerate(turns, 1) if t.id in ids}


def _hit_boxes(mem: OpticalMemory, page: PageRecord, item_id: str, span: tuple[int, int],
               scope: Scope) -> list[Box]:
    item = mem.get_item(item_id, **scope.as_kwargs())
    if item is None or item.text is None:
        return []
    return hit_boxes(page, item_id, item.text, span, mem.render_config)


def hit_overlays(mem: OpticalMemory, page: PageRecord, item_id: str, span: tuple[int, int],
                 scope: Scope) -> list[Overlay]:
    boxes = _hit_boxes(mem, page, item_id, span, scope)
    return [Overlay.of(b, (page.width, page.height), HIT_COLOR, "hit", item_id) for b in boxes]


def read_back(mem: OpticalMemory, page_id: str, scope: Scope) -> list[Any]:
    """The page read back at every tier (the memory's decoder)."""
    return [mem.decode(page_id, tier=t, **scope.as_kwargs()) for t in mem.aging.names]


# --------------------------------------------------------------------------
# Search
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class HitView:
    hit: Any
    number: int
    overlays: list[Overlay]
    size: tuple[int, int] | None  # the page's current-tier size


def search_view(mem: OpticalMemory, query: str, scope: Scope, k: int) -> list[HitView]:
    out = []
    for n, h in enumerate(mem.retrieve(query, k=k, **scope.as_kwargs()), 1):
        overlays: list[Overlay] = []
        size = None
        if h.page is not None:
            size = mem.aging.size(h.page.tier, (h.page.width, h.page.height))
            if h.item_id is not None and h.span is not None:
                overlays = hit_overlays(mem, h.page, h.item_id, h.span, scope)
        out.append(HitView(h, n, overlays, size))
    return out


# --------------------------------------------------------------------------
# Context
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    kind: str  # "text" | "image" | "other"
    text: str = ""
    src: str = ""  # data: URL of an image
    width: int = 0
    height: int = 0


@dataclass(frozen=True)
class MessageView:
    role: str
    blocks: list[Block]


def _blocks(content: Any) -> list[Block]:
    if isinstance(content, str):
        return [Block("text", content)]
    out = []
    for b in content if isinstance(content, Sequence) else [content]:
        if not isinstance(b, Mapping):
            out.append(Block("other", repr(b)))
        elif b.get("type") == "text":
            out.append(Block("text", str(b.get("text", ""))))
        elif b.get("type") == "image" and "base64" in b:
            data = str(b["base64"])
            w, h = _png_size(data)
            out.append(Block("image", src=f"data:{b.get('mime_type', 'image/png')};base64,{data}",
                             width=w, height=h))
        elif b.get("type") == "image_url":
            url = b.get("image_url")
            out.append(Block("image", src=str(url.get("url") if isinstance(url, Mapping) else url)))
        else:
            out.append(Block("other", preview(repr(dict(b)), 300)))
    return out


def _png_size(b64: str) -> tuple[int, int]:
    head = base64.b64decode(b64[:44])  # the IHDR chunk sits in the first 24 bytes
    if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) >= 24:
        return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    return 0, 0


@dataclass(frozen=True)
class ContextView:
    context: Any
    messages: list[MessageView]
    images: int
    seconds: float
    readback: list[tuple[str, int, float | None]]  # tier, pages read, mean precision


def context_view(mem: OpticalMemory, scope: Scope, budget: int, *, target: str | None,
                 keep_last: int | None, system: str | None, readback_pages: int = 0,
                 ) -> ContextView:
    """``mem.context(...)`` as the model receives it, and (``readback_pages`` >
    0) that many of its pages per tier read back at the tier they are sent at."""
    t0 = time.perf_counter()
    ctx = mem.context(budget, target=target, keep_last=keep_last, system=system,
                      **scope.as_kwargs())
    seconds = time.perf_counter() - t0
    messages = [MessageView(str(m.get("role", "?")), _blocks(m.get("content", "")))
                for m in ctx.messages]
    images = sum(1 for m in messages for b in m.blocks if b.kind == "image")
    rb: list[tuple[str, int, float | None]] = []
    if readback_pages > 0:
        per_tier: dict[str, list[float]] = {}
        counts: dict[str, int] = {}
        for cp in ctx.pages:
            if cp.page_id is None or counts.get(cp.tier, 0) >= readback_pages:
                continue
            counts[cp.tier] = counts.get(cp.tier, 0) + 1
            d = mem.decode(cp.page_id, tier=cp.tier, **scope.as_kwargs())
            if d.precision is not None:
                per_tier.setdefault(cp.tier, []).append(d.precision)
        rb = [(t, n, (sum(per_tier[t]) / len(per_tier[t])) if per_tier.get(t) else None)
              for t, n in counts.items()]
    return ContextView(ctx, messages, images, seconds, rb)


# --------------------------------------------------------------------------
# NIAH result folders
# --------------------------------------------------------------------------

IMAGE_SUFFIXES = (".png", ".svg", ".jpg", ".jpeg")


@dataclass(frozen=True)
class NiahFolder:
    name: str  # index into the roots, then the path below it: "0/sub/dir"
    path: Path
    images: list[str]  # file names
    cells: int
    tiers: list[Any]


def niah_folders(roots: Sequence[Path]) -> list[NiahFolder]:
    """Folders under ``roots`` holding NIAH plots or result cells."""
    out = []
    for n, root in enumerate(roots):
        for folder in sorted({root, *(p for p in root.rglob("*") if p.is_dir())}):
            images = sorted(p.name for p in folder.iterdir()
                            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            has_cells = any(folder.glob("*.jsonl.gz")) or any(folder.glob("*.json"))
            if images or has_cells:
                rel = folder.relative_to(root).as_posix()
                out.append(NiahFolder(f"{n}/{rel}" if rel != "." else str(n), folder, images,
                                      0, []))
    return out


def niah_folder(roots: Sequence[Path], name: str) -> NiahFolder:
    """One result folder by its name (see :func:`niah_folders`), with its
    cells' forgetting table when it holds cells."""
    folder = resolve_under(roots, name)
    if not folder.is_dir():
        raise InputError(f"no NIAH folder {name!r}")
    from optical_memory.niah.plots import forgetting_table
    from optical_memory.niah.runner import load_results

    try:  # cell JSON files, and packed *.jsonl.gz files of cells
        cells = load_results(folder)
        for packed in sorted(folder.glob("*.jsonl.gz")):
            cells += load_results(packed)
        tiers = forgetting_table(cells) if cells else []
    except Exception:  # a folder of plots only, or cells of another version
        cells, tiers = [], []
    images = sorted(p.name for p in folder.iterdir()
                    if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    return NiahFolder(name, folder, images, len(cells), _finite(tiers))


def _finite(rows: Iterable[Any]) -> list[Any]:
    return [r for r in rows if not (isinstance(r.recall, float) and math.isnan(r.recall))]


def resolve_under(roots: Sequence[Path], name: str) -> Path:
    """``name`` ("<root index>/<relative path>") as a path inside that root;
    :class:`InputError` for anything that would leave it."""
    head, _, rest = name.partition("/")
    if not head.isdigit() or int(head) >= len(roots):
        raise InputError(f"no NIAH folder {name!r}")
    root = roots[int(head)].resolve()
    path = (root / rest).resolve() if rest else root
    if path != root and root not in path.parents:
        raise InputError(f"path {name!r} leaves the NIAH folder")
    return path


def thumbnail(png: bytes, width: int) -> bytes:
    """``png`` scaled down to ``width`` px wide (never up)."""
    from PIL import Image

    img: Image.Image = Image.open(io.BytesIO(png))
    if img.width > width:
        img = img.resize((width, max(1, round(img.height * width / img.width))),
                         Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False, compress_level=3)
    return buf.getvalue()


__all__ = ["PALETTE", "ContextView", "HitView", "NiahFolder", "Overlay", "PageView", "Timeline",
           "context_view", "niah_folder", "niah_folders", "page_view", "read_back", "scope_label",
           "scope_query", "search_view", "thumbnail", "timeline"]
