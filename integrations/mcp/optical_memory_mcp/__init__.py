"""optical-memory-mcp: optical-memory as a Model Context Protocol server.

    optical-memory-mcp --user alice            # stdio, for Claude Desktop & co.
    optical-memory-mcp --user alice --http     # streamable HTTP on 127.0.0.1:8000/mcp
    mcp run path/to/optical_memory_mcp/app.py  # the SDK's runner (config from the environment)

Library use: :func:`create_server` builds the ``MCPServer`` for a
:class:`ServerConfig`. Importing this package starts nothing, opens nothing
and loads neither the SDK nor the library: names resolve on first use.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from optical_memory.lazy import lazy_exports
from optical_memory_mcp._version import __version__

_LAZY = {
    "PAGE_URI_TEMPLATE": "optical_memory_mcp.models",
    "page_uri": "optical_memory_mcp.models",
    "ServerConfig": "optical_memory_mcp.config",
    "create_server": "optical_memory_mcp.server",
}

__all__ = ["PAGE_URI_TEMPLATE", "ServerConfig", "__version__", "create_server", "page_uri"]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


if TYPE_CHECKING:  # pragma: no cover
    from optical_memory_mcp.config import ServerConfig as ServerConfig
    from optical_memory_mcp.models import (
        PAGE_URI_TEMPLATE as PAGE_URI_TEMPLATE,
        page_uri as page_uri,
    )
    from optical_memory_mcp.server import create_server as create_server
