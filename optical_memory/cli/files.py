"""Files the CLI writes are the user's own: files 0600, new folders 0700.

Page images hold the remembered conversation, so whatever the umask, nothing
the CLI writes (``render --out``, ``context --out``, ``demo --out``) is
readable by other users. Folders that already exist are left as they are.
"""
from __future__ import annotations

import errno
import os
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dir(path: str | os.PathLike[str]) -> Path:
    """``path`` as a folder, creating it and any missing parents with mode
    0700 (chmod'ed after creation, so the umask cannot widen or narrow it).
    :class:`OSError` (e.g. ``NotADirectoryError``) when a file is in the way."""
    target = Path(path)
    missing: list[Path] = []
    p = target
    while not os.path.lexists(p):
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        try:
            os.mkdir(d, DIR_MODE)
        except FileExistsError:
            continue  # made meanwhile by someone else: not ours to chmod
        os.chmod(d, DIR_MODE)
    if not target.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "not a folder", str(target))
    return target


def write_private(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` (created or truncated) with mode 0600.

    Does not follow a symlink at ``path`` (where the OS allows that check);
    an existing file is narrowed to 0600 before anything is written to it."""
    target = Path(path)
    flags = (os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
             | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0))
    fd = os.open(target, flags, FILE_MODE)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, FILE_MODE)
        else:  # Windows: only the read-only bit exists
            os.chmod(target, FILE_MODE)
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
    finally:
        os.close(fd)
    return target


__all__ = ["DIR_MODE", "FILE_MODE", "private_dir", "write_private"]
