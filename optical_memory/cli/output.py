"""How the CLI prints: tables, progress bars and output folders.

* Tables are rich tables on a terminal; when stdout is not a terminal (a
  pipe, a file) they are plain: columns separated by two spaces, no box
  drawing, no colour, the title and caption as ``#`` lines.
* Progress bars (rich, the one progress library) go to stderr, so ``--json``
  on stdout stays clean.
* An output folder (``--out``) must be new or empty unless ``--force``; with
  ``--force`` the page images an earlier run left there are removed first, so
  the folder never mixes two runs' pages.
"""
from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

#: Files an earlier run wrote into an output folder (removed by ``--force``).
PAGE_GLOB = "page-*.png"


def stdout_is_terminal() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def console(stderr: bool = False) -> Any:
    """A rich console (plain text when its stream is not a terminal)."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def print_table(columns: Sequence[str], rows: Sequence[Sequence[str]], *, title: str | None = None,
                caption: str | None = None, right: Sequence[str] = ()) -> None:
    """Print a table: rich on a terminal, plain (aligned, no box) otherwise.
    ``right``: the columns aligned to the right."""
    if not stdout_is_terminal():
        click.echo(plain_table(columns, rows, title=title, caption=caption, right=right))
        return
    from rich.table import Table

    table = Table(title=title, caption=caption)
    for col in columns:
        table.add_column(col, justify="right" if col in right else "left", overflow="fold")
    for row in rows:
        table.add_row(*row)
    console().print(table)


def plain_table(columns: Sequence[str], rows: Sequence[Sequence[str]], *,
                title: str | None = None, caption: str | None = None,
                right: Sequence[str] = ()) -> str:
    """The table as plain text: a header line, one line per row, columns
    padded and separated by two spaces (the last column not padded)."""
    cells = [[str(c) for c in columns], *[[" ".join(str(c).split("\n")) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = [f"# {title}"] if title else []
    for r in cells:
        parts = [c.rjust(w) if columns[i] in right else c.ljust(w)
                 for i, (c, w) in enumerate(zip(r, widths))]
        if columns[-1] not in right:
            parts[-1] = r[-1]
        lines.append("  ".join(parts).rstrip())
    if caption:
        lines.append(f"# {caption}")
    return "\n".join(lines)


class _Bar:
    def __init__(self, progress: Any, task: Any) -> None:
        self._progress, self._task = progress, task

    def update(self, n: int) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, n)


@contextmanager
def progress(label: str, total: int) -> Iterator[_Bar]:
    """A progress bar on stderr (nothing for a single step)."""
    if total <= 1:
        yield _Bar(None, None)
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), console=console(stderr=True),
                  transient=True) as bar:
        yield _Bar(bar, bar.add_task(label, total=total))


def out_folder(out: str | Path, force: bool) -> Path:
    """``out`` as an output folder (created owner-only): a folder holding
    anything already is refused unless ``force``, which removes the page
    images (``page-*.png``) an earlier run left there."""
    from optical_memory.cli.files import private_dir

    path = Path(out)
    if path.exists() and not path.is_dir():
        raise click.ClickException(f"--out {out}: not a folder")
    if path.is_dir() and any(path.iterdir()):
        if not force:
            raise click.ClickException(
                f"--out {out} is not empty; pass --force to reuse it (its old page "
                f"images, {PAGE_GLOB}, are removed first) or name a new folder")
        for old in path.glob(PAGE_GLOB):
            if old.is_file() or old.is_symlink():
                old.unlink()
    return private_dir(path)


__all__ = ["PAGE_GLOB", "console", "out_folder", "plain_table", "print_table", "progress",
           "stdout_is_terminal"]
