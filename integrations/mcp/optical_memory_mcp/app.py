"""A module-level server for the SDK's runner: ``mcp run``, ``mcp dev`` and
``mcp install`` find the ``mcp`` object here.

    mcp run "$(python -c 'import optical_memory_mcp.app as a; print(a.__file__)')"

The SDK's runner takes no options, so the configuration comes from the same
environment variables the ``optical-memory-mcp`` command reads
(``OPTICAL_MEMORY_MCP_STORE``, ``_USER``, ``_AGENT``, ``_SESSION``, ``_TARGET``,
``_DECODER``, ``_TOKENIZER``, ``_KEEP_LAST``; see :meth:`ServerConfig.from_env`).
The memory opens on the first tool call, as with the command.
"""
from optical_memory_mcp.config import ServerConfig
from optical_memory_mcp.server import create_server

#: The server object ``mcp run`` / ``mcp dev`` / ``mcp install`` look for.
mcp = create_server(ServerConfig.from_env())

__all__ = ["mcp"]
