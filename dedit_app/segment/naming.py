"""Modest names for items found without a detector: colour and place ("blue, centre")."""

from __future__ import annotations

import colorsys

import numpy as np

__all__ = ["colour_name", "describe_items", "position_name"]

# Hue bands in degrees, upper bound exclusive; red wraps around 360.
_HUES = [
    (15, "red"),
    (40, "orange"),
    (70, "yellow"),
    (165, "green"),
    (195, "teal"),
    (255, "blue"),
    (290, "purple"),
    (345, "pink"),
    (361, "red"),
]


def colour_name(rgb: np.ndarray) -> str:
    """A plain colour word for a mean RGB colour (three numbers in 0..255)."""
    r, g, b = (float(v) / 255.0 for v in rgb)
    hue, sat, val = colorsys.rgb_to_hsv(r, g, b)
    hue *= 360.0
    if sat < 0.12 or val < 0.12:
        if val > 0.82:
            return "white"
        if val > 0.6:
            return "light grey"
        if val > 0.3:
            return "grey"
        return "black"
    word = next(name for top, name in _HUES if hue < top)
    if word in ("orange", "yellow", "red") and sat < 0.35 and val > 0.6:
        return "beige"
    if word in ("orange", "red") and val < 0.45:
        return "brown" if word == "orange" else "dark red"
    if val > 0.85 and sat < 0.4:
        return f"light {word}"
    if val < 0.35:
        return f"dark {word}"
    return word


def position_name(cx: float, cy: float) -> str:
    """Where a point lies in thirds of the picture; ``cx, cy`` are fractions in 0..1."""
    col = "left" if cx < 1 / 3 else ("right" if cx > 2 / 3 else "")
    row = "top" if cy < 1 / 3 else ("bottom" if cy > 2 / 3 else "")
    if row and col:
        return f"{row}-{col}"
    return row or col or "centre"


def describe_items(labels: np.ndarray, image: np.ndarray) -> list[str]:
    """``"<colour>, <place>"`` for every item ``0..K-1`` of ``labels`` (same size as
    ``image``), from its mean colour and its centroid."""
    h, w = labels.shape
    flat = labels.ravel()
    k = int(flat.max()) + 1
    count = np.maximum(np.bincount(flat, minlength=k), 1)
    rgb = (
        np.stack(
            [np.bincount(flat, image[..., j].ravel().astype(np.float64), k) for j in range(3)], 1
        )
        / count[:, None]
    )
    ys, xs = np.mgrid[0:h, 0:w]
    cy = np.bincount(flat, ys.ravel().astype(np.float64), k) / count / max(h - 1, 1)
    cx = np.bincount(flat, xs.ravel().astype(np.float64), k) / count / max(w - 1, 1)
    return [f"{colour_name(rgb[i])}, {position_name(cx[i], cy[i])}" for i in range(k)]
