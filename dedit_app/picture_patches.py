"""Earlier pictures kept as the box an edit changed, not as a whole picture.

A project keeps the picture from before every applied edit. Saved whole, each is a full
PNG: about 46 MB at 24 MP, for an edit that repainted a handbag. But an edit changes only
its region and soft band, and the engine keeps every other pixel byte-identical, so the
picture before edit k differs from the picture after it (the picture before edit k+1, or
the current one for the last edit) only inside a box. A save keeps that box of the
earlier picture (``image_patch``, a small PNG, and ``image_box``); reading it back pastes
the box into the picture after it, walking back from the newest picture. The rebuilt
picture is checked against the content name of the picture it must be (``image_key``),
so a file that was altered is reported as damaged, as a whole picture's file is.

The first edit's earlier picture, the photo itself, stays whole: "Original" shows it
with one read, and it is the picture most worth keeping if anything else were lost. One
in 32 is kept whole as well as boxed (``dedit_app.project.BOXES_BETWEEN_WHOLE``), so
that going back far lays in a bounded number of boxes (:func:`start_before`).

Pictures are ``(H, W, 3)`` uint8; a box is ``(top, left, bottom, right)`` in pixels,
ends exclusive (rows are y, down; columns x, right).
"""

from __future__ import annotations

import collections
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from typing import Any

import numpy as np

__all__ = [
    "Box",
    "box_of",
    "changed_box",
    "crop",
    "known_name",
    "paste",
    "read_ahead",
    "remember_name",
    "start_before",
]

Box = tuple[int, int, int, int]

# Boxes of pictures that cannot change, by the identities of the two pictures, and the
# file name the box was written as: the editor writes a save's files on the files thread
# ahead of it, and the save itself then finds them here instead of comparing (and
# hashing) 24 MP pictures again on the UI thread. Boxes, not crops: forty edits' crops of
# a 24 MP photo would hold hundreds of MB beside undo's.
_KNOWN: dict[tuple[int, int], list] = {}  # [ref before, ref after, box, name or None]


def _known(before: np.ndarray, after: np.ndarray) -> list | None:
    known = _KNOWN.get((id(before), id(after)))
    if known is not None and known[0]() is before and known[1]() is after:
        return known
    return None


def changed_box(before: np.ndarray, after: np.ndarray) -> Box:
    """The smallest box holding every pixel where ``before`` and ``after`` differ (both
    ``(H, W, C)`` of one shape); ``(0, 0, 0, 0)`` when they are equal."""
    if before.shape != after.shape:
        raise ValueError(f"pictures of two sizes: {before.shape} and {after.shape}")
    h, w = before.shape[:2]
    # As (rows, w * C) and reduced along rows, not over axes (0, 2): numpy's strided
    # reduction took 0.12 s for the columns of a 24 MP band, this 8 ms
    flat_before, flat_after = before.reshape(h, -1), after.reshape(h, -1)
    rows = np.flatnonzero((flat_before != flat_after).any(axis=1))
    if rows.size == 0:
        return (0, 0, 0, 0)
    top, bottom = int(rows[0]), int(rows[-1]) + 1
    band = (flat_before[top:bottom] != flat_after[top:bottom]).max(axis=0)
    cols = np.flatnonzero(band.reshape(w, -1).any(axis=1))
    return (top, int(cols[0]), bottom, int(cols[-1]) + 1)


def box_of(before: np.ndarray, after: np.ndarray, fixed: bool = False) -> Box:
    """The box of ``before`` to keep so that ``paste(after, crop(before, box), box)``
    equals ``before``: :func:`changed_box`, or one pixel when the two are equal (a PNG
    cannot be empty). ``fixed``: neither array can change (the caller checked), so the box
    is remembered for these two arrays."""
    known = _known(before, after)
    if known is not None:
        return known[2]
    box = changed_box(before, after)
    if box[2] == box[0]:
        box = (0, 0, 1, 1)
    if fixed:
        key = (id(before), id(after))

        def forget(_ref, key=key) -> None:
            _KNOWN.pop(key, None)

        _KNOWN[key] = [weakref.ref(before, forget), weakref.ref(after, forget), box, None]
    return box


def crop(before: np.ndarray, box: Box) -> np.ndarray:
    """``box`` of ``before``, as a contiguous array of its own."""
    top, left, bottom, right = box
    return np.ascontiguousarray(before[top:bottom, left:right])


def known_name(before: np.ndarray, after: np.ndarray) -> str | None:
    """The file name :func:`remember_name` was told for the box of these two arrays."""
    known = _known(before, after)
    return None if known is None else known[3]


def remember_name(before: np.ndarray, after: np.ndarray, name: str) -> None:
    """Remember the file name the box of these two arrays (with a remembered box, see
    :func:`box_of`) was written as; nothing otherwise."""
    known = _known(before, after)
    if known is not None:
        known[3] = name


def paste(after: np.ndarray, crop: np.ndarray, box: Box, copy: bool = True) -> np.ndarray:
    """``after`` with ``crop`` laid into ``box``: a new picture, or ``after`` itself with
    ``copy`` False (a caller walking back through many edits copies once). ValueError
    when the box does not fit the picture or the crop does not fill the box."""
    top, left, bottom, right = (int(v) for v in box)
    h, w = after.shape[:2]
    if not (0 <= top <= bottom <= h and 0 <= left <= right <= w):
        raise ValueError(f"the box {box} is outside a {w}x{h} picture")
    if crop.shape[:2] != (bottom - top, right - left) or crop.shape[2:] != after.shape[2:]:
        raise ValueError(f"a {crop.shape} patch does not fill the box {box}")
    out = after.copy() if copy else after
    out[top:bottom, left:right] = crop
    return out


def start_before(history: list[dict[str, Any]], k: int, whole: int) -> int:
    """Where rebuilding the picture before edit ``k`` of ``history`` (a project's
    entries, oldest first) starts: ``j`` such that the picture before edit ``j`` is in
    memory (``len(history)``: the one on show) or saved whole (``image``), and every
    entry from ``k`` to ``j - 1`` kept a box. Of those, the one with the fewest pixels
    to decode, a whole picture counting ``whole`` (its height times width): going back
    one edit lays in one box rather than reading a whole picture nearby. ValueError when
    there is none."""
    best, fewest = None, None
    pixels = 0  # of the boxes from k to j - 1
    for j in range(k, len(history) + 1):
        if j == len(history) or history[j].get("_before") is not None:
            cost = pixels
        elif "image" in history[j]:
            cost = pixels + whole
        else:
            cost = None
        if cost is not None and (fewest is None or cost < fewest):
            best, fewest = j, cost
        if cost == pixels or "image_patch" not in history[j]:
            break  # in memory: nothing further is cheaper; no box: no way further
        pixels += _box_pixels(history[j], whole)
    if best is None:
        raise ValueError(f"no saved picture leads back to before edit {k + 1}")
    return best


def _box_pixels(record: dict[str, Any], whole: int) -> int:
    """The pixels in a history entry's box, or ``whole`` when its box is not four
    numbers (laying it in then says the file is damaged)."""
    try:
        top, left, bottom, right = (int(v) for v in record["image_box"])
    except (KeyError, TypeError, ValueError):
        return whole
    return max(0, bottom - top) * max(0, right - left)


def read_ahead(
    pool: Executor, read: Callable[[Any], np.ndarray], entries: list, ahead: int
) -> Iterator[np.ndarray]:
    """``read(entry)`` for each of ``entries``, in order, each run on ``pool`` while at
    most ``ahead`` wait to be used: a box can be a whole picture's size, and forty of
    those would be gigabytes at 24 MP. Reads still waiting are cancelled when the
    caller stops early (close the iterator)."""
    waiting: collections.deque = collections.deque()
    entries = iter(entries)
    try:
        while True:
            while len(waiting) < ahead:
                entry = next(entries, None)
                if entry is None:
                    break
                waiting.append(pool.submit(read, entry))
            if not waiting:
                return
            yield waiting.popleft().result()
    finally:
        for future in waiting:
            future.cancel()
