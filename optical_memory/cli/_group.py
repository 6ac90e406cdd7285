"""The root click group; command modules attach their commands to it."""
from __future__ import annotations

import logging

import click

from optical_memory import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="optical-memory")
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
def main(verbose: int) -> None:
    """optical-memory: agent memory kept as page images (~10x fewer context tokens)."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def user_errors(fn):
    """Turn this package's typed errors into clean CLI messages (no traceback)."""
    import functools

    from optical_memory.errors import OpticalMemoryError

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except OpticalMemoryError as e:
            raise click.ClickException(f"{type(e).__name__}: {e}") from e

    return wrapper


def read_text_arg(path: str) -> str:
    """Read FILE (or stdin for '-') as UTF-8 text; clear errors for the rest."""
    import sys
    from pathlib import Path

    if path == "-":
        data = sys.stdin.buffer.read()
        name = "<stdin>"
    else:
        p = Path(path)
        if not p.exists():
            raise click.ClickException(f"no such file: {path}")
        if p.is_dir():
            raise click.ClickException(f"{path} is a directory, not a text file")
        try:
            data = p.read_bytes()
        except OSError as e:
            raise click.ClickException(f"cannot read {path}: {e.strerror}") from e
        name = path
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise click.ClickException(
            f"{name} is not UTF-8 text (bad byte at offset {e.start}); "
            "binary files cannot be rendered"
        ) from e
