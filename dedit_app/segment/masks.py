"""Overlapping candidate masks -> one partition that covers every pixel.

Detectors (SAM's automatic masks, Grounding DINO boxes turned into masks) give masks that
overlap and leave gaps. An item partition can do neither, so:

1. overlaps: each pixel goes to the highest-scoring mask covering it (on equal scores the
   smaller mask, so a part drawn inside a whole is not erased by it);
2. gaps: pixels no mask covers become one "background" item;
3. fragments: every connected piece of an item smaller than ``min_area`` pixels (slivers
   left where masks overlapped, specks of background) goes to its nearest neighbouring item
   by Euclidean distance (:func:`dedit_app.partition.fill_from_nearest`);
4. items left with no pixels are dropped and the rest renumbered ``0..K-1`` in score order,
   background last.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from dedit_app.imageio import resize_labels
from dedit_app.partition import fill_from_nearest, relabel_compact
from dedit_app.segment.base import Segmentation, unique_names

__all__ = ["partition_from_masks", "small_fragments", "upsample_labels", "upsample_mask"]


def small_fragments(
    labels: np.ndarray, min_area: int, keep_largest: Sequence[int] = ()
) -> np.ndarray:
    """Pixels of connected pieces (8-connected, per item) smaller than ``min_area``.

    Args:
        labels: ``(H, W)`` int label map.
        min_area: pieces with fewer pixels than this are fragments.
        keep_largest: items whose largest piece is never a fragment, however small (an
            item the user asked for by name should not vanish for being small).
    Returns:
        ``(H, W)`` bool.
    """
    holes = np.zeros(labels.shape, dtype=bool)
    if min_area <= 1:
        return holes
    keep = set(int(k) for k in keep_largest)
    for item in np.unique(labels):
        mask = (labels == item).astype(np.uint8)
        n, comp, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        areas = stats[1:, cv2.CC_STAT_AREA]
        small = np.flatnonzero(areas < min_area) + 1
        if int(item) in keep and len(areas):
            small = small[small != int(np.argmax(areas)) + 1]
        if len(small):
            holes |= np.isin(comp, small)
    return holes


def partition_from_masks(
    masks: np.ndarray,
    scores: Sequence[float],
    names: Sequence[str],
    *,
    min_area: int,
    background_name: str = "background",
    keep_small_items: bool = False,
) -> tuple[Segmentation, list[int]]:
    """Resolve overlapping masks into a partition; see the module docstring.

    Args:
        masks: ``(M, H, W)`` bool candidate masks (M may be 0).
        scores: ``M`` confidences; higher wins an overlapping pixel.
        names: ``M`` item names.
        min_area: fragment size threshold in pixels.
        background_name: name of the item made of uncovered pixels.
        keep_small_items: never drop an item's largest piece (for named detections).
    Returns:
        ``(segmentation, sources)``: ``labels`` ``(H, W)`` int32 covering every pixel, and
        for each item the index of the mask it came from (-1 for the background).
    """
    masks = np.asarray(masks, dtype=bool)
    m = masks.shape[0]
    h, w = masks.shape[1:]
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(scores) != m or len(names) != m:
        raise ValueError("masks, scores and names must have the same length")
    areas = masks.reshape(m, h * w).sum(axis=1)
    # Paint the weakest first so stronger masks overwrite them; among equal scores the
    # larger first, so the smaller one ends up on top.
    order = np.lexsort((-areas, scores)) if m else np.zeros(0, dtype=np.int64)
    background = m
    labels = np.full((h, w), background, dtype=np.int32)
    for i in order:
        labels[masks[i]] = i
    keep_largest = range(m) if keep_small_items else ()
    holes = small_fragments(labels, min_area, keep_largest)
    if holes.all():
        # Everything is a fragment (a tiny picture): the biggest item keeps its pixels.
        holes &= labels != np.bincount(labels.ravel()).argmax()
    labels = fill_from_nearest(labels, holes)

    # Renumber in score order (strongest first), background last.
    rank = np.empty(m + 1, dtype=np.int32)
    by_score = np.lexsort((areas, -scores)) if m else np.zeros(0, dtype=np.int64)
    rank[by_score] = np.arange(m, dtype=np.int32)
    rank[background] = m
    labels, kept = relabel_compact(rank[labels])
    inverse = np.argsort(rank)  # rank -> original index
    all_names = list(names) + [background_name]
    all_scores = list(scores) + [float("nan")]
    out_names = [all_names[inverse[k]] for k in kept]
    out_scores = [float(all_scores[inverse[k]]) for k in kept]
    sources = [int(inverse[k]) if inverse[k] < m else -1 for k in kept]
    return Segmentation(labels, unique_names(out_names), out_scores), sources


def upsample_labels(
    labels: np.ndarray, size: tuple[int, int], smooth_side: int = 2048
) -> np.ndarray:
    """Bring a small ``(h, w)`` label map to ``size = (H, W)``.

    Up to ``smooth_side`` pixels on the long side, each item's indicator is interpolated
    bilinearly and every pixel takes the strongest, which gives smooth borders instead of the
    staircase of a nearest-neighbour resize; beyond that the result is enlarged by nearest
    sampling (steps of a pixel or two at that size cannot be seen, and the interpolation
    would cost a second per item on a 16 MP photo).
    """
    h, w = size
    if labels.shape == (h, w):
        return labels.astype(np.int32)
    s = min(smooth_side / max(h, w), 1.0)
    mh, mw = max(round(h * s), 1), max(round(w * s), 1)
    best = np.full((mh, mw), -1.0, dtype=np.float32)
    out = np.zeros((mh, mw), dtype=np.int32)
    for k in np.unique(labels):
        up = cv2.resize((labels == k).astype(np.float32), (mw, mh), interpolation=cv2.INTER_LINEAR)
        better = up > best
        best[better] = up[better]
        out[better] = k
    return out if (mh, mw) == (h, w) else resize_labels(out, (h, w))


def upsample_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling of a bool mask to ``size = (H, W)``, thresholded at one half."""
    h, w = size
    if mask.shape == (h, w):
        return mask.astype(bool)
    up = cv2.resize(mask.astype(np.uint8) * 255, (w, h), interpolation=cv2.INTER_LINEAR)
    return up >= 128
