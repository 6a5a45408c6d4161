"""Remove and move on the D-Edit authors' example, ours beside a dense-distance reference.

The reference reassigns vacated pixels the way the paper's code does: a dense matrix of
squared distances from every vacated pixel to every boundary pixel of the items that may
receive them, then an argmin per row. It is run at a size where it fits (256²); at 1024²
its memory is estimated from the same formula, since it would need tens of gigabytes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from benchmarks import refine
from benchmarks.common import Row, guarded, measure, with_ratios
from dedit_app.partition import item_bbox, move_item, remove_item

REFERENCE = Path(
    os.environ.get(
        "DEDIT_REFERENCE_DIR",
        Path(__file__).resolve().parents[3] / "shared" / "reference" / "dedit-example1",
    )
)


def _example_labels() -> np.ndarray:
    path = REFERENCE / "labels.npz"
    if path.exists():
        with np.load(path) as data:
            return data["edited"].astype(np.int32)
    # Without the example, a synthetic scene of the same layout keeps the benchmark running.
    labels = np.full((1024, 1024), 3, np.int32)
    labels[800:] = 1
    labels[:, 250:800] = np.where(labels[:, 250:800] == 3, 2, labels[:, 250:800])
    labels[313:872, 160:591] = 0
    return labels


def _resize(labels: np.ndarray, side: int) -> np.ndarray:
    return cv2.resize(labels, (side, side), interpolation=cv2.INTER_NEAREST_EXACT)


def _dense_fill(labels: np.ndarray, holes: np.ndarray, donors: np.ndarray) -> np.ndarray:
    """The reference formulation: dense hole x boundary-donor distance matrix."""
    # Donor pixels on the donor region's boundary are the only possible nearest ones.
    inner = cv2.erode(donors.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    edge = donors & ~inner
    hy, hx = np.nonzero(holes)
    ey, ex = np.nonzero(edge)
    d2 = (hy[:, None] - ey[None, :]) ** 2 + (hx[:, None] - ex[None, :]) ** 2
    nearest = d2.argmin(axis=1)
    out = labels.copy()
    out[hy, hx] = labels[ey[nearest], ex[nearest]]
    return out


def _dense_bytes(holes: np.ndarray, donors: np.ndarray) -> float:
    inner = cv2.erode(donors.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    n_edge = int((donors & ~inner).sum())
    # Three int64 matrices live at once: dy², dx² and their sum.
    return 3 * 8 * int(holes.sum()) * n_edge


def _ref_remove(labels: np.ndarray, item: int) -> np.ndarray:
    holes = labels == item
    return _dense_fill(labels, holes, ~holes)


def _ref_move(labels: np.ndarray, item: int, dx: float, dy: float, scale: float) -> np.ndarray:
    # Same transform as ours (shared geometry), then dense reassignment of vacated pixels.
    ours = move_item(labels, item, dx, dy, scale)
    src, now = labels == item, ours == item
    out = np.where(now, item, np.where(src, -1, labels)).astype(np.int32)
    holes = out == -1
    return _dense_fill(out, holes, ~holes & ~now)


def _move_args(labels: np.ndarray) -> tuple[float, float, float]:
    """The published move (shift (200, 140), half size) at this resolution, centre-anchored."""
    f = labels.shape[1] / 1024
    x0, y0, x1, y1 = item_bbox(labels, 0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return 200 * f - 0.5 * cx, 140 * f - 0.5 * cy, 0.5


def run(profile: str) -> Iterator[Row]:
    yield from guarded("partition", lambda: _rows(profile))
    # merging, brushing and erasing on a large map (benchmarks.refine)
    yield from guarded("refine", lambda: refine.rows(profile))


def _rows(profile: str) -> list[Row]:
    base = _example_labels()
    rows: list[Row] = []
    repeats = 3 if profile == "quick" else 7

    small = _resize(base, 256)
    dx, dy, s = _move_args(small)
    cases = [
        ("remove item 0", lambda: remove_item(small, 0), lambda: _ref_remove(small, 0)),
        (
            "move item 0",
            lambda: move_item(small, 0, dx, dy, s),
            lambda: _ref_move(small, 0, dx, dy, s),
        ),
    ]
    for name, ours_fn, ref_fn in cases:
        agree = float((ours_fn() == ref_fn()).mean())
        t_o, m_o = measure(ours_fn, repeats)
        t_r, m_r = measure(ref_fn, repeats)
        rows += with_ratios(
            Row(f"{name} @256²", "ours (EDT)", t_o, m_o, note=f"agree {agree:.4%}"),
            Row(f"{name} @256²", "dense reference", t_r, m_r),
        )

    for side in (1024, 4096):
        labels = base if side == 1024 else _resize(base, side)
        dx, dy, s = _move_args(labels)
        for name, fn in [
            ("remove item 0", lambda lab=labels: remove_item(lab, 0)),
            ("move item 0", lambda lab=labels, a=(dx, dy, s): move_item(lab, 0, *a)),
        ]:
            # At 4096² a call takes about a second: the quick profile (2 minutes in all)
            # times one, unwarmed.
            big = side == 4096
            reps = (1 if profile == "quick" else 2) if big else repeats
            t, m = measure(fn, reps, warmup=0 if big and profile == "quick" else 1)
            rows.append(Row(f"{name} @{side}²", "ours (EDT)", t, m))
        holes = labels == 0
        est = _dense_bytes(holes, ~holes) / 2**20
        rows.append(
            Row(f"remove item 0 @{side}²", "dense reference", None, est, note="estimated; not run")
        )
    return rows
