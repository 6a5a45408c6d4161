"""Atomic file writes: temp file in the same folder, fsync, rename, fsync the folder.

A reader sees either the old file or the new one, never a torn write, even after
``kill -9`` or a power cut between any two system calls.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

# mkstemp creates files readable by their owner only; saved documents should get the
# permissions any other new file gets. Read the umask once, at import, while no other thread
# can be creating files (os.umask can only be read by setting it).
_UMASK = os.umask(0o022)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK


def make_temp(path: Path) -> str:
    """Create an empty temp file beside ``path`` with normal file permissions; its name."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    with contextlib.suppress(OSError):  # file systems without modes (FAT, some mounts)
        os.chmod(tmp, FILE_MODE)
    return tmp


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
        with open(tmp, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes | memoryview) -> None:
    """Replace ``path`` with ``data`` atomically."""
    with atomic_writer(path) as f:
        f.write(data)
