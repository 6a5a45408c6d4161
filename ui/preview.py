"""The instant preview of a move, resize, duplicate or removal, shown while diffusion works.

The new label map comes from the engine (:func:`dedit_app.partition.move_items` /
:func:`~dedit_app.partition.remove_item`); this module only makes a quick picture of it:
vacated pixels are filled by OpenCV inpainting (on a downscaled crop around them, so it
takes tens of milliseconds even on a large photo) and the moved item's pixels are pasted at
their new place with the same affine map the partition uses. It is a sketch, replaced by
the diffusion result when that lands.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from dedit_app import partition
from dedit_app.imageio import copy_pixels
from dedit_app.partition import Move

WORK_SIDE = 384  # inpainting resolution (long side of the crop), pixels


def inpaint_holes(image: np.ndarray, holes: np.ndarray, work_side: int = WORK_SIDE) -> np.ndarray:
    """``image`` ((H, W, 3) uint8) with the ``holes`` (bool (H, W)) filled from around them."""
    out = image.copy()
    if not holes.any():
        return out
    h, w = holes.shape
    ys, xs = np.nonzero(holes.any(axis=1))[0], np.nonzero(holes.any(axis=0))[0]
    margin = max(8, int(0.1 * max(ys[-1] - ys[0], xs[-1] - xs[0])))
    y0, y1 = max(ys[0] - margin, 0), min(ys[-1] + margin + 1, h)
    x0, x1 = max(xs[0] - margin, 0), min(xs[-1] + margin + 1, w)
    crop = np.ascontiguousarray(image[y0:y1, x0:x1])
    hole = holes[y0:y1, x0:x1].astype(np.uint8)
    ch, cw = hole.shape
    f = min(1.0, work_side / max(ch, cw))
    sw, sh = max(int(round(cw * f)), 1), max(int(round(ch * f)), 1)
    small = cv2.resize(crop, (sw, sh), interpolation=cv2.INTER_AREA) if f < 1 else crop
    small_hole = cv2.resize(hole, (sw, sh), interpolation=cv2.INTER_NEAREST) if f < 1 else hole
    # Grow the mask a little so edge pixels that mixed item and background are replaced too.
    small_hole = cv2.dilate(small_hole, np.ones((3, 3), np.uint8))
    filled = cv2.inpaint(small, small_hole, 3, cv2.INPAINT_TELEA)
    if f < 1:
        filled = cv2.resize(filled, (cw, ch), interpolation=cv2.INTER_LINEAR)
    region = hole.astype(bool)
    out[y0:y1, x0:x1][region] = filled[region]
    return out


def move_preview(
    image: np.ndarray, labels: np.ndarray, moves: Sequence[Move]
) -> tuple[np.ndarray, np.ndarray]:
    """The picture and label map after moving/resizing items, as a quick sketch.

    Returns ``(preview (H, W, 3) uint8, new_labels (H, W) int32)``; the labels are exactly
    :func:`dedit_app.partition.move_items`'s. Raises ItemError for moves the partition
    refuses (for example an item pushed entirely off the picture).
    """
    new_labels = partition.move_items(labels, moves)
    ids = [mv.item for mv in moves]
    holes = partition.holds_any(labels, ids) & ~partition.holds_any(new_labels, ids)
    out = inpaint_holes(image, holes)
    _paste_moved(out, image, labels, new_labels, moves, ids)
    return out, new_labels


def copy_preview(
    image: np.ndarray, labels: np.ndarray, moves: Sequence[Move], first: int
) -> tuple[np.ndarray, np.ndarray]:
    """The picture and label map after copying items (a duplicate), as a quick sketch: each
    item's pixels pasted where its copy goes. Returns ``(preview (H, W, 3) uint8,
    new_labels (H, W) int32)``, the labels exactly
    :func:`dedit_app.partition.copy_items`'s (copy k is item ``first + k``)."""
    new_labels = partition.copy_items(labels, moves, first)
    out = image.copy()
    _paste_moved(out, image, labels, new_labels, moves, range(first, first + len(moves)))
    return out, new_labels


def _paste_moved(
    out: np.ndarray,
    image: np.ndarray,
    labels: np.ndarray,
    new_labels: np.ndarray,
    moves: Sequence[Move],
    ids: Sequence[int],
) -> None:
    """Paste into ``out`` the pixels of each move's item where ``new_labels`` gives them
    id ``ids[k]``, warped by the move, in place."""
    for mv, k in zip(moves, ids):
        where = new_labels == k
        window = partition.bounding_window(where, 0)
        if window is None:
            continue
        # Warp only the item's new bounding box (the map shifted to its corner): on a
        # 24-megapixel photo warping and pasting the whole frame took most of a second.
        rows, cols = window
        m = partition.move_matrix(mv, partition.item_bbox(labels, mv.item))
        m[:, 2] -= (cols.start, rows.start)
        warped = cv2.warpAffine(
            image,
            m,
            (cols.stop - cols.start, rows.stop - rows.start),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
        copy_pixels(out[window], warped, where[window])


def remove_preview(
    image: np.ndarray, labels: np.ndarray, items: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """The picture and label map after removing ``items``, as a quick sketch."""
    new_labels = partition.remove_items(labels, items)
    return inpaint_holes(image, partition.holds_any(labels, items)), new_labels
