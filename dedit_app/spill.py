"""Pictures kept only for undo, moved out of RAM into a scratch folder.

A 24 MP photo costs 72 MB per picture and 96 MB per item map, and the editor keeps every
earlier one so that undo and the history can bring it back: forty edits held about 5 GB.
:func:`spill` writes such an array as a raw ``.npy`` file (``allow_pickle=False``: no
pickle anywhere) and returns the file mapped read-only in its place.

Why a mapped file rather than a file read back when needed: the editor tells its states
apart by the identity of their arrays (an edit is laid onto the very picture it was made
from; the maps the learned weights fit; pixel counts cached per map), and a mapped file
*is* an array, equal byte for byte, that keeps its identity from then on. Undo brings it
back without any read; the operating system pages in what is looked at, and under memory
pressure drops those pages again (they are clean: the file holds them) instead of swapping.

The files clean themselves up: on Linux and macOS a file is unlinked as soon as it is
mapped (the mapping keeps its data; the disk space returns when the last array using it
goes, even after a crash). Windows refuses to delete a mapped file, so there it is deleted
once its array is gone (:func:`spill` tries at each call) or by the :func:`sweep` of a
later run. Nothing here imports Qt.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
import weakref
from pathlib import Path

import numpy as np

SUFFIX = ".npy"
# A file this old in the scratch folder belongs to no running spill: ours are unlinked
# within a second of being written (or, on Windows, cannot be deleted while mapped).
STALE_S = 600.0
# Disk space a spill leaves free: undo is not worth filling the disk other programs (and
# the next save) need. Below it the picture stays in RAM, as on a full disk.
KEEP_FREE = 2 << 30

_SWEPT: set[Path] = set()
# Windows: files still mapped when they were spilled, deleted once their array is gone.
_LEFT: list[tuple[weakref.ref, Path]] = []


def file_backed(array: np.ndarray) -> bool:
    """True when ``array`` (or the array it views) is a mapped file, not RAM of ours."""
    while isinstance(array, np.ndarray):
        if isinstance(array, np.memmap):
            return True
        array = array.base
    return False


def spill(array: np.ndarray, folder: Path) -> np.ndarray | None:
    """``array`` written to a file in ``folder`` and mapped back read-only: same shape,
    dtype and bytes (``(H, W, 3)`` uint8 pictures and ``(H, W)`` int32 maps alike), as
    a plain read-only ndarray whose base is the ``np.memmap``.

    None when the folder cannot be written (a full disk, no permission) or the file would
    leave less than :data:`KEEP_FREE` of its disk free: the caller keeps the array in RAM,
    which is only what it did before.
    """
    folder = Path(folder)
    _tidy(folder)
    path = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if shutil.disk_usage(folder).free < array.nbytes + KEEP_FREE:
            return None
        fd, name = tempfile.mkstemp(suffix=SUFFIX, prefix="undo-", dir=folder)
        path = Path(name)
        with os.fdopen(fd, "wb") as f:
            np.save(f, np.ascontiguousarray(array), allow_pickle=False)
        mapped = np.load(path, mmap_mode="r", allow_pickle=False)
    except OSError:
        if path is not None:
            with contextlib.suppress(OSError):
                path.unlink()
        return None
    try:
        path.unlink()  # the mapping keeps the data (not on Windows: see _tidy)
    except OSError:
        _LEFT.append((weakref.ref(mapped), path))
    # A plain ndarray viewing the map: np.asarray and the label checks hand a plain array
    # back as itself, but a memmap as a new view, and the document goes by identity.
    return mapped.view(np.ndarray)


def sweep(folder: Path) -> None:
    """Delete spill files a run that ended left in ``folder`` (a crash between writing
    and unlinking one; on Windows, any not deleted before the editor closed)."""
    try:
        entries = list(Path(folder).glob(f"undo-*{SUFFIX}"))
    except OSError:
        return
    now = time.time()
    for path in entries:
        with contextlib.suppress(OSError):
            if now - path.stat().st_mtime > STALE_S:
                path.unlink()  # Windows refuses while another editor has it mapped


def _tidy(folder: Path) -> None:
    """Sweep ``folder`` once per run, and delete the files whose arrays are gone."""
    if folder not in _SWEPT:
        _SWEPT.add(folder)
        sweep(folder)
    for entry in list(_LEFT):
        if entry[0]() is None:
            try:
                entry[1].unlink(missing_ok=True)
            except OSError:
                continue  # still mapped a moment longer, or held by a virus scanner
            _LEFT.remove(entry)
