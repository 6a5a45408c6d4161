"""One save at a time in a project folder, across processes.

The editor and the ``dedit`` command may both save the same project (an ``edit --apply``
run while the project is open in a window). Each save deletes the files its new
``project.json`` no longer names; two saves interleaved would delete what the other one
is about to name. :func:`saving` holds a lock file in the folder for the few seconds of a
save; a second save waits for it, and says so in words when it waits too long.

A lock file rather than ``fcntl``/``msvcrt`` locks: it works the same on every system
and network drive, and a lock left by a process that died (``kill -9`` mid-save) is
recognised by its age.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import Iterator
from pathlib import Path

from dedit_app.errors import ProjectError
from dedit_app.project_file import os_sentence

LOCK_FILE = ".saving.lock"
WAIT = 15.0  # seconds a save waits for another save of the same folder
STALE = 120.0  # seconds after which a lock is taken as left by a save that died
_POLL = 0.05


@contextlib.contextmanager
def saving(folder: Path) -> Iterator[None]:
    """Hold ``folder``'s save lock for the ``with`` block; ProjectError with a sentence
    when the lock cannot be made (a read-only folder, a full disk) or another save holds
    it too long."""
    lock = Path(folder) / LOCK_FILE
    deadline = time.monotonic() + WAIT
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        except FileExistsError:
            if _stale(lock):
                with contextlib.suppress(OSError):
                    os.unlink(lock)
                continue
            if time.monotonic() > deadline:
                raise ProjectError(
                    f"{folder} is being saved by another program (another dedit command or "
                    "D-Edit Studio window); nothing was saved here. Try again when it is done."
                ) from None
            time.sleep(_POLL)
        except OSError as err:
            raise ProjectError(os_sentence(err, Path(folder))) from err
    try:
        with contextlib.suppress(OSError):
            os.write(fd, f"{os.getpid()}\n".encode())
        os.close(fd)
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)


def _stale(lock: Path) -> bool:
    try:
        return time.time() - lock.stat().st_mtime > STALE
    except OSError as err:  # gone meanwhile: try again at once
        return err.errno == errno.ENOENT


def young(path: Path) -> bool:
    """True for a file written within :data:`STALE` seconds: it may belong to a save
    under way in another process that has not named it yet."""
    try:
        return time.time() - path.stat().st_mtime < STALE
    except OSError:
        return False
