"""Reliability figures at a larger size than CI: SIGKILLs survived, concurrent
writers × operations, hypothesis examples per property, on SQLite and (when
``OPTICAL_MEMORY_TEST_PG_URL`` is set) PostgreSQL.

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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--writers", type=int, default=6)
    ap.add_argument("--ops", type=int, default=40)
    ap.add_argument("--examples", type=int, default=200)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "reliability.md")
    args = ap.parse_args()

    backends: list[tuple[str, str]] = []
    tmp = tempfile.mkdtemp(prefix="om-reliability-")
    backends.append(("sqlite", str(Path(tmp) / "memory.db")))
    if os.environ.get(PG_ENV):
        backends.append(("postgresql", os.environ[PG_ENV]))

    rows_crash, rows_conc = [], []
    for name, url in backends:
        user = f"bench{uuid.uuid4().hex[:8]}"
        crash = rw.run_crash(url, user, kills=args.kills, seed=3)
        rows_crash.append((name, crash))
        conc = rw.run_concurrency(url, user + "c", writers=args.writers, ops=args.ops, seed=9)
        rows_conc.append((name, conc))

    counts, secs, summary = hypothesis_counts(args.examples, pg=len(backends) > 1)

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
