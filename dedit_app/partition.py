"""Edits of the item partition: the label map that assigns every pixel to exactly one item.

A label map is an ``(H, W)`` integer array with values ``0..K-1``; item ``k`` owns the pixels
equal to ``k``. It cannot overlap or leave holes, so it is the single source of truth and
binary masks are views of it. Item ids are stable: an edit that empties an item (remove,
merge) leaves its id unused rather than renumbering the others, because learned tokens are
bound to ids. :func:`relabel_compact` renumbers when a caller wants that.

Coordinates: ``x`` is the column (right), ``y`` the row (down), in pixels; pixel centres
sit at integer coordinates.

Every function returns a new label map and never modifies its input. Nearest-pixel
reassignment uses an exact Euclidean distance transform (linear time and memory) instead of
the dense hole-by-donor distance matrix of the reference code.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

from dedit_app.errors import ItemError

__all__ = [
    "Move",
    "bounding_window",
    "check_labels",
    "copy_items",
    "copy_offset",
    "distance_to",
    "edit_regions",
    "erase",
    "fill_from_nearest",
    "flip_moves",
    "group_moves",
    "holds_any",
    "item_areas",
    "item_bbox",
    "merge_items",
    "merge_many",
    "move_item",
    "move_matrix",
    "move_items",
    "paint",
    "present_items",
    "relabel_compact",
    "remove_item",
    "remove_items",
    "stroke_mask",
    "stroke_window",
]


@dataclass(frozen=True)
class Move:
    """Scale item ``item`` about its bounding-box centre by ``scale``, then shift it by
    ``(dx, dy)`` pixels (x right, y down). ``flip`` mirrors it left to right about that
    centre first (its bounding box stays where it was); ``angle`` turns it about that
    centre, in degrees clockwise as the picture is seen, after the flip and the scale."""

    item: int
    dx: float = 0.0
    dy: float = 0.0
    scale: float = 1.0
    flip: bool = False
    angle: float = 0.0


def check_labels(labels: np.ndarray) -> np.ndarray:
    """Validate a label map and return it as a C-contiguous int32 view or copy."""
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.size == 0:
        raise ItemError(f"A label map must be a non-empty 2-D array; got shape {labels.shape}.")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ItemError(f"A label map must hold integers; got {labels.dtype}.")
    if labels.min() < 0:
        raise ItemError("A label map cannot hold negative item numbers.")
    return np.ascontiguousarray(labels, dtype=np.int32)


def _check_item(labels: np.ndarray, item: int, *, present: bool = True) -> None:
    n = int(labels.max()) + 1
    if not isinstance(item, (int, np.integer)) or item < 0 or item >= n:
        raise ItemError(f"There is no item {item}; this picture has items 0 to {n - 1}.")
    if present and not (labels == item).any():
        raise ItemError(f"Item {item} has no pixels left, so there is nothing to edit.")


def _check_mask(mask: np.ndarray, shape: tuple[int, ...], what: str) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.shape != shape:
        raise ItemError(f"The {what} is {mask.shape} but the picture is {shape}.")
    return mask.astype(bool, copy=False)


# A float32 histogram bin counts exactly up to 2**24; a band of at most that many pixels
# cannot put more than that in one bin, so band-by-band histograms summed as integers are
# exact.
_EXACT_BAND = 2**24


def _banded_histogram(labels: np.ndarray, minlength: int = 0) -> np.ndarray | None:
    """Pixels per id of a 2-D map of ids in ``0 .. 2**16 - 1`` as int64, from histograms
    of bands of rows; None for any other map (the callers fall back to numpy)."""
    if labels.ndim != 2 or not labels.size or labels.min() < 0 or labels.max() >= 2**16:
        return None
    bins = int(labels.max()) + 1
    out = np.zeros(max(bins, minlength), np.int64)
    rows = max(_EXACT_BAND // labels.shape[1], 1)
    for top in range(0, labels.shape[0], rows):
        band = labels[top : top + rows].astype(np.uint16)
        hist = cv2.calcHist([band], [0], None, [bins], [0, bins])
        out[:bins] += hist.ravel().astype(np.int64)
    return out


def item_areas(labels: np.ndarray, minlength: int = 0) -> np.ndarray:
    """Pixels per item id, ``(max(minlength, labels.max() + 1),)`` int64: ``np.bincount``'s
    answer. Histograms of bands of rows instead: ``bincount`` widens a 24-megapixel map to
    int64 first (a 192 MB copy, 210 ms; this takes about 40 ms), and the editor asks at
    every change of the items."""
    labels = np.asarray(labels)
    areas = _banded_histogram(labels, minlength)
    return np.bincount(labels.ravel(), minlength=minlength) if areas is None else areas


def present_items(labels: np.ndarray) -> np.ndarray:
    """The item ids that own at least one pixel of ``labels``, ascending (``np.unique``'s
    answer). A histogram, not a sort: 40 ms instead of 450 on a 24-megapixel map, and
    every edit asks it."""
    labels = np.asarray(labels)
    areas = _banded_histogram(labels)
    return np.unique(labels) if areas is None else np.flatnonzero(areas)


def holds_any(labels: np.ndarray, items: Sequence[int]) -> np.ndarray:
    """``(H, W)`` bool: the pixels of any of ``items`` (``np.isin`` for the few items an
    edit names, at a tenth of its time on a large map)."""
    out = np.zeros(np.shape(labels), dtype=bool)
    for item in items:
        out |= labels == item
    return out


def bounding_window(mask: np.ndarray, margin: int) -> tuple[slice, slice] | None:
    """``(rows, cols)`` slices of the bounding box of ``mask``'s True pixels grown by
    ``margin`` pixels on every side and clipped to the array; None if none is True.

    What happens near a small region of a large photo (an edit's soft band, its feather)
    only needs this window: on a 24-megapixel photo the full-frame work took most of an
    edit's time on the host."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    # only the rows between the first and the last that hold any can hold a column's pixel
    cols = np.flatnonzero(mask[int(rows[0]) : int(rows[-1]) + 1].any(axis=0))
    h, w = mask.shape
    return (
        slice(max(0, int(rows[0]) - margin), min(h, int(rows[-1]) + margin + 1)),
        slice(max(0, int(cols[0]) - margin), min(w, int(cols[-1]) + margin + 1)),
    )


def distance_to(mask: np.ndarray) -> np.ndarray:
    """Exact Euclidean distance (float32, pixels) from every pixel to the nearest True pixel.

    Pixels of ``mask`` get 0. If ``mask`` is empty every distance is ``inf``.
    """
    if not mask.any():
        return np.full(mask.shape, np.inf, dtype=np.float32)
    # cv2's DIST_MASK_PRECISE is the exact Felzenszwalb transform, in float32: half the
    # memory of scipy's float64 and faster; it measures distance to the nearest zero.
    return cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)


def fill_from_nearest(
    labels: np.ndarray, holes: np.ndarray, donors: np.ndarray | None = None
) -> np.ndarray:
    """Give every hole pixel the label of its nearest (Euclidean) donor pixel.

    Args:
        labels: ``(H, W)`` int label map.
        holes: ``(H, W)`` bool, the pixels to reassign.
        donors: ``(H, W)`` bool, the pixels whose labels may be copied; defaults to
            ``~holes``. Donor pixels inside ``holes`` are ignored.
    Returns:
        A new ``(H, W)`` int32 label map; pixels outside ``holes`` are unchanged.
    Raises:
        ItemError: there are holes but no donor pixel.
    """
    labels = check_labels(labels)
    holes = _check_mask(holes, labels.shape, "hole mask")
    donors = ~holes if donors is None else _check_mask(donors, labels.shape, "donor mask") & ~holes
    return _fill_in_place(labels.copy(), holes, donors)


def _fill_in_place(out: np.ndarray, holes: np.ndarray, donors: np.ndarray) -> np.ndarray:
    """:func:`fill_from_nearest` on ``out`` itself (int32; ``donors`` outside ``holes``)."""
    box = bounding_window(holes, 0)
    if box is None:
        return out
    _fill_near(
        out,
        box,
        lambda window: holes[window],
        lambda window: donors[window],
        "There is no other item to fill the emptied pixels from.",
    )
    return out


def _fill_near(
    out: np.ndarray,
    box: tuple[slice, slice],
    holes_at: Callable[[tuple[slice, slice]], np.ndarray],
    donors_at: Callable[[tuple[slice, slice]], np.ndarray],
    none_left: str,
) -> None:
    """Give every hole of ``out`` the label of its nearest donor pixel, in place.

    ``box`` is the holes' bounding box (:func:`bounding_window` with margin 0, never None);
    ``holes_at(window)`` and ``donors_at(window)`` are the hole and donor masks (disjoint)
    inside a window of the picture. Only windows around the holes are ever asked for, so
    a caller that knows the holes lie in a small part of a large map (an eraser stroke)
    need not build whole-picture masks. ItemError(``none_left``) when there is no donor.
    """
    # The nearest donor of a hole pixel p lies within dist(p) of p, so a crop around the
    # holes grown by the largest hole distance contains every donor that can win. This keeps
    # the transforms to the neighbourhood of the edit. The distances are measured in a
    # window around the holes, grown until its farthest hole is no farther from a donor
    # than the window reaches: then every hole's nearest donor lies inside it. A window
    # that holds donors gives every hole one at most ``reach`` away, so grown to that
    # margin it holds every hole's nearest donor and the next pass is the last (growing
    # four times instead made the windows up to 16 times larger than needed).
    margin = 64
    while True:
        window = _grown(box, margin, out.shape)
        near = donors_at(window)
        if near.any():
            reach = float(distance_to(near)[holes_at(window)].max())
            if reach <= margin or _whole(window, out.shape):
                break
            margin = max(math.ceil(reach), margin + 1)
        elif _whole(window, out.shape):
            raise ItemError(none_left)
        else:
            margin *= 4
    crop = _grown(box, int(np.ceil(reach)) + 1, out.shape)
    idx = ndimage.distance_transform_edt(
        ~donors_at(crop), return_distances=False, return_indices=True
    )
    crop_holes = holes_at(crop)
    # every hole reads a donor, never another hole, so filling in place reads old labels
    nearest = out[crop][idx[0][crop_holes], idx[1][crop_holes]]
    out[crop][crop_holes] = nearest


def _grown(box: tuple[slice, slice], margin: int, shape: tuple[int, ...]) -> tuple[slice, slice]:
    """``box`` grown by ``margin`` on every side, clipped to ``shape`` (as
    :func:`bounding_window` grows the box of a mask)."""
    rows, cols = box
    return (
        slice(max(0, rows.start - margin), min(shape[0], rows.stop + margin)),
        slice(max(0, cols.start - margin), min(shape[1], cols.stop + margin)),
    )


def _embed(part: np.ndarray, at: tuple[slice, slice], window: tuple[slice, slice]) -> np.ndarray:
    """``window`` of a picture-sized bool mask that is ``part`` at ``at`` and False elsewhere."""
    out = np.zeros((window[0].stop - window[0].start, window[1].stop - window[1].start), bool)
    r0, r1 = max(at[0].start, window[0].start), min(at[0].stop, window[0].stop)
    c0, c1 = max(at[1].start, window[1].start), min(at[1].stop, window[1].stop)
    if r0 < r1 and c0 < c1:
        out[
            r0 - window[0].start : r1 - window[0].start, c0 - window[1].start : c1 - window[1].start
        ] = part[r0 - at[0].start : r1 - at[0].start, c0 - at[1].start : c1 - at[1].start]
    return out


def _whole(window: tuple[slice, slice], shape: tuple[int, int]) -> bool:
    return (window[0].stop - window[0].start, window[1].stop - window[1].start) == shape


def remove_item(labels: np.ndarray, item: int) -> np.ndarray:
    """Delete item ``item``: each of its pixels goes to the nearest pixel of any other item.

    The id ``item`` stays reserved (it simply owns no pixels afterwards).
    """
    return remove_items(labels, [item])


def remove_items(labels: np.ndarray, items: Sequence[int]) -> np.ndarray:
    """Delete every item of ``items`` at once: each of their pixels goes to the nearest
    pixel of an item not among them (so one removed item never fills another's place).
    The ids stay reserved."""
    labels = check_labels(labels)
    for item in items:
        _check_item(labels, item)
    holes = holds_any(labels, items)
    if holes.all():
        which = f"Item {items[0]} covers" if len(items) == 1 else "Those items cover"
        them = "it" if len(items) == 1 else "them"
        raise ItemError(f"{which} the whole picture; there is nothing to fill {them} with.")
    return fill_from_nearest(labels, holes)


def item_bbox(labels: np.ndarray, item: int, *, checked: bool = False) -> tuple[int, int, int, int]:
    """Bounding box ``(x0, y0, x1, y1)`` of item ``item``, inclusive pixel indices.

    ``checked=True``: ``labels`` is a map :func:`check_labels` already accepted (the
    editor's frozen maps), so the whole-map checks are skipped; an item with no pixels is
    still refused with the same message."""
    if not checked:
        labels = check_labels(labels)
        _check_item(labels, item)
    window = bounding_window(labels == item, 0)
    if window is None:  # only when checked: say why as the checks would have
        _check_item(check_labels(labels), item)
    rows, cols = window
    return int(cols.start), int(rows.start), int(cols.stop) - 1, int(rows.stop) - 1


def move_matrix(move: Move, box: tuple[int, int, int, int]) -> np.ndarray:
    """The ``(2, 3)`` affine map ``move`` makes of the pixels of an item whose bounding
    box is ``box`` (``(x0, y0, x1, y1)``, inclusive, pixel centres at whole coordinates):
    ``p' = R(angle) S F (p - c) + c + (dx, dy)``, with ``c`` the box's centre, ``F`` the
    mirror when flipped and ``S`` the scale, which on each axis keeps at least one pixel
    across (a thin line shrunk stays a line, a speck a pixel, rather than vanishing
    between the pixel centres). cv2.warpAffine takes it as is."""
    if not np.isfinite(move.scale) or move.scale <= 0:
        raise ItemError(
            f"The scale for item {move.item} must be a number above zero; got {move.scale}."
        )
    if not (np.isfinite(move.dx) and np.isfinite(move.dy)):
        raise ItemError(f"The shift for item {move.item} must be a finite number of pixels.")
    if not np.isfinite(move.angle):
        raise ItemError(f"The angle for item {move.item} must be a finite number of degrees.")
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    s = float(move.scale)
    sx, sy = max(s, 1.0 / (x1 - x0 + 1)), max(s, 1.0 / (y1 - y0 + 1))
    a = _linear(sx, sy, move.flip, move.angle)
    c = np.array([cx, cy])
    shift = c + (move.dx, move.dy) - a @ c
    return np.hstack([a, shift[:, None]])


def _linear(sx: float, sy: float, flip: bool, angle: float) -> np.ndarray:
    """``(2, 2)``: the mirror (when ``flip``), the scale ``(sx, sy)``, then the turn by
    ``angle`` degrees, clockwise as seen with y pointing down."""
    a = np.diag([-sx if flip else sx, sy])
    if angle % 360:
        t = math.radians(angle)
        a = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]]) @ a
    return a


def _moved_mask(labels: np.ndarray, move: Move) -> np.ndarray:
    """The item's mask after :func:`move_matrix`, clipped to the image."""
    box = item_bbox(labels, move.item)
    m = move_matrix(move, box)
    h, w = labels.shape
    src = (labels == move.item).astype(np.uint8)
    moved = cv2.warpAffine(
        src, m, (w, h), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    ).astype(bool)
    x0, y0, x1, y1 = box
    # below a pixel across, its target can fall between the pixel centres: it keeps one
    shrunk = move.scale * min(x1 - x0 + 1, y1 - y0 + 1) < 1
    tx, ty = round((x0 + x1) / 2 + move.dx), round((y0 + y1) / 2 + move.dy)
    if not moved.any() and shrunk and 0 <= tx < w and 0 <= ty < h:
        moved[ty, tx] = True
    if not moved.any():
        raise ItemError(
            f"Moving item {move.item} by ({move.dx:g}, {move.dy:g}) at scale {move.scale:g} "
            "puts it entirely outside the picture."
        )
    return moved


def move_items(
    labels: np.ndarray, moves: Sequence[Move], order: Sequence[int] | None = None
) -> np.ndarray:
    """Move and resize several items at once; moved items lie on top of the others.

    Args:
        labels: ``(H, W)`` int label map.
        moves: one :class:`Move` per item (an item at most once).
        order: stacking order of the moved items, bottom first (D-Edit's priority list);
            defaults to the order of ``moves``.
    Returns:
        A new label map. Each moved item covers its transformed shape (clipped at the image
        border), later items in ``order`` on top. Pixels a moved item vacated and no moved
        item now covers go to the nearest pixel of an item that was not moved (or, if the
        moved items now hide every other item, to the nearest moved item).
    """
    labels = check_labels(labels)
    if not moves:
        raise ItemError("Choose at least one item to move.")
    by_item = {}
    for mv in moves:
        _check_item(labels, mv.item)
        if mv.item in by_item:
            raise ItemError(f"Item {mv.item} is listed twice in one move.")
        by_item[mv.item] = mv
    order = list(by_item) if order is None else list(order)
    if sorted(order) != sorted(by_item):
        raise ItemError("The stacking order must list exactly the items being moved.")

    vacated = holds_any(labels, order)
    out = labels.copy()
    covered = np.zeros(labels.shape, dtype=bool)
    for item in order:  # bottom first, so later items paint over earlier ones
        mask = _moved_mask(labels, by_item[item])
        out[mask] = item
        covered |= mask
    holes = vacated & ~covered
    if holes.any():
        donors = ~covered & ~vacated
        # When the moved items hide every other item, the moved items themselves are all
        # that is left to extend; that beats refusing a move the user can see is valid.
        out = _fill_in_place(out, holes, donors if donors.any() else ~holes)
    return out


def copy_items(labels: np.ndarray, moves: Sequence[Move], first: int) -> np.ndarray:
    """Lay copies of items where ``moves`` take them, leaving the items themselves in place.

    Args:
        labels: ``(H, W)`` int label map.
        moves: one :class:`Move` per copy, from the item copied (an item may be copied
            more than once).
        first: the id of the first copy (the number of items); copy k is ``first + k``.
    Returns:
        A new label map: each copy covers its item's transformed shape (clipped at the
        border), later copies on top. An item a copy lies over keeps the rest of its
        pixels, and may be hidden whole.
    """
    labels = check_labels(labels)
    if not moves:
        raise ItemError("Choose at least one item to copy.")
    if first <= int(labels.max()):
        raise ItemError(f"The copies' ids must follow the items; {first} is taken.")
    # each from the map before (a copy of a copy's place); _moved_mask refuses an item
    # that is not there, as item_bbox does
    masks = [_moved_mask(labels, mv) for mv in moves]
    out = labels.copy()
    for k, mask in enumerate(masks):
        out[mask] = first + k
    return out


def copy_offset(box: tuple[int, int, int, int], shape: tuple[int, int]) -> tuple[int, int]:
    """``(dx, dy)`` that puts a copy of what ``box`` holds (``(x0, y0, x1, y1)``, inclusive,
    x right, y down) just beside it inside a picture of ``shape`` ``(H, W)``: to the right
    when it fits there, else the left, below, above; with no room on any side, the side
    with the most, where the copy still shows in part."""
    x0, y0, x1, y1 = box
    h, w = shape
    bw, bh = x1 - x0 + 1, y1 - y0 + 1
    gap = max(4, round(0.05 * max(bw, bh)))
    sides = [  # (room on that side, the shift that uses it)
        (w - 1 - x1, (bw + gap, 0)),
        (x0, (-(bw + gap), 0)),
        (h - 1 - y1, (0, bh + gap)),
        (y0, (0, -(bh + gap))),
    ]
    for (room, shift), need in zip(sides, (bw, bw, bh, bh)):
        if room >= need + gap:
            return shift
    # as far as the room goes, so that the copy lies over its item as little as it can
    room, (dx, dy) = max(sides, key=lambda side: side[0])
    return (int(np.sign(dx)) * room, int(np.sign(dy)) * room)


def group_moves(
    boxes: Mapping[int, tuple[int, int, int, int]],
    dx: float = 0.0,
    dy: float = 0.0,
    scale: float = 1.0,
    angle: float = 0.0,
    flip: bool = False,
) -> tuple[Move, ...]:
    """The moves that carry items as one rigid group, as a design tool moves, resizes,
    turns or flips a selection: mirrored (``flip``), scaled and turned (``angle``,
    degrees clockwise as seen) about the middle of the box around them all, then
    shifted by ``(dx, dy)``. Each item gets the same flip, scale and angle about its own
    box centre, and the shift that puts that centre where the group takes it; one item
    alone is simply ``Move(item, dx, dy, scale, flip, angle)``.

    ``boxes``: item -> ``(x0, y0, x1, y1)``, inclusive pixel box (:func:`item_bbox`,
    x right, y down), one per item, in the order the moves come back."""
    if not boxes:
        raise ItemError("Choose at least one item to move.")
    edges = np.array(list(boxes.values()), dtype=float)
    middle = (edges[:, :2].min(axis=0) + edges[:, 2:].max(axis=0)) / 2
    # a bad scale or angle is refused, in words, by move_matrix when the moves are used
    ok = math.isfinite(scale) and scale > 0 and math.isfinite(angle)
    linear = _linear(scale, scale, flip, angle) if ok else np.eye(2)
    moves = []
    for item, (x0, y0, x1, y1) in boxes.items():
        centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
        sx, sy = (linear - np.eye(2)) @ (centre - middle) + (dx, dy)
        moves.append(Move(int(item), float(sx), float(sy), scale, flip, angle))
    return tuple(moves)


def flip_moves(
    boxes: Mapping[int, tuple[int, int, int, int]], vertical: bool = False
) -> tuple[Move, ...]:
    """The moves that mirror items left to right (``vertical``: top to bottom) as one
    group, about the middle of the box around them all (:func:`group_moves` with
    ``flip``; top to bottom is left to right and a half turn); one item alone stays in
    its own box. ``boxes`` as there."""
    if not boxes:
        raise ItemError("Choose at least one item to flip.")
    return group_moves(boxes, flip=True, angle=180.0 if vertical else 0.0)


def move_item(
    labels: np.ndarray, item: int, dx: float, dy: float, scale: float = 1.0
) -> np.ndarray:
    """Scale item ``item`` about its bounding-box centre, shift it by ``(dx, dy)`` pixels
    (x right, y down), clip at the border and put it on top; see :func:`move_items`."""
    return move_items(labels, [Move(item, dx, dy, scale)])


def edit_regions(active: np.ndarray, edge: float) -> tuple[np.ndarray, np.ndarray]:
    """Split the picture around the region being generated.

    Args:
        active: ``(H, W)`` bool, the pixels generated freely.
        edge: width of the soft band in pixels (Euclidean), ``>= 0``.
    Returns:
        ``(hard, soft)`` bool maps: ``soft`` is every pixel outside ``active`` within
        ``edge`` pixels of it; ``hard`` is everything else outside ``active``. Active, soft
        and hard are disjoint and cover the picture.
    """
    active = np.asarray(active, dtype=bool)
    if active.ndim != 2:
        raise ItemError(f"The active region must be a 2-D mask; got shape {active.shape}.")
    if not np.isfinite(edge) or edge < 0:
        raise ItemError(f"The soft edge width must be zero or more pixels; got {edge}.")
    soft = np.zeros_like(active)
    # Every pixel within ``edge`` of the region lies in this window, and every region
    # pixel does, so the distances inside it are the whole picture's.
    window = bounding_window(active, math.ceil(edge) + 1)
    if window is not None:
        inside = active[window]
        soft[window] = (distance_to(inside) <= edge) & ~inside
    hard = ~active & ~soft
    return hard, soft


# Coordinates of a stroke in fixed point, 4 fractional bits, so sub-pixel positions count.
_SHIFT = 4


def _stroke_points(points: Sequence[tuple[float, float]], radius: float) -> list[tuple[int, int]]:
    if radius <= 0:
        raise ItemError(f"The brush size must be above zero; got {radius}.")
    return [(round(x * (1 << _SHIFT)), round(y * (1 << _SHIFT))) for x, y in points]


def _stroke_reach(radius: float) -> int:
    """Pixels beyond its points that a stroke of ``radius`` may reach, with room to spare:
    its dabs reach ``radius`` (to the nearest sixteenth) and its lines half their width,
    ``round(2 * radius) / 2``, each plus a pixel of rounding at most."""
    return math.ceil(radius) + 3


def stroke_window(
    shape: tuple[int, int], points: Sequence[tuple[float, float]], radius: float
) -> tuple[slice, slice] | None:
    """``(rows, cols)`` slices of a window of the picture that holds every pixel of
    :func:`stroke_mask`: the points' bounding box grown by the brush radius and a margin,
    clipped to the picture. None when there are no points or the window misses the
    picture (the stroke then covers no pixel). Raises as :func:`stroke_mask` does."""
    pts = _stroke_points(points, radius)
    if not pts:
        return None
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    reach = _stroke_reach(radius)
    h, w = shape
    one = 1 << _SHIFT
    rows = slice(max(0, min(ys) // one - reach), min(h, -(-max(ys) // one) + reach + 1))
    cols = slice(max(0, min(xs) // one - reach), min(w, -(-max(xs) // one) + reach + 1))
    if rows.start >= rows.stop or cols.start >= cols.stop:
        return None
    return rows, cols


def _draw_stroke(
    size: tuple[int, int], pts: list[tuple[int, int]], radius: float, origin: tuple[int, int]
) -> np.ndarray:
    """The stroke drawn on a ``size`` canvas whose pixel (0, 0) is the picture's pixel
    ``origin`` ``(row, col)``: every shape is moved by whole pixels, which OpenCV's integer
    rasteriser draws exactly as it would at its place on the whole picture, as long as
    the canvas clips it only where the picture does (see :func:`stroke_window`)."""
    canvas = np.zeros(size, dtype=np.uint8)
    oy, ox = origin[0] << _SHIFT, origin[1] << _SHIFT
    pts = [(x - ox, y - oy) for x, y in pts]
    r = max(round(radius * (1 << _SHIFT)), 1)
    for p in pts:
        cv2.circle(canvas, p, r, 1, thickness=-1, lineType=cv2.LINE_8, shift=_SHIFT)
    for a, b in zip(pts, pts[1:]):
        thick = max(int(round(2 * radius)), 1)
        cv2.line(canvas, a, b, 1, thickness=thick, lineType=cv2.LINE_8, shift=_SHIFT)
    return canvas.astype(bool)


def stroke_mask(
    shape: tuple[int, int],
    points: Sequence[tuple[float, float]],
    radius: float,
    window: tuple[slice, slice] | None = None,
) -> np.ndarray:
    """The pixels under a brush stroke: round caps along the polyline through ``points``.

    Args:
        shape: ``(H, W)``.
        points: ``(x, y)`` pixel positions of the stroke, in order (one point = a dab).
        radius: brush radius in pixels (``> 0``).
        window: ``(rows, cols)`` slices of the picture (e.g. :func:`stroke_window`'s):
            only that part of the mask, ``stroke_mask(shape, points, radius)[window]``,
            worked out there alone (a large photo's full-size canvas took most of a
            stroke's time).
    """
    pts = _stroke_points(points, radius)
    h, w = shape
    if window is None:
        window = (slice(0, h), slice(0, w))
    rows, cols = (slice(*sl.indices(n)[:2]) for sl, n in zip(window, shape))
    size = (max(rows.stop - rows.start, 0), max(cols.stop - cols.start, 0))
    where = stroke_window(shape, points, radius)
    if where is None:
        return np.zeros(size, dtype=bool)
    if where == (slice(0, h), slice(0, w)):  # the whole picture: as it always was drawn
        return _draw_stroke((h, w), pts, radius, (0, 0))[rows, cols]
    drawn = _draw_stroke(
        (where[0].stop - where[0].start, where[1].stop - where[1].start),
        pts,
        radius,
        (where[0].start, where[1].start),
    )
    return _embed(drawn, where, (rows, cols))


def _check_window(
    labels: np.ndarray, stroke: np.ndarray, window: tuple[slice, slice] | None, what: str
) -> tuple[tuple[slice, slice], np.ndarray]:
    """``window`` (default: the whole picture) as clipped slices and ``stroke`` checked
    to be its mask."""
    h, w = labels.shape
    if window is None:
        return (slice(0, h), slice(0, w)), _check_mask(stroke, labels.shape, what)
    rows, cols = (slice(*sl.indices(n)[:2]) for sl, n in zip(window, labels.shape))
    size = (max(rows.stop - rows.start, 0), max(cols.stop - cols.start, 0))
    return (rows, cols), _check_mask(stroke, size, what)


def paint(
    labels: np.ndarray,
    stroke: np.ndarray,
    item: int,
    *,
    window: tuple[slice, slice] | None = None,
    checked: bool = False,
) -> np.ndarray:
    """Brush: the pixels of ``stroke`` (bool ``(H, W)``) now belong to ``item``.

    ``item`` may be one past the largest id, which creates a new item. ``window``:
    ``stroke`` is only that window of the picture's mask (:func:`stroke_mask`'s with the
    same window) and the map outside it stays. ``checked=True``: ``labels`` is a map
    :func:`check_labels` already accepted and ``item`` an id it may take, so the
    whole-map checks are skipped.
    """
    if not checked:
        labels = check_labels(labels)
    window, stroke = _check_window(labels, stroke, window, "brush stroke")
    if not checked:
        n = int(labels.max()) + 1
        if not isinstance(item, (int, np.integer)) or item < 0 or item > n:
            raise ItemError(f"There is no item {item}; this picture has items 0 to {n - 1}.")
    out = labels.copy()
    out[window][stroke] = item
    return out


def erase(
    labels: np.ndarray,
    stroke: np.ndarray,
    item: int,
    *,
    window: tuple[slice, slice] | None = None,
    checked: bool = False,
) -> np.ndarray:
    """Eraser: the pixels of ``item`` under ``stroke`` go to the nearest pixel of another item.

    ``window`` and ``checked`` as for :func:`paint`. The nearest pixel is looked for in
    windows around the erased pixels only (grown until they must hold it), so the work
    follows the stroke, not the picture; the result is the whole-picture answer.
    """
    if not checked:
        labels = check_labels(labels)
    window, stroke = _check_window(labels, stroke, window, "eraser stroke")
    if not checked:
        _check_item(labels, item)
    holes = stroke & (labels[window] == item)
    out = labels.copy()
    box = bounding_window(holes, 0)
    if box is None:
        return out
    rows, cols = window
    box = (
        slice(box[0].start + rows.start, box[0].stop + rows.start),
        slice(box[1].start + cols.start, box[1].stop + cols.start),
    )
    _fill_near(
        out,
        box,
        lambda at: _embed(holes, window, at),
        lambda at: labels[at] != item,  # the holes are item's own pixels: never donors
        f"Item {item} covers the whole picture; there is nothing to give pixels to.",
    )
    return out


def merge_items(labels: np.ndarray, keep: int, other: int) -> np.ndarray:
    """Merge item ``other`` into item ``keep``; ``other`` is left with no pixels."""
    labels = check_labels(labels)
    _check_item(labels, keep)
    _check_item(labels, other)
    if keep == other:
        raise ItemError(f"Item {keep} cannot be merged with itself.")
    out = labels.copy()
    out[labels == other] = keep
    return out


def _check_counted(areas: np.ndarray, item: int) -> None:
    """:func:`_check_item` on the map whose pixels per id are ``areas``."""
    held = np.flatnonzero(areas)
    n = int(held[-1]) + 1 if held.size else 0
    if not isinstance(item, (int, np.integer)) or item < 0 or item >= n:
        raise ItemError(f"There is no item {item}; this picture has items 0 to {n - 1}.")
    if areas[item] == 0:
        raise ItemError(f"Item {item} has no pixels left, so there is nothing to edit.")


# Pixels of the map relabelled at a time by merge_many (a few hundred kB: stays in cache)
_LUT_PIXELS = 1 << 16


def merge_many(
    labels: np.ndarray, keep: int, others: Sequence[int], areas: np.ndarray | None = None
) -> np.ndarray:
    """Merge every item of ``others`` into ``keep``: :func:`merge_items` once per item, in
    order (the same result and the same refusals), in one pass over the map.

    ``areas``: the map's pixels per id (:func:`item_areas`, at least ``labels.max() + 1``
    of them), when the caller has them: ``labels`` is then taken as a map
    :func:`check_labels` already accepted, and nothing is counted again.
    """
    if areas is None:
        labels = check_labels(labels)
        areas = item_areas(labels)
    left = np.array(areas, dtype=np.int64)
    for other in others:  # the checks merge_items makes, on the pixel counts as they go
        _check_counted(left, keep)
        _check_counted(left, other)
        if keep == other:
            raise ItemError(f"Item {keep} cannot be merged with itself.")
        left[keep] += left[other]
        left[other] = 0
    lut = np.arange(len(left), dtype=np.int32)
    lut[list(others)] = keep
    out = np.empty(labels.shape, np.int32)
    flat, into = np.asarray(labels).reshape(-1), out.reshape(-1)
    for start in range(0, flat.size, _LUT_PIXELS):
        part = slice(start, start + _LUT_PIXELS)
        np.take(lut, flat[part], out=into[part], mode="clip")
    return out


def relabel_compact(labels: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """Renumber items so ids are ``0..K'-1`` with no empty id, keeping their order.

    Returns the new label map and ``kept``, the old id of each new id (so a caller can
    carry names and tokens along: ``new_names = [names[i] for i in kept]``).
    """
    labels = check_labels(labels)
    kept, inverse = np.unique(labels, return_inverse=True)
    return inverse.reshape(labels.shape).astype(np.int32), [int(k) for k in kept]
