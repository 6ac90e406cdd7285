"""Commands that change stored items: ``delete`` and ``update``.

Ids may be given in full or as a unique prefix (at least 4 characters), as
in git; an id that matches no item (or several) is an error and nothing is
changed. Neither command creates a store.
"""
from __future__ import annotations

import click

from optical_memory.cli._group import main, read_text_arg
from optical_memory.cli.common import (
    describe_scope,
    emit_json,
    metadata_option,
    model_options,
    open_memory,
    resolve_id,
    scope_kwargs,
    scope_options,
)


@main.command()
@click.argument("item_ids", nargs=-1)
@click.option("--all", "delete_all", is_flag=True,
              help="Delete every item under the scope (needs --yes).")
@click.option("--yes", is_flag=True, help="Confirm --all.")
@click.option("--no-repage", is_flag=True,
              help="Leave pages that also hold other items as they are (they keep showing "
                   "the deleted text); by default they are laid out again without it.")
@scope_options
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def delete(item_ids, delete_all, yes, no_repage, store, user_id, agent_id, session_id, as_json):
    """Delete ITEM_IDS (full ids or unique prefixes, from `add --json`,
    `search` or `list`), or --all under the scope.

    Exits 1, deleting nothing, when an id matches no item (or several).
    """
    if bool(item_ids) == delete_all:
        raise click.UsageError("give ITEM_IDS, or --all (not both, not neither)")
    scope = scope_kwargs(user_id, agent_id, session_id)
    if delete_all and not yes:
        raise click.UsageError(f"--all deletes every item of {describe_scope(scope)}; add --yes")
    with open_memory(store) as mem:
        ids = None if delete_all else list(dict.fromkeys(
            resolve_id(mem, given, scope, kinds=("item",))[1] for given in item_ids))
        d = mem.delete(item_ids=ids, repage=not no_repage, **scope)
    if as_json:
        emit_json({"items": d.items, "pages": d.pages, "partial_pages": list(d.partial_pages),
                    "repaged": list(d.repaged), "replaced": list(d.replaced)})
    else:
        click.echo(f"deleted {d.items} item(s) and {d.pages} page(s); "
                   f"{len(d.repaged)} page(s) re-rendered without the deleted text"
                   + (f"; {len(d.partial_pages)} page(s) still show it: "
                      f"{', '.join(d.partial_pages)}" if d.partial_pages else ""))
    if d.items == 0:
        raise click.ClickException(f"nothing deleted: no item under {describe_scope(scope)}")


@main.command()
@click.argument("item_id")
@click.argument("stdin", required=False, metavar="[-]")
@click.option("--text", default=None, help="The item's new text.")
@click.option("--file", "path", default=None, metavar="PATH", type=click.Path(dir_okay=False),
              help="Read the new text from this UTF-8 file.")
@click.option("--metadata", default=None, metavar="JSON", callback=metadata_option,
              help="A JSON object that replaces the item's metadata.")
@scope_options
@model_options
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def update(item_id, stdin, text, path, metadata, store, user_id, agent_id, session_id, target,
           decoder, tokenizer, as_json):
    """Replace the text of item ITEM_ID (full id or unique prefix) with --text,
    --file PATH or - (stdin), and/or its metadata with --metadata.

    A turn keeps its tool calls; the pages showing the item are laid out
    again. Exits 1, changing nothing, when the id matches no item (or several).
    """
    if stdin is not None and stdin != "-":
        raise click.UsageError(f"unexpected argument {stdin!r}: the new text comes from "
                               "--text TEXT, --file PATH or - (stdin)")
    sources = [s for s in (text, path, stdin) if s is not None]
    if len(sources) > 1:
        raise click.UsageError("give the new text once: --text, --file or - (stdin)")
    if not sources and metadata is None:
        raise click.UsageError("nothing to update: give --text, --file, - (stdin) "
                               "and/or --metadata")
    new_text = text if text is not None or not sources else read_text_arg(sources[0])
    scope = scope_kwargs(user_id, agent_id, session_id)
    with open_memory(store, target, decoder, tokenizer) as mem:
        _, item_id = resolve_id(mem, item_id, scope, kinds=("item",))
        up = mem.update(item_id, new_text, metadata=metadata, **scope)
    for warning in up.warnings:
        click.echo(f"warning: {warning}", err=True)
    if as_json:
        emit_json(up.to_dict())
        return
    if new_text is None:
        click.echo(f"updated the metadata of item {item_id}")
        return
    click.echo(f"updated item {item_id}"
               + (" and its metadata" if metadata is not None else "")
               + f": {up.text_tokens} text tokens; {len(up.replaced)} page(s) laid out again "
               f"onto {len(up.repaged)}"
               + (f"; {len(up.partial_pages)} page(s) still show the old text: "
                  f"{', '.join(up.partial_pages)}" if up.partial_pages else ""))
