"""Text or pixels per span: values that read back badly from a page image
for what they cost, given again as exact text next to the pages.

A page image carries prose cheaply and well, but a UUID, a commit hash, an
order number or an API key must come back character for character, and
one wrong glyph loses the fact. :func:`find_spans` finds such values
(:data:`SPAN_KINDS`); :class:`ReadbackTable` says how often each kind reads
back exactly at a page's glyph size (measured by ``benchmarks/routing.py``
with the native reader, shipped as ``optical_memory/data/exact_spans.json``);
:func:`choose_lines` picks the values whose exact copy buys more recalled
facts per token than the pixels it displaces (the rule and its formula:
``docs/routing.md``). The context builder bills the chosen lines as one text
message, :class:`ExactBlock`, inside the budget
(``Accounting.exact_span_tokens``).
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optical_memory.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from optical_memory.context.budget import ContextPage
    from optical_memory.store import ItemRecord

#: Kinds of span the detector finds, most specific first (a span is of the
#: first kind whose pattern matches it).
SPAN_KINDS = ("uuid", "hex", "key", "digits", "symbols")
#: ``context(exact_spans=...)``: ``"auto"`` (copy when it pays per recalled
#: fact), ``"always"`` (every span below the threshold, up to the cap: the
#: ablation of the cost test) or ``"off"``.
EXACT_MODES = ("auto", "always", "off")
#: Copy a span only when its expected exact read-back is below this.
DEFAULT_THRESHOLD = 0.9
#: The block's largest share of the budget.
DEFAULT_CAP = 0.1
#: Opens the block's message.
EXACT_NOTE = ("Exact values from the page images above (they read back poorly from "
              "pixels; value, then who said it and the words before it):")
TABLE_FILE = "exact_spans.json"
_LOCATOR_WORDS = 4
_QUOTES = "\"'`,;:{}[]()=|"

_NOT_ALNUM_BEFORE = r"(?<![0-9A-Za-z_])"
_NOT_ALNUM_AFTER = r"(?![0-9A-Za-z_])"
_PATTERNS: dict[str, re.Pattern[str]] = {
    "uuid": re.compile(_NOT_ALNUM_BEFORE + r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}"
                       + _NOT_ALNUM_AFTER),
    # ≥ 12 hex digits holding both a digit and a letter a-f (not a word, not a number)
    "hex": re.compile(_NOT_ALNUM_BEFORE + r"(?=[0-9a-fA-F]*[0-9])(?=[0-9a-fA-F]*[a-fA-F])"
                      r"[0-9a-fA-F]{12,}" + _NOT_ALNUM_AFTER),
    # ≥ 16 characters of a key alphabet mixing upper case, lower case and digits
    "key": re.compile(r"(?<![\w+/=-])(?=[\w+/=-]*[A-Z])(?=[\w+/=-]*[a-z])(?=[\w+/=-]*[0-9])"
                      r"[A-Za-z0-9_+/=-]{16,}(?![\w+/=-])", re.ASCII),
    # a digit run with separators (, . - / or one space), counted below: ≥ 7 digits
    "digits": re.compile(_NOT_ALNUM_BEFORE + r"\+?\d(?:\d|[,.\-/ ](?=\d))*\d" + _NOT_ALNUM_AFTER),
    # a whitespace-free token of ≥ 10 characters, ≥ 30 % of them rare symbols
    "symbols": re.compile(r"\S{10,}"),
}
_MIN_DIGITS = 7
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_RARE = frozenset("{}[]<>|\\^~`$@#%&*=;!?")
_SYMBOL_SHARE = 0.3
_KEY_DIGITS = 2
#: Share of neighbouring characters of different classes (digit, upper,
#: lower, other): ~0.6 in a random base62 key, ~0.3 in a camelCase name.
_KEY_CHANGES = 0.4


@dataclass(frozen=True)
class ExactSpan:
    """A value found in a text: its kind and characters ``[start, end)``."""

    kind: str
    start: int
    end: int
    text: str


def _char_class(c: str) -> int:
    return 0 if c.isdigit() else 1 if c.isupper() else 2 if c.islower() else 3


def _keep(kind: str, value: str) -> bool:
    if kind == "key":  # random, not an identifier: digits, and the class changes often
        changes = sum(_char_class(a) != _char_class(b) for a, b in pairwise(value))
        return (sum(c.isdigit() for c in value) >= _KEY_DIGITS
                and changes >= _KEY_CHANGES * (len(value) - 1))
    if kind == "digits":
        return sum(c.isdigit() for c in value) >= _MIN_DIGITS and not _ISO_DATE.fullmatch(value)
    if kind == "symbols":
        return sum(c in _RARE for c in value) >= _SYMBOL_SHARE * len(value)
    return True


def find_spans(text: str, kinds: Sequence[str] = SPAN_KINDS) -> list[ExactSpan]:
    """The values in ``text`` of ``kinds``, in text order, never overlapping
    (where two would, the kind listed first in :data:`SPAN_KINDS` wins)."""
    taken: list[ExactSpan] = []
    used = bytearray(len(text))  # 1 where a value was found
    for kind in SPAN_KINDS:
        if kind not in kinds:
            continue
        for m in _PATTERNS[kind].finditer(text):
            value = m.group(0).strip()
            if value and used.find(1, m.start(), m.end()) < 0 and _keep(kind, value):
                taken.append(ExactSpan(kind, m.start(), m.start() + len(value), value))
                used[m.start():m.end()] = b"\x01" * (m.end() - m.start())
    return sorted(taken, key=lambda s: s.start)


@dataclass(frozen=True)
class ReadbackTable:
    """Exact read-back of each span kind by glyph size in pixels (the font
    size of the page's layout times its tier's scale), with how it was made
    (``meta``). :meth:`readback` interpolates linearly between measured
    sizes and holds the end values beyond them."""

    points: dict[str, tuple[tuple[float, float], ...]]
    meta: dict[str, Any]

    @classmethod
    def load(cls, path: str | Path | None = None) -> ReadbackTable:
        """The shipped table (``optical_memory/data/exact_spans.json``) or ``path``'s."""
        p = Path(path) if path is not None else Path(
            str(resources.files("optical_memory") / "data" / TABLE_FILE))
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
            points = {kind: tuple(sorted((float(r["glyph_px"]), float(r["exact"]))
                                         for r in rows))
                      for kind, rows in data["table"].items()}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"cannot read the exact-span read-back table {p}: {exc}") from exc
        return cls(points, dict(data.get("meta", {})))

    def readback(self, kind: str, glyph_px: float) -> float | None:
        """Expected share of ``kind`` spans read back exactly at ``glyph_px``
        (``None``: the kind was not measured)."""
        pts = self.points.get(kind)
        if not pts:
            return None
        if glyph_px <= pts[0][0]:
            return pts[0][1]
        for (x0, y0), (x1, y1) in pairwise(pts):
            if glyph_px <= x1:
                return y0 + (y1 - y0) * (glyph_px - x0) / (x1 - x0) if x1 > x0 else y1
        return pts[-1][1]


@dataclass(frozen=True)
class Candidate:
    """A span on a page of the context: its line in the block, the read-back
    expected at the page's glyph size and the line's text tokens."""

    page_id: str | None
    span: ExactSpan
    line: str
    readback: float
    tokens: int
    item_id: str = ""

    @property
    def gain_per_token(self) -> float:
        """Expected facts the copy adds (1 - read-back) per token it costs."""
        return (1.0 - self.readback) / max(1, self.tokens)


@dataclass(frozen=True)
class ExactBlock:
    """The exact values added to a context: the message text, its cost
    (text tokens + framing), the spans and the rule's figures
    (``pixel_rate``: expected recalled span facts per vision token of the
    pages; ``slack``: budget the context left unused before the block)."""

    mode: str
    text: str
    tokens: int
    spans: tuple[Candidate, ...]
    pixel_rate: float = 0.0
    slack: int = 0

    def message(self) -> dict[str, Any]:
        """The block as a user message."""
        return {"role": "user", "content": self.text}


@dataclass(frozen=True)
class ExactSpanPolicy:
    """How ``context()`` gives exact values: ``mode`` (:data:`EXACT_MODES`),
    the read-back ``threshold`` below which a value may be copied, and the
    block's largest share of the budget (``cap``)."""

    mode: str = "auto"
    threshold: float = DEFAULT_THRESHOLD
    cap: float = DEFAULT_CAP

    def __post_init__(self) -> None:
        if self.mode not in EXACT_MODES:
            raise ConfigError(f"exact_spans must be one of {EXACT_MODES} (got {self.mode!r})")
        for name in ("threshold", "cap"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 1:
                raise ConfigError(f"exact_spans {name} must be in [0, 1] (got {v!r})")

    @classmethod
    def of(cls, value: str | ExactSpanPolicy) -> ExactSpanPolicy:
        """A policy from a mode name or a policy (:class:`ConfigError` otherwise)."""
        if isinstance(value, ExactSpanPolicy):
            return value
        if isinstance(value, str):
            return cls(value)
        raise ConfigError(f"exact_spans must be one of {EXACT_MODES} or an ExactSpanPolicy "
                          f"(got {type(value).__name__})")


_TABLE: list[ReadbackTable] = []


def shipped_table() -> ReadbackTable:
    """The shipped read-back table, loaded once."""
    if not _TABLE:
        _TABLE.append(ReadbackTable.load())
    return _TABLE[0]


def locator(text: str, span: ExactSpan, label: str, after: int = 0) -> str:
    """``label`` and the few words before ``span`` on its line (from
    ``after``, the end of the value before it, so no other value is
    repeated): where on the pages the value sits."""
    start = max(text.rfind("\n", 0, span.start) + 1, after)
    words = [w.strip(_QUOTES) for w in text[start:span.start].split()]
    before = " ".join(w for w in words if w)
    before = " ".join(before.split()[-_LOCATOR_WORDS:])
    return f"{label}: …{before}" if before else label


def block_text(lines: Sequence[str]) -> str:
    """The block's message text for ``lines``."""
    return EXACT_NOTE + "\n" + "\n".join(f"- {line}" for line in lines)


def choose_lines(candidates: Sequence[Candidate], *, mode: str, threshold: float, cap_tokens: int,
                 slack: int, pixel_rate: float, count: Callable[[str], int],
                 overhead: int) -> tuple[Candidate, ...]:
    """The candidates copied: read-back below ``threshold``, best gain per
    token first, the block (``count`` of :func:`block_text` + ``overhead``)
    at most ``cap_tokens``. In ``"auto"`` mode a copy past the ``slack``
    (budget the pages leave unused) must also add more expected facts per
    token than the pixels it displaces (``pixel_rate``)."""
    if mode not in EXACT_MODES:
        raise ConfigError(f"exact_spans must be one of {EXACT_MODES} (got {mode!r})")
    if mode == "off":
        return ()
    pool = sorted((c for c in candidates if c.readback < threshold),
                  key=lambda c: (-c.gain_per_token, c.line))
    chosen: list[Candidate] = []
    cost = overhead + count(EXACT_NOTE)
    for c in pool:
        if cost + c.tokens > cap_tokens:
            continue
        if mode == "auto" and cost + c.tokens > slack and c.gain_per_token <= pixel_rate:
            break  # sorted: no later span beats the pixels either
        chosen.append(c)
        cost += c.tokens
    return tuple(chosen)


def _label(item: ItemRecord) -> str:
    head = item.role or item.kind
    if item.name:
        head += f"·{item.name}"
    return f"{head} {item.time}" if item.time else head


def page_candidates(page: ContextPage, item_of: Callable[[str], ItemRecord | None], *,
                    table: ReadbackTable, font_size: float, master_width: int,
                    count: Callable[[str], int]) -> tuple[Candidate, ...]:
    """The values on ``page`` with their expected read-back at its glyph size
    (``font_size`` × page width / ``master_width``) and their line's tokens.
    Values of kinds the table lacks are left out; so are pages whose spans
    are unknown."""
    glyph_px = font_size * page.width / max(1, master_width)
    out: list[Candidate] = []
    for s in page.spans:
        item = item_of(s.item_id)
        text = (item.text or "") if item is not None else ""
        if item is None or not text:
            continue
        prev = s.start
        for sp in find_spans(text[s.start:s.end]):
            at = ExactSpan(sp.kind, s.start + sp.start, s.start + sp.end, sp.text)
            after, prev = prev, at.end
            rb = table.readback(sp.kind, glyph_px)
            if rb is None:
                continue
            line = f"{sp.text} ({locator(text, at, _label(item), after)})"
            out.append(Candidate(page.page_id, at, line, rb, count(f"- {line}\n"), s.item_id))
    return tuple(out)


def candidates(per_page: Sequence[Sequence[Candidate]]) -> list[Candidate]:
    """The pages' values (:func:`page_candidates` of each, in order), each
    value once: on the first page showing it."""
    seen: set[tuple[str, int]] = set()
    out = []
    for found in per_page:
        for c in found:
            if (c.item_id, c.span.start) not in seen:
                seen.add((c.item_id, c.span.start))
                out.append(c)
    return out


def make_block(found: Sequence[Candidate], pages: Sequence[ContextPage], *,
               policy: ExactSpanPolicy, budget: int, used: int, fixed: int,
               count: Callable[[str], int], overhead: int) -> ExactBlock | None:
    """The block for a context of ``budget`` tokens that uses ``used`` of
    them without it, ``fixed`` of which must stay (system, recent turns,
    query); ``None`` when nothing is copied. ``pixel_rate``: the expected
    recalled values per vision token of ``pages``."""
    vision = sum(p.vision_tokens for p in pages)
    rate = sum(c.readback for c in found) / vision if vision else 0.0
    cap = min(int(policy.cap * budget), budget - fixed)
    slack = max(0, budget - used)
    chosen = list(choose_lines(found, mode=policy.mode, threshold=policy.threshold,
                               cap_tokens=cap, slack=slack, pixel_rate=rate, count=count,
                               overhead=overhead))
    order = {id(c): i for i, c in enumerate(found)}
    while chosen:
        chosen.sort(key=lambda c: order[id(c)])  # history order in the message
        text = block_text([c.line for c in chosen])
        tokens = count(text) + overhead
        if tokens <= cap:
            return ExactBlock(policy.mode, text, tokens, tuple(chosen), rate, slack)
        chosen.remove(min(chosen, key=lambda c: c.gain_per_token))
    return None


__all__ = ["DEFAULT_CAP", "DEFAULT_THRESHOLD", "EXACT_MODES", "EXACT_NOTE", "SPAN_KINDS",
           "Candidate", "ExactBlock", "ExactSpan", "ExactSpanPolicy", "ReadbackTable",
           "block_text", "candidates", "choose_lines", "find_spans", "locator", "make_block",
           "page_candidates", "shipped_table"]
