"""User metadata on items: what ``add(..., metadata=...)`` may store, what a
filter may ask, and the SQL that filters on it, once for both backends.

Metadata is a JSON object stored in the item's ``meta`` column under the key
:data:`META_KEY` (``ItemRecord.metadata`` reads it back). A filter is a dict
``{key: value}``: an item matches when its metadata has every key with an
equal value (AND). Values compared are JSON scalars: strings, booleans,
numbers (``1`` equals ``1.0``; ``True`` is not ``1``), and ``None`` (matches
an explicit ``null``, not a missing key). Both backends give the same
answers: SQLite compares ``json_type`` and ``json_extract``, PostgreSQL
``jsonb`` values (``#>``), so types never mix.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from optical_memory.errors import InputError
from optical_memory.store.sql_dialect import Dialect, Statement

#: Key of the user's metadata in an item's ``meta``.
META_KEY = "metadata"
#: Most keys in one item's metadata, and characters of its JSON.
MAX_METADATA_KEYS = 64
MAX_METADATA_CHARS = 16_384
#: Most keys one filter may name.
MAX_FILTER_KEYS = 16
#: Integers a filter may compare exactly on both backends (JSON numbers as doubles).
MAX_FILTER_INT = 2**53
_KEY = re.compile(r'[^"\\\x00-\x1f\x7f]{1,64}')
_SCALARS = (str, bool, int, float, type(None))


def check_key(where: str, key: object) -> str:
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise InputError(f"{where}: metadata keys are strings of 1-64 characters without "
                         f'quotes, backslashes or control characters (got {key!r})')
    return key


def check_metadata(value: object, where: str = "metadata") -> dict[str, Any]:
    """``value`` as a plain JSON object fit to store (:class:`InputError` else):
    string keys (:func:`check_key`), JSON values (lists and objects allowed,
    though filters compare scalars only), at most :data:`MAX_METADATA_KEYS`
    keys and :data:`MAX_METADATA_CHARS` characters of JSON."""
    if not isinstance(value, Mapping):
        raise InputError(f"{where} must be a dict (got {type(value).__name__})")
    if len(value) > MAX_METADATA_KEYS:
        raise InputError(f"{where} has {len(value)} keys (limit {MAX_METADATA_KEYS})")
    for key in value:
        check_key(where, key)
    try:
        text = json.dumps(dict(value), ensure_ascii=False, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InputError(f"{where} must be JSON (strings, numbers, booleans, null, lists, "
                         f"dicts): {exc}") from None
    if len(text) > MAX_METADATA_CHARS:
        raise InputError(f"{where} is {len(text)} characters as JSON "
                         f"(limit {MAX_METADATA_CHARS})")
    out: dict[str, Any] = json.loads(text)
    return out


def check_filter(value: object, where: str = "metadata") -> dict[str, Any] | None:
    """A metadata filter checked (``None``: no filter)."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InputError(f"{where} filter must be a dict of key: value (got "
                         f"{type(value).__name__})")
    if len(value) > MAX_FILTER_KEYS:
        raise InputError(f"{where} filter names {len(value)} keys (limit {MAX_FILTER_KEYS})")
    out: dict[str, Any] = {}
    for key, v in value.items():
        check_key(f"{where} filter", key)
        if not isinstance(v, _SCALARS):
            raise InputError(f"{where} filter value for {key!r} must be a string, number, "
                             f"boolean or None (got {type(v).__name__}); filters compare "
                             "scalars for equality")
        if isinstance(v, float) and not math.isfinite(v):
            raise InputError(f"{where} filter value for {key!r} is not finite ({v!r})")
        if isinstance(v, int) and not isinstance(v, bool) and abs(v) > MAX_FILTER_INT:
            raise InputError(f"{where} filter value for {key!r} is beyond ±2**53 ({v}); "
                             "such integers cannot be compared exactly")
        out[key] = v
    return out


def metadata_from_json(text: str, *, as_filter: bool = False,
                       where: str = "metadata") -> dict[str, Any] | None:
    """Metadata given as JSON text (a command-line option): checked as
    stored metadata (:func:`check_metadata`) or, with ``as_filter``, as a
    filter (:func:`check_filter`); bad JSON raises :class:`InputError`."""
    try:
        value = json.loads(text)
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        raise InputError(f"{where} is not JSON: {exc}") from exc
    return check_filter(value, where) if as_filter else check_metadata(value, where)


def metadata_where(d: Dialect, filters: Mapping[str, Any], alias: str) -> Statement:
    """SQL condition (and parameters) for items of ``alias`` whose metadata
    matches every ``filters`` entry (already checked)."""
    clauses: list[str] = []
    params: list[Any] = []
    m, col = d.mark, f"{alias}.meta"
    for key, value in filters.items():
        if d.jsonb:
            clauses.append(f"({col}::jsonb #> {m}::text[]) = {m}::jsonb")
            params += [[META_KEY, key], json.dumps(value, ensure_ascii=False)]
            continue
        path = f'$.{META_KEY}."{key}"'
        if value is None or isinstance(value, bool):
            clauses.append(f"json_type({col}, {m}) = {m}")
            params += [path, "null" if value is None else ("true" if value else "false")]
        elif isinstance(value, str):
            clauses.append(f"(json_type({col}, {m}) = 'text' AND json_extract({col}, {m}) = {m})")
            params += [path, path, value]
        else:
            clauses.append(f"(json_type({col}, {m}) IN ('integer', 'real') AND "
                           f"json_extract({col}, {m}) = {m})")
            params += [path, path, value]
    return " AND ".join(clauses) or "1 = 1", params


__all__ = ["MAX_FILTER_KEYS", "MAX_METADATA_CHARS", "MAX_METADATA_KEYS", "META_KEY",
           "check_filter", "check_key", "check_metadata", "metadata_where"]
