"""``optical-memory calibrate``: measure the legibility sweep with the user's
own reader (any OpenAI-compatible vision endpoint, or a local reader) and
write the calibration the memory uses from then on.

The sweep and the file are :mod:`optical_memory.fit.user`'s; what the memory
then does with it is shown through the public facade (a memory opened on
the new file: its layout and its tier read-back).
"""
from __future__ import annotations

import json
from typing import Any

import click

from optical_memory.cli._group import main
from optical_memory.cli.output import print_table, progress
from optical_memory.config import DEFAULT_MIN_READBACK, DEFAULT_TARGET

#: Options that only an ``openai`` decoder takes.
ENDPOINT_OPTIONS = ("base_url", "model", "api_key", "preset")


def _sizes(ctx: click.Context, param: click.Parameter, value: str | None) -> list[float] | None:
    if value is None:
        return None
    try:
        return [float(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of px sizes") from None


@main.command(name="calibrate")
@click.option("--decoder", default="openai", show_default=True,
              help="Reader to calibrate: openai (any OpenAI-compatible vision endpoint, e.g. "
                   "vLLM serving DeepSeek-OCR), or a local one (tesseract, native, rapidocr).")
@click.option("--base-url", default=None, envvar="OPENAI_BASE_URL", metavar="URL",
              help="Endpoint root ending in /v1 (env OPENAI_BASE_URL).")
@click.option("--model", default=None, envvar="OPENAI_MODEL",
              help="Served model name (env OPENAI_MODEL).")
@click.option("--api-key", default=None, envvar="OPENAI_API_KEY", show_envvar=False,
              help="Bearer token (env OPENAI_API_KEY; a local vLLM needs none).")
@click.option("--preset", type=click.Choice(["generic", "deepseek-ocr"]), default=None,
              help="Request style: deepseek-ocr (\"Free OCR.\", vLLM's n-gram guard) or "
                   "generic (a transcription prompt; the default).")
@click.option("--target", default=DEFAULT_TARGET, show_default=True,
              help="Vision target the pages are sized for (see `optical-memory targets`).")
@click.option("--sizes", callback=_sizes, default=None, metavar="PX,PX,...",
              help="Font sizes to try, px on the target's page (default: 5 sizes around the "
                   "shipped layout's, e.g. 9,10,11,12,14 for deepseek-ocr:base).")
@click.option("--samples", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Sample pages per layout (Python docs text, the calibration split).")
@click.option("--workers", type=click.IntRange(1, 64), default=4, show_default=True,
              help="Reads in flight at once.")
@click.option("--timeout", type=click.FloatRange(0, min_open=True), default=300.0,
              show_default=True, help="Seconds per request (openai).")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Calibration file (default: calibration.json in the data folder, which "
                   "every memory reading with this decoder then uses).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def calibrate_command(decoder, base_url, model, api_key, preset, target, sizes, samples, workers,
              timeout, out, as_json):
    """Measure which layouts and age tiers your own reader still reads.

    Renders a few font sizes × the age tiers (the master page resampled down
    as aging does) on sample pages, reads every one back with the
    decoder, and writes the read-back to the calibration file. A memory
    reading with that decoder (`--decoder openai`, same model) then lays out
    pages by it and ages them by its tier figures. The default sweep is
    5 sizes × 3 tiers × 1 page = 15 reads.
    """
    from optical_memory.fit import calibrate_decoder, sweep_plan

    given = {"base_url": base_url, "model": model, "api_key": api_key, "preset": preset}
    options: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    if decoder == "openai":
        options["timeout"] = timeout
    elif preset is not None:
        raise click.UsageError(f"--preset is an openai option (decoder is {decoder!r})")
    else:  # the env may hold OPENAI_* for other tools: ignore them for a local reader
        options = {}
    sweep = sweep_plan(target, sizes=sizes, samples=samples)
    where = f" at {options.get('base_url', 'the default endpoint')}" if decoder == "openai" else ""
    click.echo(f"calibrating {decoder}{where}: {len(sweep.sizes)} font sizes × "
               f"{len(sweep.sides)} tier sizes × {samples} page(s) = {sweep.reads} reads",
               err=True)
    with progress(f"reading with {decoder}", sweep.reads) as bar:
        seen = [0]

        def tick(done: int, total: int) -> None:
            if done > seen[0]:
                bar.update(done - seen[0])
                seen[0] = done

        cal = calibrate_decoder(sweep, decoder, options=options, workers=workers, out=out,
                                progress=tick)
    _report(cal, sweep, decoder, options, out, as_json)


def _report(cal: Any, sweep: Any, decoder: str, options: dict[str, Any], out: str | None,
            as_json: bool) -> None:
    """What was measured, and what a memory on this file now does."""
    from optical_memory.fit import user_calibration_path
    from optical_memory.memory import OpticalMemory

    path = str(out or user_calibration_path())
    with OpticalMemory(":memory:", target=sweep.target, decoder=decoder,
                       decoder_options=options, calibration=path) as mem:
        layout = mem.render_config
        tiers = mem.measure_tiers(decode=False)
        label = mem.calibration.label if mem.calibration else "not used"
        names = {max(1, round(sweep.master_side * t.scale)): t.name
                 for t in reversed(mem.aging.tiers)}
    mine = sorted((e for e in cal.entries if e.decoder == decoder),
                  key=lambda e: (e.font_size, -e.side))
    floor = DEFAULT_MIN_READBACK
    data: dict[str, Any] = {
        "path": path, "decoder": decoder, "target": sweep.target, "calibration": label,
        **{k: options[k] for k in ("model", "base_url") if k in options},
        "entries": [{"font_size": e.font_size, "side": e.side, "tier": names.get(e.side),
                     "mean_precision": e.mean_precision, "min_precision": e.min_precision,
                     "tokens_per_page": e.tokens_per_page, "samples": e.samples}
                    for e in mine],
        "layout": {"font_size": layout.font_size, "line_spacing": layout.line_spacing,
                   "newline_mode": layout.newline_mode},
        "tiers": [{"tier": r.tier, "width": r.width, "height": r.height,
                   "vision_tokens": r.vision_tokens, "ratio": round(r.ratio, 2),
                   "readback": r.calibrated, "source": r.calibrated_source,
                   "legible": None if r.calibrated is None else r.calibrated >= floor}
                  for r in tiers],
    }
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    sides = list(sweep.sides)
    cols = ("font px", *[f"{s}² ({names.get(s, '?')})" for s in sides], "text tokens/page",
            "layout")
    by = {(e.font_size, e.side): e for e in mine}
    used = layout.font_size * sweep.master_side / min(layout.width, layout.height)
    rows = []
    for size in sweep.sizes:
        fresh = by.get((size, sides[0]))
        rows.append((f"{size:g}", *["-" if (e := by.get((size, s))) is None
                                    else f"{e.mean_precision:.3f}" for s in sides],
                     "-" if fresh is None else f"{fresh.tokens_per_page:.0f}",
                     "← the memory's" if abs(size - used) < 0.01 else ""))
    print_table(cols, rows, title=f"read-back by {decoder} ({label})",
                caption=f"mean over {sweep.samples} sample page(s) (Python docs, calibration "
                        "split); 1 - edit distance / length; tier images resampled from the "
                        "master as aging makes them",
                right=cols[:-1])
    click.echo(f"written to {path}")
    click.echo(f"a memory reading with {decoder} now lays pages out at "
               f"{layout.font_size:g} px (lines {layout.line_spacing:g} em) for {sweep.target}; "
               "its tiers read back: "
               + ", ".join(f"{r.tier} {'?' if r.calibrated is None else f'{r.calibrated:.3f}'}"
                           f" ({r.calibrated_source})" for r in tiers)
               + f"; in legible mode pages shrink only to tiers ≥ {floor:g}")
