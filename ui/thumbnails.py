"""Small pictures of the recent photos and projects, for the start page.

A designer finds yesterday's project by its look faster than by its name. The start page
never reads the recent files themselves: a stale network folder must not freeze the window,
and decoding a 24-megapixel project takes a second. Instead, whenever a photo or project is
opened or saved, a thumbnail of the picture already in memory is written into the user's
data folder, on the files thread; the start page reads only those, a few kilobytes each.

Each thumbnail is named by a hash of the file's absolute path, so it follows the file's
name, not its content: a file changed by another program shows its old look until it is
opened here again. Thumbnails of files no longer among the recent ones are deleted.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PySide6.QtCore import QStandardPaths

from dedit_app.atomic import atomic_write_bytes
from dedit_app.imageio import png_bytes
from ui.imaging import shrink_to

LONGEST = 128  # pixels kept on the long edge: sharp at 64 logical pixels on a 2x screen


def default_folder() -> Path:
    """The user's data folder for this application, ``thumbnails`` inside it."""
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppLocalDataLocation)
    return Path(base or Path.home() / ".dedit-studio") / "thumbnails"


def file_name(path: str) -> str:
    """The thumbnail's file name for the photo or project at ``path`` (absolute)."""
    return hashlib.sha256(path.encode("utf-8", "surrogatepass")).hexdigest()[:24] + ".png"


def write(folder: Path, path: str, image: np.ndarray, colours: Callable | None = None) -> None:
    """Keep a thumbnail of ``image`` ``(H, W, 3)`` uint8 RGB for the file at ``path``, in
    the screen's colours by ``colours`` (:func:`dedit_app.colour_profiles.to_srgb`; None:
    as they are); any thread. Raises OSError when the folder cannot be written."""
    folder.mkdir(parents=True, exist_ok=True)
    small = shrink_to(image, LONGEST)
    if colours is not None:
        small = colours(small)
    atomic_write_bytes(folder / file_name(path), png_bytes(small))


def read(folder: Path, paths: list[str]) -> dict[str, np.ndarray]:
    """The thumbnails kept for ``paths``, as ``(h, w, 3)`` uint8 RGB arrays; any thread.
    A missing or damaged thumbnail is left out (the page shows a plain tile instead)."""
    found: dict[str, np.ndarray] = {}
    for path in paths:
        pixels = cv2.imread(str(folder / file_name(path)), cv2.IMREAD_COLOR)
        if pixels is not None and max(pixels.shape[:2]) <= 4 * LONGEST:
            found[path] = cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
    return found


def prune(folder: Path, keep: list[str]) -> None:
    """Delete the thumbnails of files other than ``keep``; any thread, never raises."""
    wanted = {file_name(p) for p in keep}
    with contextlib.suppress(OSError):
        for entry in folder.iterdir():
            if entry.suffix == ".png" and entry.name not in wanted:
                with contextlib.suppress(OSError):
                    entry.unlink()


__all__ = ["LONGEST", "default_folder", "file_name", "prune", "read", "write"]
