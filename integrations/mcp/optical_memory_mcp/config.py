"""Server configuration: where the memory lives and whose memory it is.

The scope (``user_id`` / ``agent_id`` / ``session_id``) is fixed here, when the
server process starts, and never taken from a tool call: a client can only
reach the one user's memories this server was started for.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from optical_memory.config import (
    DEFAULT_DECODER,
    DEFAULT_KEEP_LAST,
    DEFAULT_TARGET,
    DEFAULT_TOKENIZER,
    check_count,
)
from optical_memory.errors import InputError
from optical_memory.scope import Scope, ScopeKwargs

#: Name the server reports to clients (``serverInfo.name``).
SERVER_NAME = "optical-memory"
#: Environment variables each setting falls back to (``optical-memory-mcp``'s
#: options, and :meth:`ServerConfig.from_env`).
ENV_PREFIX = "OPTICAL_MEMORY_MCP_"


@dataclass(frozen=True)
class ServerConfig:
    """Everything the server needs to open its memory.

    store:     SQLite path, ``sqlite://`` or ``postgresql://`` URL; ``None`` = the library's
               default file (``memory.db`` in ``$OPTICAL_MEMORY_HOME``).
    user_id:   the one user this process serves (writes and reads).
    agent_id / session_id: optional narrower scope; writes are stored under
               exactly this scope, reads see only rows stored with these values.
    target:    vision model pages are sized and billed for (``--target``);
               ``memory_context`` may re-bill for another.
    decoder / tokenizer: read-back decoder and text-token counter names.
    keep_last: recent turns kept as text (never paged while among them).
    """

    store: str | None = None
    user_id: str = "default"
    agent_id: str | None = None
    session_id: str | None = None
    target: str = DEFAULT_TARGET
    decoder: str = DEFAULT_DECODER
    tokenizer: str = DEFAULT_TOKENIZER
    keep_last: int = DEFAULT_KEEP_LAST

    def __post_init__(self) -> None:
        _ = self.scope  # validates the ids (InputError naming the bad value)
        check_count("keep_last", self.keep_last)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServerConfig:
        """The configuration the ``OPTICAL_MEMORY_MCP_*`` variables give
        (``STORE``, ``USER``, ``AGENT``, ``SESSION``, ``TARGET``, ``DECODER``,
        ``TOKENIZER``, ``KEEP_LAST``); unset ones keep their defaults."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(ENV_PREFIX + name)
            return value if value not in (None, "") else None

        keep = get("KEEP_LAST")
        try:
            keep_last = DEFAULT_KEEP_LAST if keep is None else int(keep)
        except ValueError:
            raise InputError(f"{ENV_PREFIX}KEEP_LAST must be an int (got {keep!r})") from None
        return cls(store=get("STORE"), user_id=get("USER") or "default", agent_id=get("AGENT"),
                   session_id=get("SESSION"), target=get("TARGET") or DEFAULT_TARGET,
                   decoder=get("DECODER") or DEFAULT_DECODER,
                   tokenizer=get("TOKENIZER") or DEFAULT_TOKENIZER, keep_last=keep_last)

    @property
    def scope(self) -> Scope:
        return Scope(self.user_id, self.agent_id, self.session_id)

    def scope_kwargs(self) -> ScopeKwargs:
        """``user_id`` / ``agent_id`` / ``session_id`` keywords for the
        :class:`~optical_memory.OpticalMemory` calls."""
        return self.scope.as_kwargs()


__all__ = ["ENV_PREFIX", "SERVER_NAME", "ServerConfig"]
