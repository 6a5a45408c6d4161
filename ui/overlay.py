"""Item overlays rendered in screen space from the label map with a colour table.

The canvas never builds a full-resolution overlay. For each repaint it samples the label map
once per *viewport* pixel (nearest, at pixel centres; device pixels on a high-density
screen, where a logical pixel is 2 x 2 of them), looks the samples up in a premultiplied
ARGB32 table, and marks item boundaries where neighbouring samples differ. The cost is
proportional to the viewport (about 1.5 million pixels), not to the photo, so a 4096 x 4096
photo with 30 items redraws as fast as a small one, and outlines stay one logical pixel wide
at every zoom. Hover and selection only change the table.

numpy and OpenCV: no Qt here, so the benchmark and tests can call it directly.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import cv2
import numpy as np

# Hand-picked hues that stay distinguishable on photos and on the dark theme; beyond them
# colours continue around the hue circle by the golden angle.
_BASE_COLOURS = [
    (255, 99, 132),  # rose
    (54, 162, 235),  # sky
    (255, 206, 86),  # sun
    (75, 192, 130),  # mint
    (153, 102, 255),  # violet
    (255, 159, 64),  # orange
    (0, 200, 220),  # cyan
    (230, 90, 220),  # magenta
    (160, 210, 60),  # lime
    (120, 140, 255),  # periwinkle
    (240, 120, 90),  # coral
    (60, 220, 180),  # aqua
]


def item_colours(n: int) -> np.ndarray:
    """``(n, 3)`` uint8 RGB colours, stable per item id (item k always gets row k)."""
    out = np.zeros((max(n, 0), 3), np.uint8)
    for k in range(n):
        if k < len(_BASE_COLOURS):
            out[k] = _BASE_COLOURS[k]
        else:
            hue = (k * 0.618033988749895) % 1.0
            r, g, b = colorsys.hsv_to_rgb(hue, 0.65, 0.95)
            out[k] = (round(r * 255), round(g * 255), round(b * 255))
    return out


def _argb(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Straight (not premultiplied) ARGB32 words: Qt's ``QRgb`` and ``QImage.Format_ARGB32``."""
    a8 = np.rint(np.clip(alpha, 0.0, 1.0) * 255).astype(np.uint32)
    c = rgb.astype(np.uint32)
    return (a8 << 24) | (c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]


@dataclass(frozen=True)
class OverlayStyle:
    """How strongly items are drawn; alphas are 0..1."""

    fill: float = 0.14  # every item's tint: light, so the photo stays readable
    hover_fill: float = 0.3  # the item under the cursor
    selected_fill: float = 0.3  # selected items (their white outline does the rest)
    outline: float = 0.9  # item boundaries in the item's colour
    selected_outline: tuple[int, int, int] = (255, 255, 255)
    unselected_fill: float = 0.06  # other items while something is selected: focus


@dataclass(frozen=True)
class Tables:
    """Lookup tables indexed by item id: straight ARGB32 ``uint32`` words (``QRgb``)."""

    fill: np.ndarray  # (K,)
    line: np.ndarray  # (K,)
    selected: np.ndarray  # (K,) bool
    selected_line: int  # one ARGB word


def build_tables(
    n_items: int,
    *,
    style: OverlayStyle = OverlayStyle(),
    selected: tuple[int, ...] = (),
    hover: int | None = None,
    hidden: bool = False,
) -> Tables:
    """The colour tables for ``n_items`` items with the given selection and hover.

    ``hidden`` turns fills off (outlines of the selection stay, so the user keeps context).
    """
    rgb = item_colours(n_items)
    sel = np.zeros(n_items, bool)
    for k in selected:
        if 0 <= k < n_items:
            sel[k] = True
    base = style.unselected_fill if sel.any() else style.fill
    fill_a = np.full(n_items, 0.0 if hidden else base)
    if not hidden:
        if hover is not None and 0 <= hover < n_items:
            fill_a[hover] = style.hover_fill
        fill_a[sel] = style.selected_fill
    line_a = np.full(n_items, 0.0 if hidden else style.outline)
    white = np.array([style.selected_outline], np.uint8)
    return Tables(
        fill=_argb(rgb, fill_a),
        line=_argb(rgb, line_a),
        selected=sel,
        selected_line=int(_argb(white, np.array([1.0]))[0]),
    )


def sample_indices(length: int, first: float, step: float, count: int) -> np.ndarray:
    """Source pixel index under each of ``count`` screen pixels.

    Screen pixel ``i`` has its centre at source coordinate ``first + (i + 0.5) * step``
    (``first`` = source coordinate of the left/top screen edge, ``step`` = source pixels per
    screen pixel). Returns int64 indices, ``-1`` where the centre falls outside ``0..length``.
    """
    pos = first + (np.arange(count, dtype=np.float64) + 0.5) * step
    idx = np.floor(pos).astype(np.int64)
    idx[(idx < 0) | (idx >= length)] = -1
    return idx


def sample_labels(labels: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Nearest-sample ``labels`` at ``rows`` x ``cols`` (both valid, non-negative indices).

    ``(len(rows), len(cols))`` of the labels' dtype. Gathers rows first (contiguous copies),
    then columns; ``np.take`` is several times faster than fancy indexing here.
    """
    return np.take(np.take(labels, rows, axis=0), cols, axis=1)


def compact_labels(labels: np.ndarray, top: int | None = None) -> np.ndarray:
    """The smallest unsigned dtype that holds the map (uint8 for up to 256 items): sampling
    moves a quarter of the bytes of int32. ``top``: a bound on the largest id, when known
    (a document's item count: finding the max of a 24 MP map takes 6 ms). Cache the
    result per label-map version."""
    if top is None:
        top = int(labels.max()) if labels.size else 0
    dtype = np.uint8 if top < 256 else np.uint16 if top < 65536 else np.int32
    return labels.astype(dtype, copy=False)


def render_codes(
    sampled: np.ndarray, tables: Tables, width: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Classify every sampled pixel; returns ``(codes (h, w), table)`` with the pixel colours
    ``table[codes]`` (straight ARGB32).

    A pixel is an outline pixel when its ``(width + 1)`` square block (itself, and the
    ``width`` pixels right, below and diagonally) holds more than one item: a line
    ``width`` pixels wide in the item's colour. Pixels within ``width`` pixels of the
    selection's border (both sides) get the selection colour: a line twice as wide.
    ``width`` is the screen's device pixels per logical pixel, rounded (2 on a Retina
    screen), so lines keep their weight there while following the photo's edges to the
    device pixel. With up to 127 items and uint8 samples the codes are uint8 and
    ``table`` has 256 entries, so the canvas hands them to Qt as an indexed image and
    never builds an RGBA array itself.
    """
    width = max(int(width), 1)
    if sampled.dtype == np.uint8 and len(tables.fill) <= 127:
        return _codes_u8(sampled, tables, width)
    return _codes_numpy(sampled, tables, width)


def render(
    sampled: np.ndarray, tables: Tables, *, outlines: bool = True, width: int = 1
) -> np.ndarray:
    """Screen-space overlay of sampled labels ``(h, w)`` -> ``(h, w)`` uint32 straight ARGB32
    (``width``: as in :func:`render_codes`)."""
    if not outlines:
        return np.take(tables.fill, sampled)
    codes, table = render_codes(sampled, tables, width)
    return np.take(table, codes)


def _codes_u8(sampled: np.ndarray, tables: Tables, width: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV's SIMD morphology does the work: item k -> k, its outline -> 128 + k,
    selection outline -> 255."""
    k = len(tables.fill)
    table = np.zeros(256, np.uint32)
    table[:k] = tables.fill
    table[128 : 128 + k] = tables.line
    table[255] = tables.selected_line
    if sampled.size == 0:
        return sampled.copy(), table
    block = np.ones((width + 1, width + 1), np.uint8)
    grad = cv2.morphologyEx(sampled, cv2.MORPH_GRADIENT, block, anchor=(0, 0))
    codes = cv2.add(sampled, cv2.threshold(grad, 0, 128, cv2.THRESH_BINARY)[1])
    if tables.selected.any():
        sel = np.zeros(256, np.uint8)
        sel[:k] = tables.selected
        around = np.ones((2 * width + 1, 2 * width + 1), np.uint8)
        band = cv2.morphologyEx(cv2.LUT(sampled, sel), cv2.MORPH_GRADIENT, around)
        codes = cv2.max(codes, cv2.threshold(band, 0, 255, cv2.THRESH_BINARY)[1])
    return codes, table


def _grow(mask: np.ndarray, by: int) -> np.ndarray:
    """``mask`` grown by ``by`` pixels in the 8 directions (a square dilation)."""
    out = mask.copy()
    for _ in range(by):
        grown = out.copy()
        grown[1:, :] |= out[:-1, :]
        grown[:-1, :] |= out[1:, :]
        rows = grown.copy()
        grown[:, 1:] |= rows[:, :-1]
        grown[:, :-1] |= rows[:, 1:]
        out = grown
    return out


def _codes_numpy(
    sampled: np.ndarray, tables: Tables, width: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Any number of items: codes k, K + k, 2K (same picture as :func:`_codes_u8`)."""
    k = len(tables.fill)
    table = np.concatenate([tables.fill, tables.line, [np.uint32(tables.selected_line)]])
    codes = sampled.astype(np.int32)
    edge = np.zeros(sampled.shape, bool)
    h, w = sampled.shape
    for dy in range(min(width, h - 1) + 1):  # another item within the block: an outline
        for dx in range(min(width, w - 1) + 1):
            edge[: h - dy, : w - dx] |= sampled[dy:, dx:] != sampled[: h - dy, : w - dx]
    codes[edge] += k
    if tables.selected.any():
        sel = np.take(tables.selected, sampled)
        codes[_grow(sel, width) & _grow(~sel, width)] = 2 * k
    return codes, table


def view_window(
    shape: tuple[int, int], *, origin: tuple[float, float], scale: float, size: tuple[int, int]
) -> tuple[tuple[int, int], np.ndarray, np.ndarray]:
    """Which label pixels a viewport shows.

    ``shape`` is the label map's ``(H, W)``; ``origin`` the screen position ``(x, y)`` of
    image corner (0, 0); ``scale`` screen px per image px; ``size`` the viewport
    ``(width, height)``. Returns ``((x, y), rows, cols)``: the screen position of the block
    the photo covers and the label row/column under each of its pixels (empty if none).
    """
    vw, vh = size
    hgt, wid = shape
    step = 1.0 / scale
    cols = sample_indices(wid, -origin[0] * step, step, vw)
    rows = sample_indices(hgt, -origin[1] * step, step, vh)
    xs = np.nonzero(cols >= 0)[0]
    ys = np.nonzero(rows >= 0)[0]
    if xs.size == 0 or ys.size == 0:
        return (0, 0), rows[:0], cols[:0]
    return (int(xs[0]), int(ys[0])), rows[ys[0] : ys[-1] + 1], cols[xs[0] : xs[-1] + 1]


def render_view(
    labels: np.ndarray,
    tables: Tables,
    *,
    origin: tuple[float, float],
    scale: float,
    size: tuple[int, int],
    outlines: bool = True,
) -> tuple[tuple[int, int], np.ndarray]:
    """Overlay (straight ARGB32 ``(h, w)`` uint32) of the part of the viewport the photo
    covers, and where to draw it; arguments as in :func:`view_window`."""
    pos, rows, cols = view_window(labels.shape, origin=origin, scale=scale, size=size)
    if rows.size == 0:
        return pos, np.zeros((0, 0), np.uint32)
    return pos, render(sample_labels(labels, rows, cols), tables, outlines=outlines)
