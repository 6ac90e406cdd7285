"""The root click group; command modules attach their commands to it.

Errors are handled here, once, for every command (:class:`ErrorHandlingGroup`):

* click's own errors (usage: exit 2; :class:`click.ClickException`: exit 1)
  are click's to print;
* this package's typed errors (:class:`~optical_memory.errors.OpticalMemoryError`)
  print ``Error: <Type>: <message>`` and exit 1; the API parameters the
  error names (its ``params``) are shown as the command's flags;
* anything else (a bug, or the system: ``RecursionError``, ``OverflowError``,
  ``OSError``, ``MemoryError``...) prints one line, ``error: <Type>: <message>``,
  and exits 1;
* ``KeyboardInterrupt`` exits 130.

No traceback is printed unless ``-v/--verbose`` was given.
"""
from __future__ import annotations

import errno
import logging
import re
import sys
import traceback

import click

from optical_memory import __version__

#: Longest error message printed (characters); the rest is cut.
MAX_MESSAGE_CHARS = 500
#: Exit status after Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130


def _cut(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` on one line, at most ``limit`` characters."""
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + "…"


def describe(exc: BaseException) -> str:
    """``<Type>: <message>`` on one line (the message cut to a sane length)."""
    try:
        message = str(exc)
    except Exception:
        message = ""
    name = type(exc).__name__
    message = _cut(message)
    return f"{name}: {message}" if message else name


def _as_flags(message: str, params: tuple[str, ...], group: click.Group,
              ctx: click.Context) -> str:
    """``message`` with the API parameters it names (``params``, e.g.
    ``keep_last``) spelled as the invoked command's flags (``--keep-last``);
    a parameter the command has no flag for stays as it is."""
    cmd = group.get_command(ctx, ctx.invoked_subcommand) if ctx.invoked_subcommand else None
    flags = {p.name: max(p.opts, key=len) for p in (cmd.params if cmd else ())
             if isinstance(p, click.Option) and p.name}
    for name in params:
        if name in flags:
            message = re.sub(rf"(?<![\w-]){re.escape(name)}(?![\w-])", flags[name], message)
    return message


def _verbosity(ctx: click.Context) -> int:
    try:
        return int(ctx.find_root().params.get("verbose") or 0)
    except Exception:
        return 0


def _print_traceback(exc: BaseException) -> None:
    try:
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    except Exception:
        text = f"(traceback unavailable) {describe(exc)}\n"
    click.echo(text.rstrip("\n"), err=True)


class ErrorHandlingGroup(click.Group):
    """A group whose :meth:`invoke` turns every error of every (sub)command
    into a clean message and exit status (see the module docstring)."""

    def invoke(self, ctx: click.Context):
        from optical_memory.errors import OpticalMemoryError

        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            if _verbosity(ctx):
                _print_traceback(sys.exc_info()[1])  # type: ignore[arg-type]
            click.echo("\ninterrupted", err=True)
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
        except OpticalMemoryError as exc:
            if _verbosity(ctx):
                _print_traceback(exc)
            raise click.ClickException(_as_flags(describe(exc), exc.params, self, ctx)) from exc
        except Exception as exc:
            if isinstance(exc, OSError) and exc.errno == errno.EPIPE:
                raise  # click quiets a closed stdout (``| head``) itself
            if _verbosity(ctx):
                _print_traceback(exc)
                click.echo(f"error: {describe(exc)}", err=True)
            else:
                click.echo(f"error: {describe(exc)} (run with -v for the traceback)", err=True)
            raise click.exceptions.Exit(1) from None


@click.group(cls=ErrorHandlingGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="optical-memory")
@click.option("-v", "--verbose", count=True,
              help="More logging (-v info, -vv debug); -v also prints tracebacks of errors.")
def main(verbose: int) -> None:
    """optical-memory: agent memory kept as page images (~10x fewer context tokens)."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def read_text_arg(path: str) -> str:
    """Read FILE (or stdin for '-') as UTF-8 text; clear errors for the rest."""
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
        # a byte-order mark (Windows editors write one) is not text
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        raise click.ClickException(
            f"{name} is not UTF-8 text (bad byte at offset {e.start}); "
            "binary files cannot be rendered"
        ) from e
