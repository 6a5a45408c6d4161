"""Atomic file writes: temp file in the same folder, fsync, rename, fsync the folder.

A reader sees either the old file or the new one, never a torn write, even after
``kill -9`` or a power cut between any two system calls.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

# mkstemp creates files readable by their owner only; saved documents should get the
# permissions any other new file gets. Read the umask once, at import, while no other thread
# can be creating files (os.umask can only be read by setting it).
_UMASK = os.umask(0o022)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK

# On Windows a virus scanner or the search indexer opens a file just written, without
# sharing it, for a moment: renaming it, or over a file it is reading, then fails with
# PermissionError. pip and Mercurial retry for the same reason. Seconds between tries
# (about a second in all); elsewhere a PermissionError is a real one, so no retry.
BUSY_RETRIES: tuple[float, ...] = (0.02, 0.05, 0.1, 0.25, 0.6) if os.name == "nt" else ()


def make_temp(path: Path) -> str:
    """Create an empty temp file beside ``path`` with normal file permissions; its name."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    with contextlib.suppress(OSError):  # file systems without modes (FAT, some mounts)
        os.chmod(tmp, FILE_MODE)
    return tmp


def keep_mode(path: Path, tmp: str) -> None:
    """Give ``tmp`` the permissions of the file ``path`` it is to replace, if there is one:
    a file the user made private (0o600) stays private when saved over."""
    try:
        mode = os.stat(path).st_mode & 0o777  # never a set-user-id bit
    except OSError:  # nothing there yet: the normal permissions make_temp gave
        return
    with contextlib.suppress(OSError):  # file systems without modes (FAT, some mounts)
        os.chmod(tmp, mode | 0o200)  # the owner writes it: a read-only file is refused earlier


def held_by_another_program(err: OSError) -> bool:
    """Whether ``err`` is Windows' sharing violation: another program has the file open
    (an image viewer, a sync client, a virus scanner that took longer than the retries)."""
    return getattr(err, "winerror", None) == _SHARING_VIOLATION


_SHARING_VIOLATION = 32  # ERROR_SHARING_VIOLATION


def replace_file(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """``os.replace(src, dst)``, tried again after :data:`BUSY_RETRIES` pauses while it
    fails with PermissionError (a file another program holds for a moment)."""
    for pause in BUSY_RETRIES:
        try:
            os.replace(src, dst)
            return
        except PermissionError:
            time.sleep(pause)
    os.replace(src, dst)


def fsync_dir(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Yield a binary file whose content replaces ``path`` only if the block succeeds.

    On any exception (including ``OSError`` for a full disk) the temp file is removed and
    ``path`` is left exactly as it was.
    """
    path = Path(path)
    tmp = make_temp(path)
    try:
        keep_mode(path, tmp)
        with open(tmp, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        replace_file(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes | memoryview) -> None:
    """Replace ``path`` with ``data`` atomically."""
    with atomic_writer(path) as f:
        f.write(data)
