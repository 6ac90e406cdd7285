"""The ``optical-memory-mcp`` command: a thin click layer over :func:`create_server`.

stdout belongs to the stdio transport, so nothing here prints to it: logs and
errors go to stderr. Only click is imported up front: ``--help`` and usage
errors answer without loading the library, the tokenizer or the MCP SDK
(``benchmarks/mcp_startup.py`` times it).
"""
from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from optical_memory_mcp.config import ServerConfig
    from optical_memory_mcp.server import LogLevel

#: Environment variables each option falls back to (as in ``config.ENV_PREFIX``).
ENV_PREFIX = "OPTICAL_MEMORY_MCP_"
LOOPBACK = "127.0.0.1"
#: The library's defaults, written out so ``--help`` needs no import of it
#: (tests/test_mcp_cli.py checks they match).
DEFAULT_TARGET = "deepseek-ocr:base"
DEFAULT_TOKENIZER = "o200k_base"
DEFAULT_DECODER = "native"
DEFAULT_KEEP_LAST = 8


def _env(name: str) -> str:
    return ENV_PREFIX + name


@click.command(name="optical-memory-mcp", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--store", metavar="PATH|URL", envvar=_env("STORE"), default=None,
              help="Store: a SQLite path, or a sqlite:// or postgresql:// URL (default: "
                   f"memory.db in $OPTICAL_MEMORY_HOME). Env: {_env('STORE')}.")
@click.option("--user", "user_id", envvar=_env("USER"), default="default", show_default=True,
              help=f"The one user this server serves; tools cannot change it. Env: {_env('USER')}.")
@click.option("--agent", "agent_id", envvar=_env("AGENT"), default=None,
              help=f"Narrow the scope to one agent. Env: {_env('AGENT')}.")
@click.option("--session", "session_id", envvar=_env("SESSION"), default=None,
              help=f"Narrow the scope to one session. Env: {_env('SESSION')}.")
@click.option("--target", envvar=_env("TARGET"), default=DEFAULT_TARGET, show_default=True,
              help="Vision model pages are sized and billed for (`optical-memory targets`).")
@click.option("--decoder", envvar=_env("DECODER"), default=DEFAULT_DECODER, show_default=True,
              help="Read-back decoder for memory_decode.")
@click.option("--tokenizer", envvar=_env("TOKENIZER"), default=DEFAULT_TOKENIZER,
              show_default=True, help="Text tokenizer for the accounting.")
@click.option("--keep-last", type=click.IntRange(min=0), default=DEFAULT_KEEP_LAST,
              show_default=True,
              envvar=_env("KEEP_LAST"), help="Recent turns kept as text.")
@click.option("--http", is_flag=True, help="Serve streamable HTTP instead of stdio.")
@click.option("--host", default=LOOPBACK, show_default=True,
              help="Address to bind with --http (loopback unless told otherwise).")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True,
              help="Port for --http.")
@click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]),
              default="WARNING", show_default=True, help="Log level (logs go to stderr).")
@click.version_option(package_name="optical-memory-mcp")
def main(store: str | None, user_id: str, agent_id: str | None, session_id: str | None,
         target: str, decoder: str, tokenizer: str, keep_last: int, http: bool, host: str,
         port: int, log_level: LogLevel) -> None:
    """Serve an optical memory (old context kept as page images) over MCP.

    stdio by default (for Claude Desktop and other local clients); --http serves
    streamable HTTP at http://HOST:PORT/mcp. Every tool works in the scope given
    here (--user / --agent / --session): a client cannot reach another user's data.
    """
    logging.basicConfig(level=log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from optical_memory.errors import OpticalMemoryError
    from optical_memory_mcp.config import ServerConfig

    try:
        config = ServerConfig(store=store, user_id=user_id, agent_id=agent_id,
                              session_id=session_id, target=target, decoder=decoder,
                              tokenizer=tokenizer, keep_last=keep_last)
        _check_names(config)
    except OpticalMemoryError as exc:
        raise click.UsageError(str(exc)) from exc
    if not http and host != LOOPBACK:
        raise click.UsageError("--host only applies with --http")

    from optical_memory_mcp.server import create_server

    server = create_server(config, log_level=log_level)
    try:
        if http:
            if host != LOOPBACK:
                logging.getLogger(__name__).warning(
                    "serving on %s: anyone who can reach it can read and change user %r's memory",
                    host, config.user_id)
            server.run("streamable-http", host=host, port=port)
        else:
            server.run()
    except KeyboardInterrupt:
        raise click.exceptions.Exit(130) from None
    except OSError as exc:  # e.g. the port is taken: a message, not a traceback
        logging.getLogger(__name__).debug("server stopped", exc_info=exc)
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc


def _check_names(config: ServerConfig) -> None:
    """Fail at start, not on the first tool call, on an unknown target (cheap to
    check; the tokenizer and decoder load with the memory, on first use)."""
    from optical_memory.tokens import get_target

    get_target(config.target)


__all__ = ["main"]
