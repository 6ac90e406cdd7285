"""Matched-budget baselines: truncation and a text compressor vs optical memory.

For two histories (a synthetic agent chat and Python's documentation read
as messages, ~320k o200k tokens each, ten RULER needles at ages from ~1k to
~300k tokens) and budgets 4k, 8k, 16k, 32k tokens in the target's
accounting, builds each context of :mod:`optical_memory.niah.matched`
(truncation, query-free TF-IDF extraction, optical memory fresh-only,
tiered, tiered + recall tool, tiered + query-aware context) and measures
which needles each holds (text, or read back from its page images by the
native CPU reader; a tesseract cross-check at one budget) and how much of
the history it carries. Targets: DeepSeek-OCR base and GPT-4o.

Writes ``benchmarks/results/baselines.md`` and, in the run folder
``benchmarks/baselines/`` (not in git), ``rows.jsonl`` and one PNG of
curves per target. A model summary runs only with ``--summary-url``; the
answer stage (each needle's question over each context, the reply scored)
only with ``--answer-url`` and ``--answer-model`` (``--answer-sample N``:
N needles per history).

Run: ``python benchmarks/baselines.py [--history 320000] [--seeds 1,2,3] [--quick]``.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from pathlib import Path

from optical_memory.niah.answer import AnswerEndpoint
from optical_memory.niah.matched import (
    AGE_BUCKETS,
    MatchedConfig,
    age_counts,
    answer_table,
    query_table,
    run_matched,
    summary_table,
)
from optical_memory.niah.plots import budget_curves

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "baselines.md"
RUN = HERE / "baselines"

ANCHORS = """Their figures, their models and decoders, as this project's issue 21 summarises
them (not re-measured here):

- *Optical Context Compression Is Just (Bad) Autoencoding* (arXiv 2512.03643,
  Dec 2025): DeepSeek-OCR-style vision compression does no better than plain
  truncation for language modelling; every compression method beats truncation
  for factual recall.
- *Context Cascade Compression* (C3, arXiv 2511.15244): 98% reconstruction at
  20× and ~93% at 40× with latent text tokens, against DeepSeek-OCR's ~60% at
  20× on Fox.
- *LensVLM* (arXiv 2605.07019): low-resolution renders with the relevant regions
  expanded on demand, near full-text accuracy at 4.3× and ahead of retrieval and
  uniform compression up to 10×.
- *AGAR* (arXiv 2606.12898): re-rendering the spans a model attends to at a
  larger size recovers many errors without training."""


def _rate(rows, **match) -> float:
    sel = [r for r in rows if all(r[k] == v for k, v in match.items())]
    return 100 * sum(bool(r["recalled"]) for r in sel) / len(sel) if sel else float("nan")


def _carried(rows, **match) -> float:
    sel = [r for r in rows if all(r[k] == v for k, v in match.items())]
    return 100 * sum(r["carried_share"] for r in sel) / max(1, len(sel))


def _answer_note(config: MatchedConfig, facts: dict) -> str:
    """Whether the answer stage ran, said plainly."""
    if config.answer is None:
        return ("The answer stage did not run (no `--answer-url`): no model was asked, so "
                "there is no answer accuracy here.")
    sample = ("every needle" if config.answer_sample is None
              else f"{config.answer_sample} needles per history, spread over their ages")
    return (f"Answer stage: `{config.answer.model}` at {config.answer.base_url} was asked each "
            f"needle's question over each context ({sample}; {facts['answers']} distinct "
            f"requests, {facts['answer_seconds']:.0f} s), the context sent as the method hands "
            "it (pages and query images as `image_url` parts; for optical-recall the tool call "
            "and its result after the question); a reply is right when it holds the value "
            "(RULER's string_match_all).")


def _losses(rows, config) -> list[str]:
    """Where optical memory (tiered, no question) does not beat the text baselines."""
    out = ["Where optical memory (tiered, without the question) does not recall more needles "
           "than a text baseline at the same budget:", ""]
    n = 0
    for t in config.targets:
        for kind in config.kinds:
            for b in config.budgets:
                tiered = _rate(rows, target=t, kind=kind, budget=b, method="optical-tiered")
                fresh = _rate(rows, target=t, kind=kind, budget=b, method="optical-fresh")
                for base in ("truncation", "extractive", "summary"):
                    if not any(r["method"] == base for r in rows):
                        continue
                    text = _rate(rows, target=t, kind=kind, budget=b, method=base)
                    if text >= tiered:
                        n += 1
                        out.append(f"- {t}, {kind}, {b // 1000}k: {base} {text:.0f}% vs tiered "
                                   f"{tiered:.0f}% (fresh only {fresh:.0f}%)")
    return out if n else [*out[:1], "", "- nowhere in this grid."]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--history", type=int, default=320_000, help="history tokens per kind")
    ap.add_argument("--seeds", default="1")
    ap.add_argument("--budgets", default="4000,8000,16000,32000")
    ap.add_argument("--targets", default="deepseek-ocr:base,openai:gpt-4o")
    ap.add_argument("--crosscheck", default="8000", help="budgets read by tesseract too ('' = none)")
    ap.add_argument("--quick", action="store_true", help="40k-token histories, 2 budgets")
    ap.add_argument("--summary-url", default=os.environ.get("OPTICAL_MEMORY_SUMMARY_URL", ""))
    ap.add_argument("--summary-model", default=os.environ.get("OPTICAL_MEMORY_SUMMARY_MODEL", ""))
    ap.add_argument("--summary-key-env", default="OPTICAL_MEMORY_SUMMARY_KEY",
                    help="environment variable holding the summary endpoint's API key")
    ap.add_argument("--answer-url", default="",
                    help="OpenAI-compatible /v1 root: ask a model each needle's question over "
                         "each context")
    ap.add_argument("--answer-model", default="", help="model name for --answer-url")
    ap.add_argument("--answer-key-env", default="OPENAI_API_KEY",
                    help="environment variable holding the answer endpoint's API key")
    ap.add_argument("--answer-sample", type=int, default=None,
                    help="ask about N needles per history (spread over ages; default all)")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    budgets = (2000, 8000) if args.quick else tuple(int(b) for b in args.budgets.split(","))
    endpoint = (AnswerEndpoint(args.summary_url, args.summary_model or "summary",
                               api_key=os.environ.get(args.summary_key_env, ""),
                               max_tokens=None) if args.summary_url else None)
    if args.answer_url and not args.answer_model:
        ap.error("--answer-url needs --answer-model")
    answer = (AnswerEndpoint(args.answer_url, args.answer_model,
                             api_key=os.environ.get(args.answer_key_env, ""))
              if args.answer_url else None)
    methods = tuple(m for m in ("truncation", "extractive", "summary", "optical-fresh",
                                "optical-tiered", "optical-recall", "optical-query")
                    if m != "summary" or endpoint is not None)
    config = MatchedConfig(
        history_tokens=40_000 if args.quick else args.history,
        budgets=budgets, targets=tuple(args.targets.split(",")),
        seeds=tuple(int(s) for s in args.seeds.split(",")), methods=methods,
        summary=endpoint, answer=answer, answer_sample=args.answer_sample,
        crosscheck=tuple(int(b) for b in args.crosscheck.split(",") if b),
    )
    t0 = time.perf_counter()
    rows, facts = run_matched(config, progress=lambda s: print(s, flush=True))
    RUN.mkdir(parents=True, exist_ok=True)
    with open(RUN / "rows.jsonl", "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    pngs = [budget_curves(rows, RUN / f"curves_{t.replace(':', '_')}.png", target=t)
            for t in config.targets]

    t_main = config.targets[0]
    lines = [
        "# Matched-budget baselines: truncation and a text compressor vs optical memory",
        "",
        f"Generated by `python benchmarks/baselines.py{' --quick' if args.quick else ''}` in "
        f"{facts['seconds']:.0f} s on {platform.machine()}, Python {platform.python_version()} "
        f"(2 shared cores; {facts['reads']} page read-backs, {facts['read_seconds']:.0f} s). "
        "Text tokenizer `o200k_base` (every text cost + 4 tokens of framing per message, as the "
        "memory's accounting); vision tokens by the target's accounting (DeepSeek-OCR base: "
        "fresh 1024² page 273, aged pages in the cheapest mode that holds them: 640² → 111, "
        "512² → 73; GPT-4o: 512×2048 pages, 765 / 595 / 425 tokens by its tile rule); "
        "decoder: the package's `native` CPU reader (numpy), tesseract 5 as a cross-check. "
        "The memory's default layout for each target (11 px condensed, 1024² for DeepSeek; "
        "9 px on 512×2048 for GPT-4o), default age tiers (base ≤ 200 items, small ≤ 1000, "
        "tiny older), keep_last 8 (2 for `docs`: fewer when the last turns would take more than a quarter of the smallest budget; the extractive compressor keeps the same turns verbatim).",
        "",
        "Histories (seeds " + ", ".join(str(s) for s in config.seeds) + "): `chat`, the "
        "synthetic agent session (tool calls, code, numbers; many short turns), and `docs`, "
        "`pydoc_data.topics` as user messages of ~400 tokens (repeated when shorter than the "
        f"history), each ~{config.history_tokens // 1000}k tokens with ten RULER needles "
        "(`One of the special magic numbers for {key} is: {value}.`, unique key, 7-digit "
        "value) at ages of 0.4% … 95% of the history. Needles per age bucket and kind: "
        + ", ".join(f"{k} {v}" for k, v in age_counts(
            [r for r in rows if r["kind"] == rows[0]["kind"]]).items()) + ".",
        "",
        "A needle is *recalled* when its value is in the context's text or read back (the "
        "native reader) from a page image of the context that holds it; this measures what "
        "the context holds, not what a model answers. " + _answer_note(config, facts)
        + (" With several seeds a cell shows the mean over all needles and, in brackets, "
           "the range of the seeds' means." if len(config.seeds) > 1 else "")
        + " *History carried*: the history's text tokens the "
        "context shows (whole messages for truncation and pages; the selected sentences for "
        "the extractive compressor). Methods:",
        "",
        "- **truncation**: the most recent messages that fit;",
        "- **extractive**: the same last messages verbatim, then older sentences by mean "
        "TF-IDF weight per word (tf in the sentence, idf over messages; numbers are words), "
        "no query, history order;",
        *(["- **summary**: a model's summary of the history in chunks, cut to B "
           f"(`{config.summary.model}`);"] if config.summary is not None else []),
        "- **optical-fresh**: `OpticalMemory.context(B)` with one tier (every page at the "
        "fresh size);",
        "- **optical-tiered**: the same with the default age tiers;",
        "- **optical-recall**: tiered, plus one `recall_memory` call with the needle's "
        "question (4 passages, exact text; the call and its result billed inside B; it needs "
        "the question and a model round trip);",
        "- **optical-query**: tiered, `context(B, query=question)`: the top 3 passages off "
        "the fresh pages re-drawn at full resolution or given as exact text, whichever the "
        "target bills less (billed inside B).",
        "",
    ]
    for t in config.targets:
        lines += [f"## {t}", "", summary_table(rows, t), "",
                  f"Curves: `{pngs[config.targets.index(t)].relative_to(HERE.parent)}` "
                  "(run folder, not in git).", ""]
        if config.answer is not None:
            lines += [f"Answer accuracy ({config.answer.model}; needles asked per cell, the "
                      "share of them the context holds, the share the model answered):", "",
                      answer_table(rows, t), ""]
    if "optical-query" in config.methods:
        lines += ["## Query-aware context on aged pages", "",
                  "Each needle's question given as `context(B, query=question)` against the "
                  "same tiered memory and budget without it; needles grouped by where the "
                  "context without the query has them (the tier of the page holding them, in "
                  "the context's text, or dropped for the budget). Query tokens: what the "
                  "query message costs inside B (the pages give way to it).", ""]
        for t in config.targets:
            lines += [f"{t}:", "", query_table(rows, t), ""]
    checked = [r for r in rows if "recalled_check" in r]
    if checked:
        agree = sum(r["recalled_check"] == r["recalled"] for r in checked)
        by = {m: (sum(r["recalled"] for r in checked if r["method"] == m),
                  sum(r["recalled_check"] for r in checked if r["method"] == m),
                  sum(r["method"] == m for r in checked))
              for m in ("optical-fresh", "optical-tiered", "optical-query")
              if any(r["method"] == m for r in checked)}
        lines += ["## Cross-check: tesseract on the same contexts", "",
                  f"{checked[0]['kind']}, {checked[0]['target']}, budget(s) "
                  f"{', '.join(str(b) for b in config.crosscheck)}: the pages holding needles "
                  "(and the query's images) read by tesseract as well. "
                  + "; ".join(f"{m}: native {a}/{n}, tesseract {b}/{n}" for m, (a, b, n) in by.items())
                  + f" (agreement {agree}/{len(checked)}).", ""]
    # headline numbers, from the rows
    b_lo, b_hi = min(config.budgets), max(config.budgets)
    # the oldest age bucket that holds needles (a --quick history has none past 64k)
    old = max((lo for lo, _, _ in AGE_BUCKETS if any(r['age_tokens'] >= lo for r in rows)),
              default=0)
    lines += [
        "## Findings",
        "",
        f"- At {b_lo // 1000}k tokens on {t_main}, truncation carries "
        f"{_carried(rows, target=t_main, budget=b_lo, method='truncation'):.1f}% of the history, "
        f"optical memory {_carried(rows, target=t_main, budget=b_lo, method='optical-fresh'):.0f}% "
        f"(fresh only) and {_carried(rows, target=t_main, budget=b_lo, method='optical-tiered'):.0f}% "
        f"(tiered); needles recalled: truncation "
        f"{_rate(rows, target=t_main, budget=b_lo, method='truncation'):.0f}%, fresh "
        f"{_rate(rows, target=t_main, budget=b_lo, method='optical-fresh'):.0f}%, tiered "
        f"{_rate(rows, target=t_main, budget=b_lo, method='optical-tiered'):.0f}%, "
        f"tiered + query {_rate(rows, target=t_main, budget=b_lo, method='optical-query'):.0f}%, "
        f"tiered + recall {_rate(rows, target=t_main, budget=b_lo, method='optical-recall'):.0f}%.",
        f"- Needles older than {old // 1000}k tokens at {b_hi // 1000}k on {t_main}: truncation "
        f"{_rate([r for r in rows if r['age_tokens'] >= old], target=t_main, budget=b_hi, method='truncation'):.0f}%, "
        f"tiered {_rate([r for r in rows if r['age_tokens'] >= old], target=t_main, budget=b_hi, method='optical-tiered'):.0f}%, "
        f"fresh {_rate([r for r in rows if r['age_tokens'] >= old], target=t_main, budget=b_hi, method='optical-fresh'):.0f}%.",
        "",
        *_losses(rows, config),
        "",
        "## Anchors from the literature",
        "",
        ANCHORS,
        "",
    ]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines)
    out.write_text(text, encoding="utf-8")
    print(text)
    print(f"\nrun folder {RUN}; {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
