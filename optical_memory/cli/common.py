"""What the memory commands share: scope and model options, opening the
memory (read-only commands never create a store), ids by unique prefix.

Everything goes through the public facade,
:class:`optical_memory.memory.OpticalMemory`; heavy modules (numpy, skia,
the store) are imported inside the functions, so ``--help`` stays fast.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from optical_memory.config import (
    DEFAULT_DECODER,
    DEFAULT_MIN_READBACK,
    DEFAULT_TARGET,
    DEFAULT_TOKENIZER,
)

if TYPE_CHECKING:  # pragma: no cover
    from optical_memory.memory import OpticalMemory
    from optical_memory.scope import ScopeKwargs

#: Shortest id prefix resolved (as git asks for at least 4 hex digits).
MIN_PREFIX = 4


def scope_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for opt in reversed((
        click.option("--store", "store", default=None, metavar="PATH|URL",
                     help="Store path or URL (default: memory.db in $OPTICAL_MEMORY_HOME)."),
        click.option("--user", "user_id", default="default", show_default=True,
                     help="user_id scope."),
        click.option("--agent", "agent_id", default=None, help="agent_id scope."),
        click.option("--session", "session_id", default=None, help="session_id scope."),
    )):
        fn = opt(fn)
    return fn


def model_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for opt in reversed((
        click.option("--target", default=DEFAULT_TARGET, show_default=True,
                     help="Vision target pages are sized and billed for "
                          "(see `optical-memory targets`)."),
        click.option("--decoder", default=DEFAULT_DECODER, show_default=True,
                     help="Read-back decoder."),
        click.option("--tokenizer", default=DEFAULT_TOKENIZER, show_default=True,
                     help="Text tokenizer for accounting."),
        click.option("--age-mode", type=click.Choice(["legible", "fade"]), default="legible",
                     show_default=True, expose_value=False, callback=_age_option,
                     help="legible: pages shrink only while they read back at least "
                          "--min-readback; fade: pages shrink with age regardless."),
        click.option("--min-readback", type=click.FloatRange(0, 1, min_open=True),
                     default=DEFAULT_MIN_READBACK, show_default=True, expose_value=False,
                     callback=_age_option, help="Legibility floor of --age-mode legible."),
        click.option("--verify", is_flag=True, expose_value=False, callback=_age_option,
                     help="Read every new page back at every tier as it is written (seconds "
                          "per page with tesseract) and age it by what it measured."),
    )):
        fn = opt(fn)
    return fn


def _age_option(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Collect the age options (not passed to the command) for :func:`open_memory`."""
    ctx.meta.setdefault("optical_memory.aging", {})[str(param.name)] = value
    return value


def sqlite_path(store: str | None) -> Path | None:
    """The SQLite file ``store`` names (as :func:`~optical_memory.store.open_store`
    reads it), or ``None`` for an in-memory store or a server URL."""
    if store is None:
        from optical_memory.store.paths import default_db_path

        return default_db_path()
    target = store.strip()
    if target.lower().startswith("sqlite://"):
        target = target[len("sqlite://"):]
    elif "://" in target:
        return None  # PostgreSQL, or a scheme open_store rejects with its own message
    if target in ("", ":memory:", "/:memory:"):
        return None
    return Path(target)


def check_store_exists(store: str | None) -> None:
    """A clean error naming the path when ``store`` is a SQLite file that does
    not exist: a read-only command must not create it (or its folders) for a
    mistyped ``--store``."""
    path = sqlite_path(store)
    if path is not None and not path.exists():
        where = "--store" if store is not None else "the default store, in $OPTICAL_MEMORY_HOME"
        raise click.ClickException(
            f"no memory store at {path} ({where}); nothing was created. Check the path, "
            "or store something first with `optical-memory add`.")


def open_memory(store: str | None, target: str = DEFAULT_TARGET,
                decoder: str = DEFAULT_DECODER, tokenizer: str = DEFAULT_TOKENIZER, *,
                create: bool = False, **kw: Any) -> OpticalMemory:
    """The memory at ``store``; unless ``create``, the store must exist."""
    if not create:
        check_store_exists(store)
    from optical_memory.memory import OpticalMemory

    ctx = click.get_current_context(silent=True)
    age = ctx.meta.get("optical_memory.aging") if ctx is not None else None
    if age and "aging" not in kw:
        from optical_memory.age import AgePolicy

        kw["aging"] = AgePolicy(mode=age.get("age_mode", "legible"),
                                min_readback=age.get("min_readback", DEFAULT_MIN_READBACK),
                                verify=bool(age.get("verify", False)))

    return OpticalMemory(store, target=target, decoder=decoder, tokenizer=tokenizer, **kw)


def scope_kwargs(user_id: str, agent_id: str | None, session_id: str | None) -> ScopeKwargs:
    from optical_memory.scope import Scope

    return Scope(user_id, agent_id, session_id).as_kwargs()


def describe_scope(scope: ScopeKwargs) -> str:
    return ", ".join(f"{k.removesuffix('_id')} {v!r}" for k, v in scope.items() if v is not None)


def metadata_option(ctx: click.Context, param: click.Parameter,
                    value: str | None) -> dict[str, Any] | None:
    """``--metadata`` as a checked JSON object: the stored metadata of ``add``
    and ``update``, or the equality filter of ``search`` (a bad value stores
    nothing)."""
    if value is None:
        return None
    from optical_memory.errors import InputError
    from optical_memory.store.metadata import metadata_from_json

    try:
        return metadata_from_json(value, as_filter=ctx.command.name not in ("add", "update"))
    except InputError as exc:
        raise click.BadParameter(str(exc)) from exc


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _item_ids(mem: OpticalMemory, scope: ScopeKwargs) -> list[str]:
    """Every item id visible under the scope: the turns, and the items that
    pages hold (documents and texts are stored straight onto pages)."""
    ids = dict.fromkeys(t.id for t in mem.list_turns(**scope))
    for page in mem.list_pages(**scope):
        ids.update(dict.fromkeys(page.item_ids))
    return list(ids)


def resolve_id(mem: OpticalMemory, given: str, scope: ScopeKwargs, *,
               kinds: tuple[str, ...] = ("item", "page")) -> tuple[str, str]:
    """``(kind, full id)`` for an id or a unique prefix of one (at least
    :data:`MIN_PREFIX` characters), like git: an error when nothing under the
    scope matches, or when several do (each named)."""
    given = given.strip()
    if "item" in kinds and mem.get_item(given, **scope) is not None:
        return "item", given
    if "page" in kinds and any(p.id == given for p in mem.list_pages(**scope)):
        return "page", given
    what = " or ".join(kinds)
    where = describe_scope(scope)
    if len(given) < MIN_PREFIX:
        raise click.ClickException(
            f"no {what} {given!r} under {where} (an id prefix needs at least "
            f"{MIN_PREFIX} characters)")
    found: list[tuple[str, str]] = []
    if "item" in kinds:
        found += [("item", i) for i in _item_ids(mem, scope) if i.startswith(given)]
    if "page" in kinds:
        found += [("page", p.id) for p in mem.list_pages(**scope) if p.id.startswith(given)]
    if not found:
        hint = ""
        if "item" not in kinds and any(i.startswith(given) for i in _item_ids(mem, scope)):
            hint = (f"; {given!r} is an item, not a page (`optical-memory show {given}` "
                    "lists the pages it lies on)")
        raise click.ClickException(f"no {what} matches {given!r} under {where}{hint}")
    if len(found) > 1:
        listed = ", ".join(f"{k} {i}" for k, i in found[:8])
        more = f" and {len(found) - 8} more" if len(found) > 8 else ""
        raise click.ClickException(
            f"{given!r} is ambiguous under {where}: it starts {listed}{more}; "
            "give more characters")
    return found[0]


__all__ = ["MIN_PREFIX", "check_store_exists", "describe_scope", "emit_json", "model_options",
           "open_memory", "resolve_id", "scope_kwargs", "scope_options", "sqlite_path"]
