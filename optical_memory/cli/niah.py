"""``optical-memory niah``: needle-in-a-haystack runs and their plots.

A thin layer over :mod:`optical_memory.niah`: ``run`` executes a grid (one
JSON per cell in ``--out``, resumable, parallel) and draws its PNGs;
``pack`` folds a run folder's cells into one gzipped JSONL (the form to
publish or commit); ``plot`` redraws heatmaps and forgetting curves from a
folder of cells or a packed file.
Progress goes to stderr; ``--json`` prints the summary as JSON on stdout.
"""
from __future__ import annotations

import json
import os
import re
from typing import Literal, overload

import click

from optical_memory.cli._group import main
from optical_memory.cli.files import private_dir
from optical_memory.config import DEFAULT_DECODER
from optical_memory.tokens import DEFAULT_TARGET, DEFAULT_TOKENIZER

_RANGE = re.compile(r"^\s*([0-9.]+)\s*\.\.\s*([0-9.]+)\s*x\s*([0-9]+)\s*$")


@overload
def parse_numbers(text: str, *, integer: Literal[True]) -> list[int]: ...
@overload
def parse_numbers(text: str, *, integer: Literal[False]) -> list[float]: ...
def parse_numbers(text: str, *, integer: bool) -> list[int] | list[float]:
    """"1000,4000,16000" or gkamradt's linear grid "1000..64000x15"."""
    from optical_memory.niah import linspace

    m = _RANGE.match(text)
    try:
        if m:
            values = linspace(float(m.group(1)), float(m.group(2)), int(m.group(3)))
        else:
            values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise click.BadParameter(f"expected numbers like 1000,4000 or 1000..64000x15 "
                                 f"(got {text!r})") from exc
    if not values:
        raise click.BadParameter(f"no numbers in {text!r}")
    return [int(round(v)) for v in values] if integer else [round(v, 4) for v in values]


def _console():
    from rich.console import Console

    return Console(stderr=True, highlight=False)


@main.group("niah")
def niah() -> None:
    """Needle-in-a-haystack suite: recall of planted facts per context length,
    depth and age tier (gkamradt grid, RULER needles and scoring)."""


@niah.command("run")
@click.option("--lengths", default="1000..16000x4", show_default=True,
              help="Context lengths in text tokens: 1000,4000 or LO..HIxN (linear).")
@click.option("--depths", default="0..100x5", show_default=True,
              help="Needle depths in %: 0,50,100 or 0..100xN.")
@click.option("--tiers", default="all", show_default=True,
              help="Age tiers to read the needle's page at (comma list), or 'all'.")
@click.option("--needle-type", "kind", default="single", show_default=True,
              type=click.Choice(["single", "multikey", "multivalue", "multiquery"]),
              help="RULER task shape.")
@click.option("--value-type", default="number", show_default=True,
              type=click.Choice(["number", "word", "uuid"]), help="Needle value kind.")
@click.option("--haystack", default="pydoc", show_default=True, metavar="pydoc|chat|DIR",
              help="pydoc_data.topics, the synthetic chat, or a folder of .txt/.md/.rst files.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for the cell JSON files and PNGs.")
@click.option("--workers", type=click.IntRange(1), default=None,
              help="Processes (default: CPU count); one (length, depth) each.")
@click.option("--resume/--no-resume", default=True, show_default=True,
              help="Skip cells whose JSON is already in --out.")
@click.option("--decoder", default=DEFAULT_DECODER, show_default=True, help="Read-back decoder.")
@click.option("--target", default=DEFAULT_TARGET, show_default=True,
              help="Vision target (billing).")
@click.option("--tokenizer", default=DEFAULT_TOKENIZER, show_default=True,
              help="Tokenizer that measures context lengths.")
@click.option("--seed", type=int, default=0, show_default=True, help="Needle / chat seed.")
@click.option("--font-px", type=float, default=None,
              help="Page font size (default: the memory's calibrated layout).")
@click.option("--readback/--no-readback", default=True, show_default=True,
              help="Decode the needle's page(s) (off: answer stage only).")
@click.option("--omit-needle", is_flag=True,
              help="Negative control: leave the needles out; every cell must score 0.")
@click.option("--answer-url", default=None, metavar="URL",
              help="OpenAI-compatible /v1 root: also ask a vision model the question "
                   "over the pages.")
@click.option("--answer-model", default=None, help="Model name for --answer-url.")
@click.option("--answer-key-env", default="OPENAI_API_KEY", show_default=True,
              help="Environment variable holding the answer endpoint's API key.")
@click.option("--plot/--no-plot", default=True, show_default=True, help="Draw PNGs into --out.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def run_cmd(lengths, depths, tiers, kind, value_type, haystack, out_dir, workers, resume,
            decoder, target, tokenizer, seed, font_px, readback, omit_needle, answer_url,
            answer_model, answer_key_env, plot, as_json) -> None:
    """Run a needle-in-a-haystack grid through the memory.

    Every (length, depth) haystack is stored in a fresh in-memory
    OpticalMemory; at each tier the needle is looked up with retrieve() and
    its page read back with decode(); one JSON per cell goes to --out.

    \b
    Example (gkamradt's 15x15 grid, fresh tier):
      optical-memory niah run --lengths 1000..64000x15 --depths 0..100x15 \\
          --tiers base --out niah-out --workers 2
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from optical_memory.niah import (
        AnswerEndpoint,
        NiahConfig,
        forgetting_table,
        run_grid,
    )
    from optical_memory.niah.plots import markdown_tiers, plot_folder

    answer = None
    if answer_url:
        if not answer_model:
            raise click.UsageError("--answer-url needs --answer-model")
        answer = AnswerEndpoint(answer_url, answer_model,
                                api_key=os.environ.get(answer_key_env, ""))
    config = NiahConfig(
        lengths=tuple(parse_numbers(lengths, integer=True)),
        depths=tuple(parse_numbers(depths, integer=False)),
        tiers=(None if tiers.strip() == "all"
               else tuple(t.strip() for t in tiers.split(",") if t.strip())),
        haystack=haystack, kind=kind, value_type=value_type, decoder=decoder, target=target,
        tokenizer=tokenizer, seed=seed, font_px=font_px, readback=readback,
        omit_needle=omit_needle, answer=answer,
    )
    private_dir(out_dir)  # the cells and PNGs are the user's own (0700 folder)
    console = _console()
    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=as_json) as bar:
        task = bar.add_task("niah cells", total=None)

        def progress(done, total, cells):
            bar.update(task, completed=done, total=total)
            for c in cells:
                bar.console.log(f"len {c['context_length']:>6} depth {c['depth_percent']:5.1f} "
                                f"{c['tier']:<5} score {c['score']:.2f} "
                                f"retrieved {c['retrieved']:.2f}")

        summary = run_grid(config, out_dir, workers=workers or os.cpu_count() or 1,
                           resume=resume, progress=progress)
    rows = forgetting_table(summary.results) if summary.results else []
    pngs = ([str(p) for p in plot_folder(summary.results, out_dir)]
            if plot and summary.results else [])
    if as_json:
        click.echo(json.dumps({
            "out": out_dir, "cells": len(summary.results), "ran": summary.ran,
            "skipped": summary.skipped, "seconds": round(summary.seconds, 1),
            "tiers": [r.__dict__ for r in rows], "png": pngs,
        }, indent=1))
        return
    console.print(f"{summary.ran} cells run, {summary.skipped} skipped, "
                  f"{summary.seconds:.0f} s → {out_dir}")
    if rows:
        click.echo(markdown_tiers(rows))
    for p in pngs:
        console.print(f"wrote {p}")


@niah.command("pack")
@click.argument("folders", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--to", "dest", required=True, type=click.Path(dir_okay=False),
              help="The .jsonl.gz file to write (cells already in it are kept unless --replace).")
@click.option("--replace", is_flag=True, help="Drop the cells already in --to.")
def pack_cmd(folders, dest, replace) -> None:
    """Pack the cell JSON files of run FOLDERS into one sorted, reproducible .jsonl.gz."""
    from optical_memory.niah.packed import SUFFIX, pack_cells, read_packed

    if not dest.endswith(SUFFIX):
        raise click.BadParameter(f"must end with {SUFFIX}", param_hint="--to")
    path = pack_cells(list(folders), dest, merge=not replace)
    click.echo(f"{len(read_packed(path))} cells in {path}")


@niah.command("plot")
@click.argument("folder", type=click.Path(exists=True))
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="Where to write the PNGs (default: FOLDER, or the packed file's folder).")
@click.option("--metric", default="score", show_default=True,
              help="Cell field to colour by: score, retrieved, answer_score, score_part.")
@click.option("--json", "as_json", is_flag=True, help="Print the tables as JSON.")
def plot_cmd(folder, out_dir, metric, as_json) -> None:
    """Draw heatmaps (per tier) and forgetting curves from FOLDER's cell JSON
    files, or from a packed .jsonl.gz file of cells."""
    from optical_memory.niah import forgetting_table, load_results
    from optical_memory.niah.plots import markdown_tiers, plot_folder

    results = load_results(folder)
    if not results:
        raise click.ClickException(f"no needle-in-a-haystack cell JSON files in {folder}")
    default_out = folder if os.path.isdir(folder) else (os.path.dirname(folder) or ".")
    if out_dir:
        private_dir(out_dir)
    pngs = [str(p) for p in plot_folder(results, out_dir or default_out, metric=metric)]
    rows = forgetting_table(results)
    if as_json:
        click.echo(json.dumps({"cells": len(results), "tiers": [r.__dict__ for r in rows],
                               "png": pngs}, indent=1))
        return
    click.echo(markdown_tiers(rows))
    for p in pngs:
        _console().print(f"wrote {p}")
