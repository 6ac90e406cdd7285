"""``python -m optical_memory_mcp``: the same as the ``optical-memory-mcp`` command."""
from optical_memory_mcp.cli import main

if __name__ == "__main__":
    main()
