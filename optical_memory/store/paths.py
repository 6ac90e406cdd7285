"""Where the default SQLite database lives.

``$OPTICAL_MEMORY_HOME`` when set (tests point it at a temporary folder),
else the platform's user data folder for ``optical-memory`` (e.g.
``~/.local/share/optical-memory`` on Linux). Nothing here creates folders;
:class:`~optical_memory.store.sqlite.SQLiteStore` creates the parent folder of
its file when it opens it.

A memory holds private conversations: every folder and file the memory
creates is owner-only (folders 0700, files 0600) whatever the umask
(:func:`private_dir`, :func:`private_file`). SQLite gives the database's
``-wal`` / ``-shm`` files the database file's permissions.
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


PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def private_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` and any missing parents as owner-only folders (0700);
    folders that already exist are left as they are."""
    path = Path(path)
    missing = []
    cur = path
    while not cur.exists():
        missing.append(cur)
        if cur.parent == cur:
            break
        cur = cur.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=PRIVATE_DIR_MODE)
        except FileExistsError:  # made by another process meanwhile
            continue
        os.chmod(folder, PRIVATE_DIR_MODE)  # the umask may have taken bits away
    return path


def private_file(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` empty and owner-only (0600) unless it exists."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, PRIVATE_FILE_MODE)
    except FileExistsError:
        return path
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)
    finally:
        os.close(fd)
    return path


def default_db_path() -> Path:
    """``data_dir() / "memory.db"``."""
    return data_dir() / DB_FILENAME
