"""Look-alike letters told apart by their neighbours: ``I`` / ``l``, ``O`` / ``0``.

At the memory's default layout (11 px condensed sans) a capital ``I`` and a
lower-case ``l`` differ by well under a pixel of height, and the reader's
scores for the two are often within a logit of each other. A word decides
what the glyph cannot: ``Ibarra`` and ``Illinois`` start with the capital
(a word-initial ``l`` before a consonant is nearly absent from text), and
``hello`` holds two ``l``. This module keeps counts of each look-alike
between its neighbours in the reader's training text and, where the model's
margin between the pair is below :attr:`ContextPrior.margin` logits and the
next character is a letter, adds ``weight`` × the log ratio of the counts to
it (before a space or punctuation the language decides, not the glyph's
neighbours: English ``I'm`` against French ``l'heure``, ``-I`` against
``-l``, so those are left as read):

- the finest context with at least :data:`MIN_COUNT` examples of the pair
  is used: the two neighbouring characters; else the class of the one
  before (start of word, lower-case vowel, other lower-case letter, capital,
  digit, other) and the character after; else both classes.

The counts come from the training sources only (``pydoc_data`` prose less its
last 60,000 characters, the standard library's code outside the validation
slice, synthetic conversations of seeds 0–5), never from the validation or
held-out pages; margin and weight are chosen on the validation pages
(:mod:`optical_memory.reader.tune`'s) plus pages of the system's French,
Spanish, Polish, Czech and Turkish gettext catalogues (so that English counts
do not hurt other Latin languages; the German, Greek and Russian catalogues
stay held out) by::

    python -m optical_memory.reader.context [--write]

which writes ``weights/context.json``.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from optical_memory.render.config import NEWLINE_MARKER

logger = logging.getLogger(__name__)

#: Look-alike pairs told apart by context.
PAIRS: tuple[tuple[str, str], ...] = (("I", "l"), ("O", "0"))
#: Languages whose gettext catalogues (translated UI strings) join the
#: tuning pages; de, el and ru stay held out (benchmarks/reader_unshaped.py).
TUNING_LANGUAGES = ("fr", "es", "pl", "cs", "tr")
#: Fewest examples of a pair a context must hold to be used.
MIN_COUNT = 20
CONTEXT_FILE = "context.json"
_VOWELS = frozenset("aeiouyàáâãäåæèéêëìíîïòóôõöøùúûüýÿ")


def char_class(ch: str) -> str:
    """"S" word break (space, line start or end, newline marker, punctuation
    that opens or closes words), "v" lower-case vowel, "c" other lower-case
    letter, "U" capital, "D" digit, "P" anything else."""
    if not ch or ch.isspace() or ch == NEWLINE_MARKER or ch in "([{\"'.,;:!?)]}":
        return "S"
    if ch.isdigit():
        return "D"
    if ch.isalpha():
        if ch.isupper():
            return "U"
        return "v" if ch in _VOWELS else "c"
    return "P"


def _keys(prev: str, nxt: str) -> tuple[str, str, str]:
    """Context keys of a look-alike between ``prev`` and ``nxt`` (strings: their
    last / first character counts; "" at a line's start or end)."""
    prev, nxt = prev[-1:], nxt[:1]
    cp, cn = char_class(prev), char_class(nxt)
    return (f"{prev}\x00{nxt}", f"{cp}\x00{nxt}", f"{cp}\x00{cn}")


def count_contexts(texts: Sequence[str]) -> dict[str, list[dict[str, list[int]]]]:
    """Per pair ``"a|b"``, per level (characters; class before and character
    after; classes), context key → [count of a, count of b]."""
    out: dict[str, list[dict[str, list[int]]]] = {}
    for a, b in PAIRS:
        levels: list[dict[str, list[int]]] = [{}, {}, {}]
        for text in texts:
            n = len(text)
            for i, ch in enumerate(text):
                if ch != a and ch != b:
                    continue
                prev = text[i - 1] if i > 0 else ""
                nxt = text[i + 1] if i + 1 < n else ""
                col = 0 if ch == a else 1
                for lvl, key in zip(levels, _keys(prev, nxt)):
                    lvl.setdefault(key, [0, 0])[col] += 1
        # drop contexts too thin to ever be used
        out[f"{a}|{b}"] = [{k: v for k, v in lvl.items() if v[0] + v[1] >= MIN_COUNT}
                           for lvl in levels]
    return out


class ContextPrior:
    """The counts and the rule that uses them (see the module doc)."""

    def __init__(self, counts: Mapping[str, Sequence[Mapping[str, Sequence[int]]]],
                 margin: float, weight: float) -> None:
        self.counts = counts
        self.margin = float(margin)
        self.weight = float(weight)
        self.partner: dict[str, tuple[str, str, int]] = {}
        for pair in counts:
            a, b = pair.split("|")
            self.partner[a] = (b, pair, 0)
            self.partner[b] = (a, pair, 1)

    def log_ratio(self, ch: str, prev: str, nxt: str) -> float:
        """log((count of ``ch`` + 1) / (count of its look-alike + 1)) in the
        finest context holding enough examples; 0 when none does."""
        _, pair, col = self.partner[ch]
        for lvl, key in zip(self.counts[pair], _keys(prev, nxt)):
            c = lvl.get(key)
            if c is not None and c[0] + c[1] >= MIN_COUNT:
                return math.log((c[col] + 1) / (c[1 - col] + 1))
        return 0.0

    def resolve(self, chars: list[str], margins: Sequence[float | None]) -> list[str]:
        """``chars`` (one line, as read) with each look-alike whose margin over
        its partner (``margins[i]``, logits; None: not a look-alike) is below
        :attr:`margin` switched when its context favours the partner enough."""
        out = list(chars)
        for i, ch in enumerate(chars):
            d = margins[i]
            if d is None or d >= self.margin or ch not in self.partner:
                continue
            prev = out[i - 1] if i > 0 else ""
            nxt = chars[i + 1] if i + 1 < len(chars) else ""
            if not nxt[:1].isalpha():
                continue
            if d + self.weight * self.log_ratio(ch, prev, nxt) < 0:
                out[i] = self.partner[ch][0]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"margin": self.margin, "weight": self.weight, "min_count": MIN_COUNT,
                "counts": self.counts}


def default_path() -> Path:
    return Path(str(resources.files("optical_memory.reader") / "weights" / CONTEXT_FILE))


def load_prior(path: str | Path | None = None) -> ContextPrior | None:
    """The shipped prior (None when the file is absent or unreadable)."""
    p = Path(path) if path is not None else default_path()
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
        return ContextPrior(data["counts"], data["margin"], data["weight"])
    except (OSError, ValueError, KeyError) as exc:
        logger.debug("no look-alike context prior at %s: %s", p, exc)
        return None


def training_texts() -> list[str]:
    """The training sources the counts come from, less the validation slices
    :func:`optical_memory.reader.tune.validation_pages` draws from."""
    from optical_memory.reader.data import chat_messages, pydoc_text, stdlib_text

    code = stdlib_text()
    start = len(code) // 3
    chat = []
    for seed in range(6):
        for m in chat_messages(seed, tokens=20_000):
            content = m.get("content")
            if isinstance(content, str):
                chat.append(content)
            for call in m.get("tool_calls") or ():
                chat.append(json.dumps(call.get("function", {}).get("arguments", "")))
    return [pydoc_text()[:-60_000], code[:start], code[start + 40_000:], "\n".join(chat)]


def catalogue_pages(languages: Sequence[str], per_language: int) -> list[Any]:
    """Full pages (memory default layout) of each language's gettext
    catalogues (``/usr/share/locale/<lang>/LC_MESSAGES/*.mo``), when present."""
    from optical_memory.config import default_render_config
    from optical_memory.reader.data import catalogue_text
    from optical_memory.render import Renderer

    renderer = Renderer(default_render_config("deepseek-ocr:base"))
    out: list[Any] = []
    for lang in languages:
        text = catalogue_text(lang)
        if not text:
            continue
        pages = renderer.render_text(text)
        most = max(pg.meta.get("lines", 0) for pg in pages)
        out += [pg for pg in pages if pg.meta.get("lines", 0) >= 0.9 * most][:per_language]
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m optical_memory.reader.context",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--margins", default="0,1,2,3,4,6")
    p.add_argument("--weights", default="0.5,1,2")
    p.add_argument("--pages", type=int, default=1, help="validation pages per kind")
    p.add_argument("--languages", default=",".join(TUNING_LANGUAGES),
                   help="gettext catalogues whose pages join the tuning pages")
    p.add_argument("--write", action="store_true", help="write weights/context.json")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    import numpy as np

    from optical_memory.age.renditions import resample_page
    from optical_memory.decode import precision
    from optical_memory.decode.native import NativeDecoder
    from optical_memory.reader.tune import SIDES, validation_pages
    from optical_memory.render import NEWLINE_MARKER

    counts = count_contexts(training_texts())
    logger.info("contexts kept: %s", {k: [len(lv) for lv in v] for k, v in counts.items()})
    dec = NativeDecoder()
    pages = validation_pages(args.pages) + catalogue_pages(
        [x for x in args.languages.split(",") if x], args.pages)
    tiers = [resample_page(pg, (s, s)) for pg in pages for s in SIDES]
    shipped = dec.reader.context

    def score(prior: ContextPrior | None) -> float:
        dec.reader.context = prior
        return float(np.mean([precision(pg.text, dec.decode(pg).text, marker=NEWLINE_MARKER)
                              for pg in tiers]))

    try:
        base = score(None)
        logger.info("without the prior: %.5f", base)
        results = {(0.0, 0.0): base}
        for m in (float(x) for x in args.margins.split(",")):
            for w in (float(x) for x in args.weights.split(",")):
                if m == 0:
                    continue
                results[(m, w)] = score(ContextPrior(counts, m, w))
                logger.info("margin %.1f weight %.1f: %.5f", m, w, results[(m, w)])
    finally:
        dec.reader.context = shipped
    best = max(results, key=lambda k: (round(results[k], 5), -k[0], -k[1]))
    logger.info("best: margin %.1f weight %.1f (%.5f; without %.5f)", *best, results[best], base)
    if args.write:
        prior = ContextPrior(counts, *best)
        data = prior.to_dict()
        data["chosen_by"] = ("python -m optical_memory.reader.context (validation pages of the "
                             "training sources and gettext catalogue pages of "
                             f"{args.languages}, every tier; counts from the training sources "
                             "less the validation slices)")
        data["scores"] = {f"{m:g}/{w:g}": round(v, 5) for (m, w), v in results.items()}
        default_path().write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":"))
                                  + "\n", encoding="utf-8")
    return 0


__all__ = [
    "MIN_COUNT",
    "PAIRS",
    "TUNING_LANGUAGES",
    "ContextPrior",
    "catalogue_pages",
    "char_class",
    "count_contexts",
    "load_prior",
    "training_texts",
]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
