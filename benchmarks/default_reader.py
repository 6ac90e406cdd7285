"""The memory's default reader, ``native`` against ``tesseract``, end to end through the public API.

    python benchmarks/default_reader.py [--pages 2] [--turns 2000] [--out benchmarks/results/default_reader.md]

The reader a memory is built with decides three things: which tier an aged
page may shrink to in the default ``"legible"`` age mode (the legibility
gate), what ``decode()`` returns, and the searchable text of pages stored
with ``keep_text=False``. For each reader, one memory with every other
setting at its default:

1. **The demo's history** (the synthetic 2,000-message agent session of
   ``optical-memory demo``, seed 0): ingested, compacted, then
   ``context(32000)`` for deepseek-ocr:base: pages per tier, context tokens,
   ratio, and the planted fact read back from its page at every tier.
2. **Text nobody here wrote** (the system's gettext catalogues in German,
   Greek and Russian, and, read by native only, Spanish, French, Czech and
   Turkish; markdown descriptions of installed packages; the licences in
   ``/usr/share/common-licenses``): each added as a document;
   the first full pages read back by ``decode()`` at every tier (which
   reader read it: the memory falls back to tesseract for scripts ``native``
   does not read well), the tier the gate lets the page reach when its age
   calls for the oldest tier, and the text a ``keep_text=False`` memory
   stores for search, scored against the text laid on the page.

Precision: the memory's read-back score (1 − edit distance / length).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from optical_memory import OpticalMemory
from optical_memory.age.legibility import Legibility
from optical_memory.conversation import generate_conversation
from optical_memory.decode import precision
from optical_memory.render import NEWLINE_MARKER

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from reader_unshaped import metadata_text, mo_text  # noqa: E402

READERS = ("native", "tesseract")
BUDGET = 32_000
#: (label, source, readers): material for part 2
SOURCES = (("German UI strings", "mo:de", READERS), ("Greek UI strings", "mo:el", READERS),
           ("Russian UI strings", "mo:ru", READERS),
           ("package descriptions (markdown)", "metadata", READERS),
           ("licences", "licenses", READERS),
           ("Spanish UI strings", "mo:es", ("native",)), ("French UI strings", "mo:fr", ("native",)),
           ("Czech UI strings", "mo:cs", ("native",)), ("Turkish UI strings", "mo:tr", ("native",)))


def licence_text(limit: int = 40_000) -> str:
    out: list[str] = []
    for f in sorted(Path("/usr/share/common-licenses").glob("*")):
        if f.is_file():
            out.append(f.read_text(encoding="utf-8", errors="replace"))
        if sum(map(len, out)) > limit:
            break
    return "\n".join(out)


def source_text(source: str) -> str:
    if source == "metadata":
        return metadata_text()
    if source == "licenses":
        return licence_text()
    return mo_text(source[3:])


def demo_part(reader: str, turns: int) -> dict[str, Any]:
    conv = generate_conversation(turns=turns, seed=0, needle_depth=0.1)
    assert conv.needle is not None
    t0 = time.perf_counter()
    with OpticalMemory(":memory:", decoder=reader) as mem:
        for i in range(0, len(conv.messages), 200):
            mem.add(conv.messages[i:i + 200])
        mem.compact(force=True)
        ingest = time.perf_counter() - t0
        acc = mem.context(BUDGET).accounting
        hit = mem.retrieve(conv.needle.keywords, k=1)[0]
        reads = {}
        for tier in mem.aging.names:
            d = mem.decode(hit, tier=tier)
            reads[tier] = (d.precision, conv.needle.answer.lower() in d.text.lower(), d.seconds)
        page_tier = mem.get_page(hit.page_id).tier if hit.page_id else "-"
    return {"acc": acc, "reads": reads, "needle_tier": page_tier, "ingest_s": ingest}


def full_pages(mem: OpticalMemory, ids: list[str], n: int) -> list[Any]:
    recs = [mem.get_page(p) for p in ids]
    most = max(len(r.text or "") for r in recs)
    return [r for r in recs if len(r.text or "") >= 0.8 * most][:n]


def unshaped_part(reader: str, text: str, n: int) -> dict[str, Any]:
    with OpticalMemory(":memory:", decoder=reader) as mem:
        res = mem.add_document(text)
        recs = full_pages(mem, list(res.page_ids), n)
        gate = Legibility(mem.aging, None, reader)
        by_tier: dict[str, list[float]] = {t: [] for t in mem.aging.names}
        secs: list[float] = []
        used: set[str] = set()
        reached = []
        accented = [float(r.meta.get("accented", 0.0)) for r in recs]
        for r in recs:
            reached.append(gate.allowed(r.meta, mem.aging.names[0], mem.aging.names[-1]))
            for tier in mem.aging.names:
                d = mem.decode(r.id, tier=tier)
                by_tier[tier].append(d.precision or 0.0)
                secs.append(d.seconds)
                used.add(d.decoder)
        truth = [r.text for r in recs]
    t0 = time.perf_counter()
    with OpticalMemory(":memory:", decoder=reader, keep_text=False) as blind:
        res = blind.add_document(text)
        stored = [blind.get_page(p).readback or "" for p in res.page_ids]
    blind_s = time.perf_counter() - t0
    # the same text laid out the same way: the pages pair up in order
    with OpticalMemory(":memory:", decoder=reader) as mem:
        laid = [mem.get_page(p).text or "" for p in mem.add_document(text).page_ids]
    stored_prec = [precision(t, s, marker=NEWLINE_MARKER) for t, s in zip(laid, stored)]
    return {"tiers": {t: sum(v) / len(v) for t, v in by_tier.items()},
            "decoder": "+".join(sorted(used)), "secs": sum(secs) / len(secs),
            "reached": reached, "pages": len(truth), "accented": sum(accented) / len(accented), "stored": sum(stored_prec) / len(stored_prec),
            "stored_pages": len(stored_prec), "blind_s": blind_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, default=2)
    ap.add_argument("--turns", type=int, default=2000)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "default_reader.md")
    args = ap.parse_args()
    t_all = time.perf_counter()
    lines = ["# The memory's default reader: native against tesseract", "",
             f"Generated by `python benchmarks/default_reader.py --pages {args.pages} --turns "
             f"{args.turns}`. Each reader is the `decoder` of an `OpticalMemory` with every "
             "other setting at its default (deepseek-ocr:base, o200k_base, the layout calibrated "
             "for tesseract: 11 px condensed, newline markers; `\"legible\"` aging, floor 0.95). "
             "Precision: 1 − edit distance / length against the text laid on the page.", "",
             f"## 1. The demo's history ({args.turns} messages, seed 0), `context({BUDGET})`", "",
             "| reader | pages base / small / tiny | context tokens | ratio | legible share "
             "(calibrated read-back) | needle page: read-back base / small / tiny (found?) | "
             "decode s/page | ingest s |", "|---|---|---:|---:|---|---|---:|---:|"]
    for reader in READERS:
        out = demo_part(reader, args.turns)
        acc = out["acc"]
        tiers = " / ".join(str(acc.per_tier[t].pages) if t in acc.per_tier else "0"
                           for t in ("base", "small", "tiny"))
        leg = acc.legible
        reads = " / ".join(f"{p:.3f} ({'yes' if ok else 'no'})"
                           for p, ok, _ in out["reads"].values())
        secs = sum(s for *_, s in out["reads"].values()) / len(out["reads"])
        lines.append(f"| {reader} | {tiers} | {acc.context_tokens} | {acc.ratio:.1f}× | "
                     f"{leg.pages}/{acc.pages} pages"
                     + (f" ({leg.readback:.3f})" if leg.readback is not None else "")
                     + f" | {reads} | {secs:.2f} | {out['ingest_s']:.0f} |")
        print(lines[-1], flush=True)
    lines += ["", "## 2. Text nobody here wrote, through `decode()` and `keep_text=False`", "",
              f"First {args.pages} full pages of each source, laid out by the memory. "
              "`gate`: the tier the legibility gate lets each page reach when its age calls for "
              "tiny (pages of a script the shipped calibration was not measured on, or with "
              "≥ 3 % of their Latin letters accented, stay where they are unless "
              "`AgePolicy(verify=True)` measures them). `accented`: that share. `stored`: the text a "
              "`keep_text=False` memory keeps for search, against the text laid on the page "
              "(every page of the source).", "",
              "| text | memory's reader | read by | decode base | small | tiny | s/page | "
              "accented | gate | stored (pages) | keep_text=False add s |",
              "|---|---|---|---:|---:|---:|---:|---:|---|---:|---:|"]
    for label, source, readers in SOURCES:
        text = source_text(source)
        if not text:
            lines.append(f"| {label} | — | (no such text on this machine) | | | | | | | | |")
            continue
        for reader in readers:
            u = unshaped_part(reader, text, args.pages)
            t = u["tiers"]
            lines.append(f"| {label} | {reader} | {u['decoder']} | {t['base']:.4f} | "
                         f"{t['small']:.4f} | {t['tiny']:.4f} | {u['secs']:.2f} | "
                         f"{u['accented']:.3f} | {', '.join(u['reached'])} | {u['stored']:.4f} ({u['stored_pages']}) | "
                         f"{u['blind_s']:.0f} |")
            print(lines[-1], flush=True)
    import subprocess

    langs = subprocess.run(["tesseract", "--list-langs"], capture_output=True, text=True,
                           check=False).stdout.splitlines()[1:]

    lines += ["", "Tesseract language packs installed here: "
              + ", ".join(sorted(x.strip() for x in langs if x.strip())) + " (a page of a script without its "
              "pack is read with `eng`). `read by`: who read each page (a memory reading with "
              "`native` hands pages of scripts it does not read well to tesseract: "
              "`NATIVE_SCRIPTS`). "
              "s/page: wall time of one `decode()` on this 2-core machine (other work may run).",
              "", f"{time.perf_counter() - t_all:.0f} s in all on this machine.", ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
