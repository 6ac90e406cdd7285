"""The distribution's version, from its installed metadata."""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("optical-memory-mcp")
except PackageNotFoundError:  # a source tree on sys.path without being installed
    __version__ = "0.0.0"
