"""Read-back per script at the memory's default layout: Chinese, Japanese,
Korean, Russian (and English for reference).

    .venv/bin/python benchmarks/fidelity_scripts.py [--pages 3] [--workers 2] [--quick]

Pages: ``optical_memory.config.default_render_config("deepseek-ocr:base")``
(1024², 11 px DejaVu Sans Condensed, lines 1.1 em, newline marker, Noto Sans
CJK SC as system fallback), filled with shuffled paragraphs of a corpus
(each page a different order; the corpora are shorter than a page, so a page
repeats paragraphs) with :data:`NEEDLES` needle sentences planted at sentence
boundaries. Corpora: ``optical_memory/data/zh_prose.txt``,
``tests/data/{ja,ko,ru}_prose.txt`` (original prose written for the project),
CPython's LICENSE.txt for English.

Per page: o200k_base tokens of the source text it holds, DeepSeek-OCR base
vision tokens (273), their ratio; per decoder the read-back precision
(1 − edit distance / max length vs the page's visible text, newline marker
strict, as ``benchmarks/fidelity.py``) and the needle read-back (share of
planted needles whose whole sentence is in the read-back, whitespace
ignored). Decoders: tesseract with the languages the page's recorded scripts
call for (``optical_memory.decode.languages.page_options``, what
``OpticalMemory.decode`` uses), tesseract ``eng`` (what every page was read
with before), rapidocr on the page's line grid (what the memory uses) and,
on one page, rapidocr with its text detector (the previous behaviour).
Writes ``benchmarks/results/fidelity_scripts.md``.
"""
from __future__ import annotations

import argparse
import platform
import random
import re
import sys
import sysconfig
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from optical_memory.config import default_render_config
from optical_memory.decode import available_decoders, decode_many
from optical_memory.decode.languages import page_options
from optical_memory.fit import page_precision
from optical_memory.render import Renderer
from optical_memory.tokens import get_counter, get_target
from optical_memory.types import Page

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "fidelity_scripts.md"
NEEDLES = 10

#: language → (corpus, sentence end, needle template, needle keys)
CORPORA: dict[str, tuple[str, str, str, tuple[str, ...]]] = {
    "Chinese": ("optical_memory/data/zh_prose.txt", "。", "储物柜{key}的密码是{value}。",
                ("牡丹", "海棠", "青松", "白鹭", "春雷", "秋水", "明月", "梧桐", "山茶", "翠竹",
                 "飞燕", "寒梅")),
    "Japanese": ("tests/data/ja_prose.txt", "。", "ロッカー{key}の暗証番号は{value}です。",
                 ("さくら", "もみじ", "つばき", "あじさい", "すみれ", "ひまわり", "かえで",
                  "すずらん", "たんぽぽ", "なでしこ", "ききょう", "あさがお")),
    "Korean": ("tests/data/ko_prose.txt", ". ", "{key} 사물함의 비밀번호는 {value}입니다.",
               ("진달래", "무궁화", "소나무", "개나리", "민들레", "해바라기", "동백꽃", "코스모스",
                "은행나무", "참나리", "제비꽃", "느티나무")),
    "Russian": ("tests/data/ru_prose.txt", ". ", "Код доступа к ячейке {key}: {value}.",
                ("Берёза", "Ласточка", "Рябина", "Снегирь", "Ромашка", "Подсолнух", "Журавль",
                 "Незабудка", "Калина", "Соловей", "Одуванчик", "Василёк")),
    "English": ("LICENSE", ". ", "The access code for locker {key} is {value}.",
                ("Amber", "Birch", "Cobalt", "Dahlia", "Ember", "Fennel", "Garnet", "Heron",
                 "Indigo", "Juniper", "Kestrel", "Lilac")),
}


@dataclass
class SamplePage:
    language: str
    page: Page
    tokens: int
    needles: list[tuple[str, str]]  # (sentence, code) on the page


def corpus_text(path: str) -> str:
    if path == "LICENSE":
        return (Path(sysconfig.get_paths()["stdlib"]) / "LICENSE.txt").read_text("utf-8")
    return (ROOT / path).read_text("utf-8")


def build_source(language: str, seed: int, chars: int) -> tuple[str, list[tuple[str, str]]]:
    """Shuffled paragraphs of ``language``'s corpus, ``chars`` long or more,
    with needle sentences after evenly spaced sentence ends."""
    path, end, template, keys = CORPORA[language]
    paras = [p.strip() for p in re.split(r"\n\s*\n" if path == "LICENSE" else r"\n", corpus_text(path))
             if p.strip()]
    rng = random.Random(seed)
    out: list[str] = []
    while sum(len(p) + 1 for p in out) < chars:
        order = paras[:]
        rng.shuffle(order)
        out += order
    text = "\n".join(out)
    ends = [m.end() for m in re.finditer(re.escape(end), text)]
    needles: list[tuple[str, str]] = []
    for i in range(NEEDLES):
        value = str(rng.randrange(1_000_000, 10_000_000))
        needles.append((template.format(key=keys[(seed + i) % len(keys)], value=value), value))
    # positions in the part the first page will hold (~85% of ``chars``)
    spots = sorted({ends[int(len(ends) * (i + 0.5) / NEEDLES * 0.8)] for i in range(NEEDLES)},
                   reverse=True)
    for spot, (needle, _) in zip(spots, needles):
        sep = "" if end == "。" else " "
        text = text[:spot] + needle + sep + text[spot:]
    return text, needles


def make_pages(language: str, n: int, counter) -> list[SamplePage]:
    cfg = default_render_config("deepseek-ocr:base")
    renderer = Renderer(cfg)
    out = []
    for seed in range(n):
        chars = 9_000 if language in ("Chinese", "Japanese", "Korean") else 18_000
        if language == "Korean":
            chars = 12_000
        source, needles = build_source(language, seed, chars)
        layout = renderer.layout(source)[0]
        page = renderer.draw(layout)
        held = "".join(source[s.start:s.end] for s in page.spans)
        on_page = [nd for nd in needles if nd[0] in held]
        out.append(SamplePage(language, page, counter.count(held), on_page))
    return out


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def needle_recall(needles: list[tuple[str, str]], text: str) -> tuple[int, int]:
    """(whole needle sentences read back, their codes read back)."""
    hyp = _squash(text)
    return (sum(1 for nd, _ in needles if _squash(nd) in hyp),
            sum(1 for _, code in needles if code in hyp))


def read(pages: list[SamplePage], decoder: str, options: dict | None, workers: int,
         per_page: bool) -> list:
    """Decode ``pages``: with ``per_page``, each with the options its meta
    calls for (pages grouped by options); else all with ``options``."""
    results: list = [None] * len(pages)
    groups: dict[str, list[int]] = defaultdict(list)
    opts_of: dict[str, dict] = {}
    for i, sp in enumerate(pages):
        opts = page_options(decoder, sp.page.meta) if per_page else dict(options or {})
        key = repr(sorted(opts.items()))
        groups[key].append(i)
        opts_of[key] = opts
    for key, idx in groups.items():
        got = decode_many([pages[i].page.to_png() for i in idx], decoder=decoder,
                          workers=min(workers, len(idx)), options=opts_of[key])
        for i, r in zip(idx, got):
            results[i] = r
    return results


def measure(languages: list[str], n: int, workers: int, quick: bool, log) -> list[dict]:
    counter = get_counter("o200k_base")
    vt = get_target("deepseek-ocr:base").page_tokens
    have = available_decoders()
    rows = []
    for language in languages:
        pages = make_pages(language, n, counter)
        scripts = pages[0].page.meta["scripts"]
        rapid_ok = language in ("Chinese", "Japanese", "English")
        runs = [("tesseract", "tesseract (page's languages)", None, True, pages)]
        if language != "English":
            runs.append(("tesseract", "tesseract eng (before)", {"lang": "eng"}, False, pages[:1]))
        if have.get("rapidocr") is True and not quick:
            runs.append(("rapidocr", "rapidocr (line grid)", None, True,
                         pages if rapid_ok else pages[:1]))
            if language != "English":
                runs.append(("rapidocr", "rapidocr (text detector, before)", {}, False, pages[:1]))
        for decoder, label, options, per_page, use in runs:
            if have.get(decoder) is not True:
                log(f"skip {decoder}: {have.get(decoder)}")
                continue
            t0 = time.perf_counter()
            got = read(use, decoder, options, workers, per_page)
            secs = time.perf_counter() - t0
            prec = [page_precision(sp.page, r.text) for sp, r in zip(use, got)]
            found = codes = total = 0
            for sp, r in zip(use, got):
                f, c = needle_recall(sp.needles, r.text)
                found += f
                codes += c
                total += len(sp.needles)
            row = dict(language=language, decoder=label, n=len(use),
                       lang=got[0].meta.get("lang", "—"),
                       tokens=float(np.mean([sp.tokens for sp in use])),
                       chars=float(np.mean([len(sp.page.text) for sp in use])),
                       vision=vt, precision=float(np.mean(prec)), min=float(min(prec)),
                       found=found, codes=codes, needles=total, seconds=secs / len(use),
                       scripts=", ".join(f"{k} {v:.0%}" for k, v in scripts.items() if v >= 0.005))
            rows.append(row)
            log(f"{language:<9} {label:<34} lang {row['lang']:<8} tokens {row['tokens']:>6.0f} "
                f"ratio {row['tokens'] / vt:5.1f}x precision {row['precision']:.4f} "
                f"(min {row['min']:.4f}) needles {found}/{total} codes {codes}/{total} "
                f"{row['seconds']:.0f} s/page")
    return rows


def _share(k: int, n: int) -> str:
    return f"{k}/{n} ({100 * k / max(1, n):.0f}%)"


def table(rows: list[dict]) -> str:
    out = ["| language (scripts) | decoder | tesseract -l | pages | text tokens/page | "
           "chars/page | vision tokens | ratio | read-back precision (min) | needle sentences "
           "read back | needle codes read back | s/page |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(
            f"| {r['language']} ({r['scripts']}) | {r['decoder']} | {r['lang']} | {r['n']} | "
            f"{r['tokens']:.0f} | {r['chars']:.0f} | {r['vision']} | {r['tokens'] / r['vision']:.1f}× | "
            f"{100 * r['precision']:.2f}% ({100 * r['min']:.2f}%) | "
            f"{_share(r['found'], r['needles'])} | {_share(r['codes'], r['needles'])} | "
            f"{r['seconds']:.0f} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pages", type=int, default=3, help="pages per language (default 3)")
    ap.add_argument("--workers", type=int, default=2, help="decoder processes (default 2)")
    ap.add_argument("--quick", action="store_true", help="1 page per language, tesseract only")
    ap.add_argument("--languages", default=",".join(CORPORA),
                    help=f"comma-separated subset of {', '.join(CORPORA)}")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    languages = [x.strip() for x in args.languages.split(",") if x.strip()]
    rows = measure(languages, 1 if args.quick else args.pages, args.workers, args.quick, log)
    cfg = default_render_config("deepseek-ocr:base")
    md = [
        "# Read-back per script at the memory's default layout",
        "",
        f"Layout: `default_render_config(\"deepseek-ocr:base\")`: {cfg.width}×{cfg.height}, "
        f"{cfg.font_size:g} px {Path(cfg.font_path or 'DejaVuSans').stem}, lines "
        f"{cfg.line_spacing:g} em, newline mode {cfg.newline_mode}, CJK from the system "
        "fallback (Noto Sans CJK SC). Fresh tier (the 1024² master). Text tokens: o200k_base "
        "of the source text a page holds; vision tokens: DeepSeek-OCR base. Precision: "
        "1 − edit distance / max length vs the page's visible text (whitespace-normalised, "
        "newline marker `»` must be read). Needles: "
        f"{NEEDLES} needle sentences planted per page (a locker name and a 7-digit code, in "
        "the page's language, e.g. `Код доступа к ячейке Рябина: 4829173.`); a sentence "
        "counts when the whole of it is in the read-back, a code when its 7 digits are "
        "(whitespace ignored). Pages are shuffled paragraphs of the corpus (shorter than a "
        "page, so paragraphs repeat). tesseract 5.3 with `--psm 6`; its languages come from "
        "the page's recorded scripts (`optical_memory.decode.languages`), upscaled 2× (CJK "
        "3×). rapidocr 3 (bundled PP-OCR models) reads each line of the page's line grid; "
        "its text detector is shown on one page. Rows marked 'before' are what the memory did "
        "before pages recorded their scripts.",
        "",
        table(rows),
        "",
        f"Measured in {time.perf_counter() - t0:.0f} s with {args.workers} worker(s) on "
        f"{platform.machine()} ({platform.python_version()})"
        f"{' (--quick)' if args.quick else ''}.",
        "",
    ]
    text = "\n".join(md)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
