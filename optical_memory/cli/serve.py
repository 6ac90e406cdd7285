"""``optical-memory serve``: the memory inspector, a local web page over a store
(:mod:`optical_memory.inspect`)."""
from __future__ import annotations

import click

from optical_memory.cli._group import main
from optical_memory.config import DEFAULT_DECODER, DEFAULT_TARGET, DEFAULT_TOKENIZER


@main.command()
@click.option("--store", "store", default=None, metavar="PATH|URL",
              help="Store path or URL (default: memory.db in $OPTICAL_MEMORY_HOME).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; a non-loopback one needs --allow-remote.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535),
              help="Port (0: any free port).")
@click.option("--allow-remote", is_flag=True,
              help="Allow a non-loopback --host. The inspector has NO authentication: "
                   "anyone who can reach the port sees everything stored.")
@click.option("--allow-writes", is_flag=True,
              help="Allow deleting items (with a confirmation step); read-only otherwise.")
@click.option("--niah", "niah_dirs", multiple=True,
              type=click.Path(exists=True, file_okay=False),
              help="A folder of NIAH results to show (repeatable).")
@click.option("--target", default=DEFAULT_TARGET, show_default=True,
              help="Vision target the memory sizes and bills pages for.")
@click.option("--decoder", default=DEFAULT_DECODER, show_default=True,
              help="Read-back decoder.")
@click.option("--tokenizer", default=DEFAULT_TOKENIZER, show_default=True,
              help="Text tokenizer for accounting.")
def serve(store, host, port, allow_remote, allow_writes, niah_dirs, target, decoder, tokenizer):
    """Start the memory inspector: a local web page showing the pages by tier,
    what each page holds, search hits on their page and the context with its cost."""
    try:
        import uvicorn

        from optical_memory.inspect import check_host, create_app
    except ImportError as exc:
        raise click.ClickException(
            f"the inspector needs the 'inspect' extra ({exc.name} is missing): "
            "pip install 'optical-memory[inspect]'") from None
    from optical_memory.cli.common import open_memory

    check_host(host, allow_remote=allow_remote)
    if allow_remote:
        click.echo("WARNING: --allow-remote: the inspector has no authentication; anyone who "
                   f"can reach {host}:{port} can read everything in this store"
                   + (" and delete from it" if allow_writes else "") + ".", err=True)
    if port == 0:  # pick the free port here, so the address printed is the real one
        import socket

        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
    # an inspector never creates a store (a mistyped --store path fails here)
    mem = open_memory(store, target=target, decoder=decoder, tokenizer=tokenizer)
    try:
        app = create_app(mem, allow_writes=allow_writes, niah_dirs=niah_dirs, host=host,
                         allow_remote=allow_remote)
        shown = f"[{host}]" if ":" in host else host
        click.echo(f"optical-memory inspector on http://{shown}:{port}/ "
                   f"({'writes allowed' if allow_writes else 'read-only'}; Ctrl-C stops)",
                   err=True)
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        mem.close()
