"""Where the default SQLite database lives.

``$OPTICAL_MEMORY_HOME`` when set (tests point it at a temporary folder),
else the platform's user data folder for ``optical-memory`` (e.g.
``~/.local/share/optical-memory`` on Linux). Nothing here creates folders;
:class:`~optical_memory.store.sqlite.SQLiteStore` creates the parent folder of
its file when it opens it.
"""
from __future__ import annotations

import os
from pathlib import Path

ENV_HOME = "OPTICAL_MEMORY_HOME"
APP_NAME = "optical-memory"
DB_FILENAME = "memory.db"


def data_dir() -> Path:
    """The data folder: ``$OPTICAL_MEMORY_HOME`` else the platform app dir."""
    home = os.environ.get(ENV_HOME)
    if home:
        return Path(home).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir(APP_NAME, appauthor=False))


def default_db_path() -> Path:
    """``data_dir() / "memory.db"``."""
    return data_dir() / DB_FILENAME
