"""optical-memory-mcp: optical-memory as a Model Context Protocol server.

    optical-memory-mcp --user alice            # stdio, for Claude Desktop & co.
    optical-memory-mcp --user alice --http     # streamable HTTP on 127.0.0.1:8000/mcp

Library use: :func:`create_server` builds the ``MCPServer`` for a
:class:`ServerConfig`. Importing this package starts nothing and opens nothing.
"""
from optical_memory_mcp._version import __version__
from optical_memory_mcp.config import ServerConfig
from optical_memory_mcp.models import PAGE_URI_TEMPLATE, page_uri
from optical_memory_mcp.server import create_server

__all__ = ["PAGE_URI_TEMPLATE", "ServerConfig", "__version__", "create_server", "page_uri"]
