"""Choose the reader's inference stretch on validation pages, after training.

    python -m optical_memory.reader.tune [--weights optical_memory/reader/weights]
                                         [--stretches 0.95,1.0,1.05,1.1,1.15,1.2] [--write]

A line crop is scaled to the model's input height and, across, ``stretch``
times what keeps its aspect ratio: a little wider than training's average
gives narrow doubled letters ("ll", "ff") the frames CTC needs. The best
stretch is a property of the weights, chosen here on **validation** pages
drawn from the training sources (``pydoc_data`` prose, standard-library code
and a synthetic conversation of a seed below the held-out ones) at the
memory's default layout, fresh and at every tier; never on the held-out
pages the reader is benchmarked on. ``--write`` records the choice (and the
scores behind it) under ``"inference"`` in ``reader.json``.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

#: Tiers the stretch is scored on (side of the square page).
SIDES = (1024, 640, 512)
#: A seed of :func:`optical_memory.conversation.generate_conversation` below
#: the held-out ones (≥ 100).
VALIDATION_CHAT_SEED = 7


def validation_pages(per_kind: int = 1) -> list[Any]:
    """Full pages of validation text at the memory's default layout."""
    from optical_memory.config import default_render_config
    from optical_memory.ingest import turn_draft
    from optical_memory.reader.data import chat_messages, pydoc_text, stdlib_text
    from optical_memory.render import Renderer
    from optical_memory.render.config import RenderItem
    from optical_memory.tokens import get_counter

    renderer = Renderer(default_render_config("deepseek-ocr:base"))
    counter = get_counter("o200k_base")
    chat = [turn_draft(m, i, counter, keep_text=True).render
            for i, m in enumerate(chat_messages(VALIDATION_CHAT_SEED, tokens=8000 * per_kind))]
    code = stdlib_text()
    start = len(code) // 3  # away from the start of the file list
    sources = [
        [RenderItem("prose", "text", pydoc_text()[-60_000 * per_kind:])],
        [RenderItem("code", "text", code[start:start + 40_000 * per_kind])],
        chat,
    ]
    out = []
    for items in sources:
        pages = renderer.render_items(items)
        most = max(p.meta.get("lines", 0) for p in pages)
        out += [p for p in pages if p.meta.get("lines", 0) >= 0.9 * most][:per_kind]
    return out


def score_stretches(weights: Path | None, stretches: Sequence[float],
                    per_kind: int = 1) -> dict[float, dict[int, float]]:
    """Mean read-back precision per stretch and tier on the validation pages."""
    from optical_memory.age.renditions import resample_page
    from optical_memory.decode import precision
    from optical_memory.decode.native import NativeDecoder
    from optical_memory.render import NEWLINE_MARKER

    dec = NativeDecoder(weights=weights)
    pages = validation_pages(per_kind)
    tiers = {side: [resample_page(p, (side, side)) for p in pages] for side in SIDES}
    out: dict[float, dict[int, float]] = {}
    shipped = dec.reader.stretch  # the reader instance is shared (cached): put it back
    try:
        for s in stretches:
            dec.reader.stretch = float(s)
            out[float(s)] = {
                side: round(float(np.mean([precision(p.text, dec.decode(p).text,
                                                     marker=NEWLINE_MARKER) for p in ps])), 5)
                for side, ps in tiers.items()}
            logger.info("stretch %.2f: %s", s, out[float(s)])
    finally:
        dec.reader.stretch = shipped
    return out


def best_stretch(scores: dict[float, dict[int, float]]) -> float:
    """The stretch with the best mean over tiers (ties: nearest to 1)."""
    return max(scores, key=lambda s: (round(float(np.mean(list(scores[s].values()))), 4),
                                      -abs(s - 1.0)))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m optical_memory.reader.tune",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", type=Path, default=None,
                   help="folder with reader.json (default: the package's)")
    p.add_argument("--stretches", default="0.95,1.0,1.05,1.1,1.15,1.2")
    p.add_argument("--pages", type=int, default=1, help="validation pages per kind")
    p.add_argument("--write", action="store_true", help="record the choice in reader.json")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    from optical_memory.reader.infer import default_weights

    recipe = (args.weights / "reader.json") if args.weights else default_weights()
    stretches = [float(x) for x in args.stretches.split(",")]
    scores = score_stretches(recipe, stretches, args.pages)
    best = best_stretch(scores)
    logger.info("best stretch: %.2f", best)
    if args.write:
        data = json.loads(recipe.read_text(encoding="utf-8"))
        data["inference"] = {
            "stretch": best,
            "chosen_by": "python -m optical_memory.reader.tune (validation pages from the "
                         "training sources: pydoc prose, stdlib code, chat seed "
                         f"{VALIDATION_CHAT_SEED}; default layout; tiers {list(SIDES)})",
            "scores": {f"{s:.2f}": v for s, v in scores.items()},
        }
        recipe.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
