"""Whose memory a row belongs to: :class:`Scope`, and the keyword form every
public call takes (``user_id`` / ``agent_id`` / ``session_id``).

Rule: a write stores exactly the scope it is given; a read with
``Scope(user_id=u)`` sees all of ``u``'s rows, and an ``agent_id`` /
``session_id`` set on the read narrows it to rows stored with exactly that
value. No read or write ever crosses ``user_id``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

from optical_memory.errors import InputError

#: The user a call without ``user_id`` reads and writes.
DEFAULT_USER = "default"
#: Longest id accepted for a user, agent or session.
MAX_ID_CHARS = 256


def check_text(name: str, value: object, *, optional: bool = True) -> None:
    """:class:`InputError` unless ``value`` is a NUL-free, valid-Unicode
    string (or ``None`` when ``optional``)."""
    if value is None and optional:
        return
    if not isinstance(value, str):
        raise InputError(f"{name} must be a string (got {type(value).__name__})")
    if "\x00" in value:
        raise InputError(f"{name} contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(f"{name} is not valid Unicode ({exc.reason} at {exc.start})") from None


def check_id(name: str, value: object) -> None:
    """A non-empty, NUL-free, valid-Unicode string of at most
    :data:`MAX_ID_CHARS` characters."""
    check_text(name, value, optional=False)
    assert isinstance(value, str)
    if not value.strip():
        raise InputError(f"{name} must be a non-empty string (got {value!r})")
    if len(value) > MAX_ID_CHARS:
        raise InputError(f"{name} is longer than {MAX_ID_CHARS} characters (got {len(value)})")


class ScopeKwargs(TypedDict):
    """The scope keywords of the :class:`~optical_memory.OpticalMemory` calls."""

    user_id: str
    agent_id: str | None
    session_id: str | None


@dataclass(frozen=True)
class Scope:
    """Who a row belongs to. ``user_id`` is required; the others narrow."""

    user_id: str = DEFAULT_USER
    agent_id: str | None = None
    session_id: str | None = None

    def __post_init__(self) -> None:
        check_id("scope.user_id", self.user_id)
        if self.agent_id is not None:
            check_id("scope.agent_id", self.agent_id)
        if self.session_id is not None:
            check_id("scope.session_id", self.session_id)

    def sees(self, other: Scope) -> bool:
        """True when a read under ``self`` sees a row stored under ``other``."""
        return (
            self.user_id == other.user_id
            and (self.agent_id is None or self.agent_id == other.agent_id)
            and (self.session_id is None or self.session_id == other.session_id)
        )

    def as_kwargs(self) -> ScopeKwargs:
        """The ``user_id`` / ``agent_id`` / ``session_id`` keywords of the
        :class:`~optical_memory.OpticalMemory` calls."""
        return {"user_id": self.user_id, "agent_id": self.agent_id,
                "session_id": self.session_id}


__all__ = ["DEFAULT_USER", "MAX_ID_CHARS", "Scope", "check_id", "check_text"]
