"""Browsing commands: ``list`` (turns, items or pages of a scope, a page at a time),
``show ID`` (one item or page), ``export PAGE_ID`` (a page's PNG at a tier).

Read-only: none of them creates a store. Ids may be given in full or as a
unique prefix (at least 4 characters), as in git.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from optical_memory.cli._group import main
from optical_memory.cli.common import (
    describe_scope,
    emit_json,
    open_memory,
    resolve_id,
    scope_kwargs,
    scope_options,
)
from optical_memory.cli.output import print_table

#: Characters of an item's text shown in a ``list`` row.
PREVIEW_CHARS = 60
#: Items read per ``get_all`` call by ``list items``.
LIST_BATCH = 1000


def _preview(text: str | None, limit: int = PREVIEW_CHARS) -> str:
    if text is None:
        return "(text not kept)"
    one = " ".join(text.split())
    return one if len(one) <= limit else one[: limit - 1] + "…"


def _item_dict(rec: Any, *, text: bool = True) -> dict[str, Any]:
    out = {"id": rec.id, "kind": rec.kind, "role": rec.role, "name": rec.name,
           "time": rec.time, "seq": rec.seq, "text_tokens": rec.text_tokens,
           "tool_call_ids": list(rec.tool_call_ids), "created_at": rec.created_at,
           "scope": rec.scope.as_kwargs()}
    if text:
        out["text"] = rec.text
    return out


def _page_dict(rec: Any, *, text: bool = True) -> dict[str, Any]:
    out = {"id": rec.id, "tier": rec.tier, "width": rec.width, "height": rec.height,
           "font_size": rec.font_size, "seq": rec.seq, "item_ids": list(rec.item_ids),
           "missing_glyphs": dict(rec.missing_glyphs), "created_at": rec.created_at,
           "scope": rec.scope.as_kwargs()}
    if text:
        out["text"] = rec.text
    return out


def _all_items(mem: Any, scope: Any) -> list[Any]:
    """Every item under the scope (turns, documents, texts), oldest first."""
    out: list[Any] = []
    cursor = None
    while True:
        page = mem.get_all(limit=LIST_BATCH, cursor=cursor, **scope)
        out += page.items
        cursor = page.next_cursor
        if cursor is None:
            return out


@main.command("list")
@click.argument("what", type=click.Choice(["turns", "items", "pages"]), default="turns")
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True,
              help="Rows per page of output.")
@click.option("--offset", type=click.IntRange(0), default=0, show_default=True,
              help="Rows to skip (the next page: --offset <offset + limit>).")
@click.option("--newest-first", is_flag=True, help="Newest first (default: oldest first).")
@scope_options
@click.option("--json", "as_json", is_flag=True,
              help="Print {total, offset, limit, rows} as JSON.")
def list_cmd(what, limit, offset, newest_first, store, user_id, agent_id, session_id, as_json):
    """List the turns (default), the items (turns, documents and texts, e.g.
    from `add FILE`) or the pages under the scope, with full ids."""
    scope = scope_kwargs(user_id, agent_id, session_id)
    with open_memory(store) as mem:
        recs: list[Any] = (mem.list_turns(**scope) if what == "turns"
                           else _all_items(mem, scope) if what == "items"
                           else mem.list_pages(**scope))
    if newest_first:
        recs.reverse()
    total, shown = len(recs), recs[offset: offset + limit]
    if as_json:
        rows = [_item_dict(r) if what == "turns" else r.to_dict() if what == "items"
                else _page_dict(r, text=False) for r in shown]
        emit_json({"what": what, "total": total, "offset": offset, "limit": limit,
                   "rows": rows})
        return
    if not shown:
        click.echo(f"no {what} under {describe_scope(scope)}"
                   + (f" past --offset {offset} (there are {total})" if total else ""))
        return
    if what == "turns":
        print_table(("id", "role", "tokens", "created", "text"),
                    [(r.id, r.role or r.kind, str(r.text_tokens), r.created_at[:19],
                      _preview(r.text)) for r in shown], right=("tokens",),
                    title=f"turns {offset + 1}–{offset + len(shown)} of {total}")
    elif what == "items":
        print_table(("id", "kind", "tokens", "pages", "created", "text"),
                    [(r.id, r.role or r.kind,
                      str(r.text_tokens), str(len(r.page_ids)), r.created_at[:19],
                      _preview(f"[{r.name}] {r.text}" if r.name and r.kind != "turn"
                               else r.text)) for r in shown], right=("tokens", "pages"),
                    title=f"items {offset + 1}–{offset + len(shown)} of {total}")
    else:
        print_table(("id", "tier", "size", "items", "created"),
                    [(r.id, r.tier, f"{r.width}x{r.height}", str(len(r.item_ids)),
                      r.created_at[:19]) for r in shown], right=("items",),
                    title=f"pages {offset + 1}–{offset + len(shown)} of {total}")
    if offset + len(shown) < total:
        click.echo(f"more: --offset {offset + len(shown)}", err=True)


def _item_extra(mem: Any, item_id: str, scope: Any) -> dict[str, Any]:
    """An item's metadata and page ids (``{}`` if it was deleted meanwhile)."""
    from optical_memory import NotFoundError

    try:
        item = mem.get(item_id, **scope)
    except NotFoundError:
        return {}
    return {"metadata": item.metadata, "updated_at": item.updated_at,
            "page_ids": list(item.page_ids)}


@main.command()
@click.argument("ident", metavar="ID")
@scope_options
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON.")
def show(ident, store, user_id, agent_id, session_id, as_json):
    """Show one item or page: ID in full, or a unique prefix of it."""
    scope = scope_kwargs(user_id, agent_id, session_id)
    with open_memory(store) as mem:
        kind, full = resolve_id(mem, ident, scope)
        rec = mem.get_item(full, **scope) if kind == "item" else mem.get_page(full, **scope)
        # an item's metadata and the pages it lies on (to export or decode them)
        extra = _item_extra(mem, full, scope) if kind == "item" and rec is not None else {}
    if rec is None:  # deleted meanwhile
        raise click.ClickException(f"no {kind} {full!r} under {describe_scope(scope)}")
    data = {**_item_dict(rec), **extra} if kind == "item" else _page_dict(rec)
    if as_json:
        emit_json({"record": kind, **data})
        return
    text = data.pop("text")
    for key, value in data.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items() if v is not None) or "-"
        elif isinstance(value, list):
            value = ", ".join(map(str, value)) or "-"
        click.echo(f"{key}: {'-' if value is None else value}")
    click.echo("")
    click.echo(text if text is not None else "(text not kept: `optical-memory decode-page` "
                                             "reads the page)")


@main.command()
@click.argument("page_id")
@click.option("--tier", default=None, help="Tier of the image (default: the page's current).")
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False,
              allow_dash=True), help="PNG file to write, or - for stdout.")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@scope_options
def export(page_id, tier, output, force, store, user_id, agent_id, session_id):
    """Write page PAGE_ID (full id or unique prefix) as a PNG at --tier."""
    from optical_memory.cli.files import write_private

    scope = scope_kwargs(user_id, agent_id, session_id)
    if output != "-" and Path(output).exists() and not force:
        raise click.ClickException(f"{output} exists; pass --force to overwrite it")
    with open_memory(store) as mem:
        _, full = resolve_id(mem, page_id, scope, kinds=("page",))
        png = mem.tier_png(full, tier, **scope)
    if output == "-":
        sys.stdout.buffer.write(png)
        sys.stdout.buffer.flush()
        return
    try:
        write_private(output, png)
    except OSError as exc:
        raise click.ClickException(f"cannot write {output}: {exc.strerror or exc}") from exc
    click.echo(f"wrote page {full} ({tier or 'current tier'}, {len(png)} bytes) to {output}",
               err=True)


__all__ = ["export", "list_cmd", "show"]
