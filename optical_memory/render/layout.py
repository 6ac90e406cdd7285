"""Line breaking and page filling, without drawing.

Whitespace policy (what maps where):

- Items start on a new line. A label is drawn before an item's text, followed
  by one space; neither is part of the item's text or its span.
- Break opportunities are at spaces/tabs, around every CJK character (and the
  newline marker), and between any two tokens. A word wider than a whole line
  (URL, hash, base64) is hard-wrapped character by character: nothing is lost.
- A run of spaces/tabs is drawn only when visible text follows it on the same
  line. At a wrap point, and before a newline, it is *consumed*: it stays in
  the item's span (the concatenation of span slices reproduces the item
  exactly) but is neither drawn nor put in ``Page.text``. So lines of
  ``Page.text`` never end with whitespace. Leading whitespace (indentation)
  after a newline is kept and drawn.
- Tabs are expanded to spaces up to the next multiple of ``tab_width``
  characters in the line; ``Page.text`` holds the spaces.
- Other control characters (C0 but tab and newlines, DEL, C1: form feed,
  vertical tab, escape, ...) are whitespace like a space: drawn as one space
  each (never as a missing-glyph box); ``Page.text`` holds the spaces.
- ``newline_mode="break"``: a newline (``\\n``, ``\\r\\n`` or ``\\r``) ends the
  line; it is consumed into the span and shows in ``Page.text`` as the ``"\\n"``
  joining the lines. ``"marker"``: it is drawn as ``NEWLINE_MARKER`` (also in
  ``Page.text``) and text flows on.
- ``Page.text`` = visible lines joined by ``"\\n"``; a span's
  ``page_start:page_end`` covers its visible characters in ``Page.text``.
- Trailing pages that would hold only blank lines are not emitted; the
  whitespace they would hold joins the last page's span (blank pages in the
  middle of a text are kept: they are what the text says).
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..scripts import accented_share, script_shares, unsupported_scripts
from ..types import Span
from .config import NEWLINE_MARKER, RenderConfig, RenderItem
from .fonts import BOLD, REGULAR, FontSet
from .markdown import document_runs

# Scripts broken per character: Hangul Jamo, CJK radicals/symbols/punctuation,
# kana, bopomofo, CJK unified + compatibility, Hangul syllables, fullwidth forms,
# supplementary ideographic planes.
_CJK = (
    "\u1100-\u11ff\u2e80-\u2fff\u3000-\u303f\u3040-\u30ff\u3100-\u31ff"
    "\u3200-\u9fff\ua960-\ua97f\uac00-\ud7af\uf900-\ufaff\ufe30-\ufe4f"
    "\uff00-\uffef\U00020000-\U0003ffff"
)
# Control characters other than tab and the newlines (C0, DEL, C1: form
# feed, vertical tab, escape, ...) are whitespace: drawn as one space each.
_CONTROL = "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
_CONTROL_TO_SPACE = {c: " " for c in [*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20),
                                      *range(0x7F, 0xA0)]}
# groups: 1 newline, 2 spaces/tabs/controls, 3 one CJK char, 4 word
_TOKEN = re.compile(
    rf"(\r\n|\r|\n)|([ \t{_CONTROL}]+)|([{_CJK}])|([^ \t\r\n{_CONTROL}{_CJK}]+)")


@dataclass
class PageLayout:
    """One laid-out page: lines of ``[style, text]`` fragments, text and spans.

    ``meta`` (set by :func:`layout_items`, stored with the page): the layout
    (width, height, font_size, line_spacing, hinting, margin, newline_mode),
    ``lines``, ``chars``, ``scripts`` (each script's share of the page's
    letters, :func:`optical_memory.scripts.script_shares`: the decoder reads
    the page with the languages they call for) and, only when the page holds
    any, ``unsupported_scripts`` (scripts drawn unshaped, see
    :data:`optical_memory.scripts.NEEDS_SHAPING`).
    """

    index: int
    lines: list[list[list]]  # line -> [[style, visible text], ...]
    text: str
    spans: tuple[Span, ...]
    chars: int  # source characters held (sum of span lengths)
    meta: dict = field(default_factory=dict)


class _Packer:
    """Greedy first-fit line breaker that fills pages in order."""

    def __init__(self, cfg: RenderConfig, fonts: FontSet) -> None:
        self.cfg, self.fs = cfg, fonts
        self.avail = float(cfg.line_width)
        self.max_lines = cfg.lines_per_page
        self.marker = cfg.newline_mode == "marker"
        self.pages: list[PageLayout] = []
        self.ids: list[str] = []
        self._new_page_state()

    # -- page / line state -------------------------------------------------
    def _new_page_state(self) -> None:
        self.page_lines: list[list[list]] = []
        self.line: list[list] | None = None
        self.x = 0.0
        self.col = 0
        self.has_text = False  # current line holds visible text
        self.pos = 0  # offset in Page.text of the next visible character
        self.spans: dict[int, list[int]] = {}  # item index -> [start, end, pstart, pend]
        self.pending: list[tuple[int, str, int, int, int]] = []  # (style, ws, item, s, e)

    def _flush_page(self) -> None:
        text = "\n".join("".join(f[1] for f in line) for line in self.page_lines)
        spans = tuple(Span(self.ids[i], s, e, ps, pe) for i, (s, e, ps, pe) in self.spans.items())
        chars = sum(sp.end - sp.start for sp in spans)
        self.pages.append(PageLayout(len(self.pages), self.page_lines, text, spans, chars))
        self._new_page_state()

    def _open_line(self) -> None:
        if self.line is not None:
            return
        if len(self.page_lines) >= self.max_lines:
            self._flush_page()
        if self.page_lines:
            self.pos += 1  # the "\n" joining lines in Page.text
        self.line = []
        self.page_lines.append(self.line)
        self.x, self.col, self.has_text = 0.0, 0, False

    def _close_line(self) -> None:
        if self.line is None:
            return
        for _, _, item, s, e in self.pending:
            self._consume(item, s, e)
        self.pending.clear()
        self.line = None

    # -- span bookkeeping ----------------------------------------------------
    def _consume(self, item: int, s: int, e: int) -> None:
        if item < 0:
            return
        rec = self.spans.get(item)
        if rec is None:
            self.spans[item] = [s, e, self.pos, self.pos]
        else:
            rec[1] = e

    def _visible(self, style: int, text: str, width: float, item: int, s: int, e: int) -> None:
        line = self.line
        assert line is not None  # callers open a line first
        if line and line[-1][0] == style:
            line[-1][1] += text
        else:
            line.append([style, text])
        self.x += width
        self.col += len(text)
        self.has_text = True
        if item >= 0:
            rec = self.spans.get(item)
            if rec is None:
                self.spans[item] = [s, e, self.pos, self.pos + len(text)]
            else:
                rec[1] = e
                rec[3] = self.pos + len(text)
        self.pos += len(text)

    # -- whitespace ----------------------------------------------------------
    def _pending_expanded(self) -> tuple[list[tuple[int, str, int, int, int]], float]:
        out, width, col = [], 0.0, self.col
        tab = self.cfg.tab_width
        for style, ws, item, s, e in self.pending:
            if "\t" in ws:
                parts = []
                for ch in ws:
                    n = tab - col % tab if ch == "\t" else 1
                    parts.append(" " * n)
                    col += n
                ws = "".join(parts)
            else:
                col += len(ws)
            width += self.fs.width(style, ws)
            out.append((style, ws, item, s, e))
        return out, width

    def _commit_pending(self, expanded) -> None:
        for style, ws, item, s, e in expanded:
            self._visible(style, ws, self.fs.width(style, ws), item, s, e)
        self.pending.clear()

    def _drop_pending(self) -> None:
        for _, _, item, s, e in self.pending:
            self._consume(item, s, e)
        self.pending.clear()

    # -- words -----------------------------------------------------------------
    def word(self, style: int, text: str, item: int, s: int, e: int) -> None:
        """Place an unbreakable token (its source chars are ``[s, e)`` of ``item``)."""
        if self.line is None:
            self._open_line()
        w = self.fs.width(style, text)
        if len(self.pending) == 1:  # fast path: one space run of this item before a word
            pst, ws, pitem, ps, _ = self.pending[0]
            if pst == style and pitem == item and "\t" not in ws:
                ws_w = self.fs.width(style, ws)
                if self.x + ws_w + w <= self.avail:
                    self.pending.clear()
                    self._visible(style, ws + text, ws_w + w, item, ps, e)
                    return
        if self.pending:
            expanded, ws_w = self._pending_expanded()
            if self.x + ws_w + w <= self.avail:
                self._commit_pending(expanded)
                self._visible(style, text, w, item, s, e)
                return
            if not self.has_text and self.x + ws_w < self.avail:
                self._commit_pending(expanded)  # keep indentation, wrap the word after it
            elif w > self.avail and self.x + ws_w < self.avail:
                self._commit_pending(expanded)  # too long for any line: fill this one
            else:
                self._drop_pending()
                if self.has_text:
                    self._close_line()
                    self._open_line()
        elif self.x + w <= self.avail:
            self._visible(style, text, w, item, s, e)
            return
        elif self.has_text and w <= self.avail:
            self._close_line()
            self._open_line()
        if self.x + w <= self.avail:
            self._visible(style, text, w, item, s, e)
        else:
            self._hard_wrap(style, text, item, s, e)

    def _hard_wrap(self, style: int, text: str, item: int, s: int, e: int) -> None:
        """Break ``text`` between characters; at least one character per line."""
        adv = self.fs.char_advance
        one_to_one = e - s == len(text)  # False only for a 2-char "\r\n" marker
        start = 0
        x = self.x
        for i, ch in enumerate(text):
            a = adv(style, ch)
            if x + a > self.avail and (i > start or self.has_text):
                if i > start:
                    piece = text[start:i]
                    self._visible(style, piece, x - self.x, item,
                                  s + start, s + i if one_to_one else e)
                self._close_line()
                self._open_line()
                start, x = i, 0.0
            x += a
        piece = text[start:]
        self._visible(style, piece, x - self.x, item, s + start if one_to_one else s, e)

    # -- runs ----------------------------------------------------------------
    def run(self, style: int, text: str, item: int, base: int) -> None:
        """Lay out ``text``; its first character is char ``base`` of ``item``."""
        marker = self.marker
        for m in _TOKEN.finditer(text):
            kind = m.lastindex
            s, e = base + m.start(), base + m.end()
            if kind == 4 or kind == 3:
                self.word(style, m.group(), item, s, e)
            elif kind == 2:
                if self.line is None:
                    self._open_line()
                self.pending.append((style, m.group().translate(_CONTROL_TO_SPACE), item, s, e))
            elif marker:
                self.word(style, NEWLINE_MARKER, item, s, e)
            else:
                self._drop_pending()
                if self.line is None:
                    self._open_line()
                self._consume(item, s, e)
                self._close_line()

    def item(self, index: int, it: RenderItem, label_style: int | None) -> None:
        self._close_line()
        if it.label and label_style is not None:
            self.run(label_style, it.label, -1, 0)
            if self.line is None:
                self._open_line()
            self.pending.append((label_style, " ", -1, 0, 0))
        if it.kind == "document":
            for style, s, e in document_runs(it.text):
                self.run(style, it.text[s:e], index, s)
        else:
            self.run(REGULAR, it.text, index, 0)
        if index not in self.spans:  # empty item: record where it would be
            if self.line is None:
                self._open_line()
            self._consume(index, 0, 0)

    def finish(self) -> list[PageLayout]:
        self._close_line()
        if self.page_lines:
            self._flush_page()
        while len(self.pages) > 1 and not self.pages[-1].text.strip():
            last = self.pages.pop()
            prev = self.pages[-1]
            end = len(prev.text)
            merged = {sp.item_id: sp for sp in prev.spans}
            for sp in last.spans:
                old = merged.get(sp.item_id)
                if old is None:
                    merged[sp.item_id] = Span(sp.item_id, sp.start, sp.end, end, end)
                else:
                    merged[sp.item_id] = Span(sp.item_id, old.start, sp.end,
                                              old.page_start, old.page_end)
            prev.spans = tuple(merged.values())
            prev.chars = sum(sp.end - sp.start for sp in prev.spans)
        return self.pages


def layout_items(
    items: Sequence[RenderItem], cfg: RenderConfig, fonts: FontSet
) -> list[PageLayout]:
    """Break ``items`` into lines and pages (no pixels). Items must be non-empty."""
    packer = _Packer(cfg, fonts)
    packer.ids = [it.item_id for it in items]
    label_style = {"bold": BOLD, "plain": REGULAR, "none": None}[cfg.label_style]
    for i, it in enumerate(items):
        packer.item(i, it, label_style)
    pages = packer.finish()
    for p in pages:
        shares = script_shares(p.text)
        p.meta = {
            "width": cfg.width,
            "height": cfg.height,
            "font_size": cfg.font_size,
            "line_spacing": cfg.line_spacing,
            "hinting": cfg.hinting,
            "margin": cfg.margin,
            "newline_mode": cfg.newline_mode,
            "lines": len(p.lines),
            "chars": p.chars,
            "scripts": shares,
            "accented": accented_share(p.text),
        }
        unsupported = unsupported_scripts(shares)
        if unsupported:
            p.meta["unsupported_scripts"] = list(unsupported)
    return pages


__all__ = ["PageLayout", "layout_items"]
