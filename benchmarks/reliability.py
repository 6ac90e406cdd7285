"""Reliability figures at a larger size than CI: SIGKILLs survived, concurrent
writers × operations, racing add / delete / compact / context processes,
hypothesis examples per property (library and CLI), peak memory of hostile
images and a 10 MB input, on SQLite and (when ``OPTICAL_MEMORY_TEST_PG_URL`` is
set) PostgreSQL.

    eval "$(scripts/start_postgres.sh)"
    .venv/bin/python benchmarks/reliability.py --kills 20 --writers 6 --ops 40 --examples 200

Writes benchmarks/results/reliability.md. The drivers and invariant checks are
the suite's own (tests/reliability_worker.py); any lost acknowledged item or
broken invariant aborts the run with the assertion.
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import reliability_worker as rw  # noqa: E402

PG_ENV = "OPTICAL_MEMORY_TEST_PG_URL"
PROPERTIES = (
    "test_hostile_add_typed_error_or_stored_intact",
    "test_hostile_queries_only_typed_errors_or_correct_hits",
    "test_hostile_images_typed_error_or_image",
    "test_hostile_page_import_typed_error_or_round_trip",
    "test_no_read_returns_another_scopes_data",
)


def hypothesis_counts(examples: int, pg: bool) -> tuple[dict[str, int], float, str]:
    """Run the suite's property tests with ``examples`` each; returns the
    passing examples hypothesis reports per test id, the seconds, the summary."""
    env = {**os.environ, "OPTICAL_MEMORY_RELIABILITY_EXAMPLES": str(examples)}
    if not pg:
        env.pop(PG_ENV, None)
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
           "--hypothesis-show-statistics", str(ROOT / "tests" / "test_reliability.py"),
           "-k", " or ".join(PROPERTIES)]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"property tests failed:\n{out.stdout[-6000:]}\n{out.stderr[-3000:]}")
    counts: dict[str, int] = {}
    current = None
    for line in out.stdout.splitlines():
        m = re.match(r"tests/test_reliability.py::(\S+):$", line.strip())
        if m:
            current = m.group(1)
            continue
        m = re.search(r"(\d+) passing", line)
        if m and current:
            counts[current] = counts.get(current, 0) + int(m.group(1))
    summary = out.stdout.strip().splitlines()[-1]
    return counts, seconds, summary


# Peaks are read from /proc/self/status (VmHWM): ru_maxrss would carry the
# parent's peak across fork + exec.
_PEAK_IMAGE = """
import re, sys, time
from optical_memory.decode.base import coerce_image
t0 = time.perf_counter()
img = coerce_image(open(sys.argv[1], "rb").read())
hwm = int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1))
print(hwm // 1024, time.perf_counter() - t0)
"""

_PEAK_INPUT = """
import re, sys, time
from optical_memory import InputError, OpticalMemory
def hwm():
    return int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1))
mem = OpticalMemory(":memory:")
big = "word " * 2_000_000  # 10 MB
before = hwm() // 1024
t0 = time.perf_counter()
try:
    mem.add(big if sys.argv[1] == "text" else [{"role": "user", "content": big}])
    raise SystemExit("accepted")
except InputError:
    pass
print(hwm() // 1024 - before, time.perf_counter() - t0)
"""


def hostile_peaks(folder: Path) -> list[tuple[str, int, int, float]]:
    """(input, file bytes, peak RSS MB of a fresh process decoding it, seconds)."""
    import numpy as np
    from PIL import Image

    side = 4800
    made = {}
    gray16 = np.zeros((side, side), dtype=np.uint16)
    gray16[::400] = 60_000
    Image.fromarray(gray16).save(folder / "gray16.png")
    made["16-bit gray PNG, 4800²"] = folder / "gray16.png"
    rgba = np.full((side, side, 4), 255, dtype=np.uint8)
    rgba[::400, :, :3] = 0
    rgba[:, :50, 3] = 0
    Image.fromarray(rgba, "RGBA").save(folder / "rgba.png")
    made["RGBA PNG, 4800²"] = folder / "rgba.png"
    out = []
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for label, path in made.items():
        run = subprocess.run([sys.executable, "-c", _PEAK_IMAGE, str(path)], env=env,
                             capture_output=True, text=True, check=True)
        mb, secs = run.stdout.split()
        out.append((label, path.stat().st_size, int(mb), float(secs)))
    return out


def input_peaks() -> list[tuple[str, int, float]]:
    """(input, extra peak RSS MB while refusing it, seconds to refuse)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = []
    for kind, label in (("text", "10 MB text"), ("turn", "10 MB chat turn")):
        run = subprocess.run([sys.executable, "-c", _PEAK_INPUT, kind], env=env,
                             capture_output=True, text=True, check=True)
        mb, secs = run.stdout.split()
        out.append((label, int(mb), float(secs)))
    return out


def cli_property(examples: int) -> tuple[int, float, str]:
    """The CLI property test (no traceback, exit code 0/1/2) with ``examples``."""
    count_file = Path(tempfile.mkdtemp(prefix="om-cli-")) / "count"
    env = {**os.environ, "OPTICAL_MEMORY_CLI_EXAMPLES": str(examples),
           "OPTICAL_MEMORY_CLI_COUNT_FILE": str(count_file)}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
           "--hypothesis-show-statistics", str(ROOT / "tests" / "test_cli_property.py"),
           "-k", "traceback_many"]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"CLI property test failed:\n{out.stdout[-6000:]}")
    tried = int(count_file.read_text())
    return tried, seconds, out.stdout.strip().splitlines()[-1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--writers", type=int, default=6)
    ap.add_argument("--ops", type=int, default=40)
    ap.add_argument("--examples", type=int, default=200)
    ap.add_argument("--racers", type=int, default=3)
    ap.add_argument("--race-seconds", type=float, default=30.0)
    ap.add_argument("--cli-examples", type=int, default=2000)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "reliability.md")
    args = ap.parse_args()

    backends: list[tuple[str, str]] = []
    tmp = tempfile.mkdtemp(prefix="om-reliability-")
    backends.append(("sqlite", str(Path(tmp) / "memory.db")))
    if os.environ.get(PG_ENV):
        backends.append(("postgresql", os.environ[PG_ENV]))

    rows_crash, rows_conc, rows_race = [], [], []
    for name, url in backends:
        user = f"bench{uuid.uuid4().hex[:8]}"
        crash = rw.run_crash(url, user, kills=args.kills, seed=3)
        rows_crash.append((name, crash))
        conc = rw.run_concurrency(url, user + "c", writers=args.writers, ops=args.ops, seed=9)
        rows_conc.append((name, conc))
        race = rw.run_race(url, user + "r", racers=args.racers, seconds=args.race_seconds,
                           seed=13)
        rows_race.append((name, race))

    counts, secs, summary = hypothesis_counts(args.examples, pg=len(backends) > 1)
    cli_tried, cli_secs, cli_summary = cli_property(args.cli_examples)
    images = hostile_peaks(Path(tmp))
    inputs = input_peaks()

    lines = [
        "# Reliability",
        "",
        f"`benchmarks/reliability.py --kills {args.kills} --writers {args.writers} "
        f"--ops {args.ops} --examples {args.examples}` on {platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}. "
        "Drivers and checks: tests/reliability_worker.py (the CI suite runs the same "
        "code smaller: 4 kills, 3 writers × 12 ops, 40 examples per property).",
        "",
        "## Crash safety (SIGKILL at random moments during adds)",
        "",
        "A child adds chat turns (2 per call) and 6-paragraph documents (every 4th call) "
        "through `OpticalMemory` on 320 px pages, acknowledging each call's ids and "
        "text hashes on stdout after it returns; it is killed with SIGKILL at a random "
        "moment, the store is reopened and checked (every acknowledged item present "
        "with its text and hash; every page's spans name present items within their "
        "text; page PNGs and renditions decode at their recorded size; `page_items`, "
        "lists, stats and search agree; SQLite `integrity_check`, `foreign_key_check` "
        "and FTS5 integrity-check / PostgreSQL search rows for every item), then a new "
        "child continues on the same store.",
        "",
        "| backend | kills | acknowledged items | lost | items stored | pages | seconds |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in rows_crash:
        lines.append(f"| {name} | {r.kills} | {r.acked} | **{r.lost}** | {r.items} | {r.pages} "
                     f"| {r.seconds:.1f} |")
    lines += [
        "",
        "## Concurrency (processes writing and reading one memory at once)",
        "",
        "Each writer process adds one turn per operation in its own session of one "
        "user, and every 3rd operation retrieves its write user-wide and reads stats, "
        "every 5th builds a context. Every child must exit 0 (no \"database is "
        "locked\", no error of any kind), every acknowledged write must be stored, "
        "and each writer's items keep their order.",
        "",
        "| backend | writers × ops | acknowledged | lost | seconds |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in rows_conc:
        lines.append(f"| {name} | {r.writers} × {r.ops} | {r.acked} | **{r.lost}** | "
                     f"{r.seconds:.1f} |")
    lines += [
        "",
        "## Races (processes adding, deleting, compacting and reading one scope)",
        "",
        "Each racer, for a fixed time, adds two turns, deletes 1-3 random turns of the "
        "scope (its own or the others'), compacts (sometimes forced) or builds a context "
        "with a random budget and keep_last, as fast as it can, all in one user scope on "
        "320 px pages. An exception escaping any call fails the racer. After the race: "
        "every acknowledged item is stored exactly once unless a racer asked to delete it, "
        "no text is stored twice, and the store passes the crash checks above.",
        "",
        "| backend | racers × seconds | escaped exceptions | acknowledged adds | "
        "delete requests | lost | duplicated | items left |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in rows_race:
        lines.append(f"| {name} | {r.racers} × {r.seconds:.0f} | **{r.escaped}** | {r.acked} | "
                     f"{r.deleted} | **{r.lost}** | **{r.duplicated}** | {r.items} |")
    lines += [
        "",
        "## Hostile input: memory and time",
        "",
        "Peak RSS of a fresh Python process (interpreter and imports included) that decodes "
        "the image to 8-bit gray with `coerce_image` (the path every decoder takes); the "
        "decode limit is 25 M pixels, checked from the header before decoding.",
        "",
        "| image | file bytes | peak RSS MB | seconds |",
        "|---|---:|---:|---:|",
    ]
    for label, size, mb, s_ in images:
        lines.append(f"| {label} | {size:,} | **{mb}** | {s_:.2f} |")
    lines += [
        "",
        "A 10 MB input to `OpticalMemory.add` is refused by its character count before "
        "anything is tokenized or laid out: extra peak RSS over the process before the "
        "call, and the time to the `InputError`.",
        "",
        "| input | extra peak RSS MB | seconds |",
        "|---|---:|---:|",
    ]
    for label, mb, s_ in inputs:
        lines.append(f"| {label} | {mb} | **{s_:.3f}** |")
    lines += [
        "",
        "## CLI inputs (hypothesis through click's runner)",
        "",
        f"tests/test_cli_property.py with {args.cli_examples} examples per property: "
        f"{cli_tried} generated command lines and JSONL inputs run, all with exit code 0, 1 "
        f"or 2 and no traceback in the output in {cli_secs:.0f} s ({cli_summary}).",
        "",
        "## Hypothesis properties",
        "",
        f"`max_examples={args.examples}`, `deadline=None`; passing examples as reported "
        f"by `--hypothesis-show-statistics` ({secs:.0f} s; {summary}).",
        "",
        "| property | examples |",
        "|---|---:|",
    ]
    for test_id in sorted(counts):
        lines.append(f"| `{test_id}` | {counts[test_id]} |")
    lines.append("")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
