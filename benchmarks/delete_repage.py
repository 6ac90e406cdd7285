"""What deleting one turn costs when its page must be re-rendered.

A synthetic agent session (:func:`optical_memory.conversation.generate_conversation`)
is stored in a fresh SQLite memory and compacted; then single turns are
deleted from old pages, one at a time, with ``repage=True`` (the default: the
other turns of the page are laid out again without the deleted one) and with
``repage=False`` (the page keeps its pixels). Reports per delete: median
seconds, pages replaced and made, and checks after each that no item sits on
two pages and that the deleted text is on no page.

Run: ``python benchmarks/delete_repage.py [--tokens 100000] [--deletes 10]``;
prints a markdown table and writes ``benchmarks/results/delete_repage.md``.
"""
from __future__ import annotations

import argparse
import itertools
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path

from optical_memory import OpticalMemory
from optical_memory.conversation import generate_conversation
from optical_memory.scope import Scope

HERE = Path(__file__).resolve().parent
USER = "bench"


def _check(mem: OpticalMemory, deleted_id: str) -> None:
    """No page shows the deleted item (its spans), and no character of any
    item is on two pages (an item split across pages is on several)."""
    held: dict[str, list[tuple[int, int]]] = {}
    for page in mem.store.list_pages(Scope(USER), with_png=False):
        for s in page.spans:
            assert s.item_id != deleted_id, "a page still shows the deleted turn"
            held.setdefault(s.item_id, []).append((s.start, s.end))
    for item_id, spans in held.items():
        spans.sort()
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans)), f"{item_id} paged twice"


def run(tokens: int, deletes: int, repage: bool, folder: Path) -> dict:
    conv = generate_conversation(tokens=tokens, seed=11)
    with OpticalMemory(folder / f"del-{repage}.db") as mem:
        for i in range(0, len(conv.messages), 500):
            mem.add(conv.messages[i:i + 500], user_id=USER)
        pages_before = mem.stats(user_id=USER).pages
        paged = [i for i in mem.store.list_items(Scope(USER), kinds=["turn"], on_page=True)
                 if len(mem.store.pages_for_item(i.id, Scope(USER))) == 1]
        rng = random.Random(5)
        victims = rng.sample(paged, deletes)
        seconds, replaced, made, partial = [], [], [], 0
        for item in victims:
            n_before = mem.stats(user_id=USER).pages
            t0 = time.perf_counter()
            d = mem.delete(item_ids=[item.id], user_id=USER, repage=repage)
            seconds.append(time.perf_counter() - t0)
            made.append(len(d.repaged))
            # pages removed = those emptied (d.pages) + those swapped out for new ones
            replaced.append(n_before - mem.stats(user_id=USER).pages + len(d.repaged) - d.pages)
            partial += len(d.partial_pages)
            if repage:
                _check(mem, item.id)
        return {
            "repage": repage, "messages": len(conv.messages), "pages": pages_before,
            "median_s": statistics.median(seconds), "max_s": max(seconds),
            "replaced": sum(replaced), "made": sum(made), "partial": partial,
            "deletes": deletes,
        }


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=100_000)
    ap.add_argument("--deletes", type=int, default=10)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "delete_repage.md")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run(args.tokens, args.deletes, repage, Path(tmp)) for repage in (True, False)]
    out = [
        "# Deleting a turn: re-rendering its page",
        "",
        f"Synthetic session of {args.tokens:,} o200k_base tokens ({rows[0]['messages']:,} messages, "
        f"{rows[0]['pages']} pages, deepseek-ocr:base layout), fresh SQLite memory; "
        f"{args.deletes} single turns from old pages deleted one at a time (random, seed 5); "
        f"{platform.python_version()}, {platform.machine()}. With re-rendering, every delete "
        "is checked: no page shows the deleted turn and no item's text is on two pages.",
        "",
        "| repage | median s per delete | max s | old pages replaced | new pages made | "
        "pages left showing deleted text |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        out.append(f"| {'yes (default)' if r['repage'] else 'no'} | {r['median_s']:.3f} | "
                   f"{r['max_s']:.3f} | {r['replaced']} | {r['made']} | {r['partial']} |")
    report = "\n".join(out) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    print(report)  # benchmark script output (not library code)
    return report


if __name__ == "__main__":
    main()
