"""Weights-free over-segmentation: SLIC superpixels, then greedy region merging.

Everything here runs on a small working copy of the photo (a few hundred pixels a side) with
numpy, scipy and plain OpenCV; no learned weights.

* :func:`slic` is SLIC (Achanta et al. 2012) vectorised over the 3x3 neighbourhood of grid
  cells: each pixel compares itself only with the centres seeded in its own and the eight
  surrounding cells, so one iteration is nine array passes.
* :func:`merge_regions` builds the region adjacency graph and repeatedly merges the cheapest
  pair of neighbours. The cost of a pair is Ward's increase in squared colour error,
  ``n_a n_b / (n_a + n_b) * |mean_a - mean_b|^2``, scaled up by how strong the image edge
  along their shared border is: two pieces of one shaded wall differ little and share a weak
  border; a bag and a dress differ a lot and share a strong one. Merging stops when the
  cheapest merge costs more than ``threshold`` (relative to the picture's size) and the
  number of regions is at most ``max_regions``; tiny regions are always merged.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = ["MergeConfig", "merge_regions", "slic"]


def slic(
    lab: np.ndarray, n_segments: int = 600, compactness: float = 10.0, iterations: int = 6
) -> np.ndarray:
    """SLIC superpixels of a colour image.

    Args:
        lab: ``(H, W, C)`` float32 image, ideally CIELAB with L in 0..100.
        n_segments: about how many superpixels.
        compactness: weight of distance in space against distance in colour (higher gives
            squarer superpixels).
        iterations: k-means iterations.
    Returns:
        ``(H, W)`` int32 labels ``0..S-1`` (some ids may be unused).
    """
    h, w, c = lab.shape
    step = max(int(np.sqrt(h * w / n_segments)), 2)
    gh, gw = -(-h // step), -(-w // step)
    # Centres: colour, y, x of each grid cell; seeded at cell centres.
    ys = np.minimum((np.arange(gh) + 0.5) * step, h - 1)
    xs = np.minimum((np.arange(gw) + 0.5) * step, w - 1)
    cy, cx = np.meshgrid(ys, xs, indexing="ij")
    cy, cx = cy.ravel(), cx.ravel()
    ccol = lab[cy.astype(int), cx.astype(int)].astype(np.float64)

    yy, xx = np.mgrid[0:h, 0:w]
    cell_y, cell_x = yy // step, xx // step
    # The nine candidate centres of every pixel (clipped at the grid border).
    cand = []
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            gy = np.clip(cell_y + dy, 0, gh - 1)
            gx = np.clip(cell_x + dx, 0, gw - 1)
            cand.append(gy * gw + gx)
    cand = np.stack(cand)  # (9, H, W)
    spatial = (compactness / step) ** 2
    flat = lab.reshape(-1, c).astype(np.float64)
    yf, xf = yy.ravel().astype(np.float64), xx.ravel().astype(np.float64)
    labels = cand[4]
    for _ in range(iterations):
        best = np.full((h, w), np.inf, dtype=np.float32)
        labels = cand[4].copy()
        for k in range(9):
            idx = cand[k]
            d = ((lab - ccol[idx].astype(np.float32)) ** 2).sum(axis=2)
            d += spatial * ((yy - cy[idx]) ** 2 + (xx - cx[idx]) ** 2).astype(np.float32)
            better = d < best
            best[better] = d[better]
            labels[better] = idx[better]
        lf = labels.ravel()
        count = np.bincount(lf, minlength=len(cy))
        ok = count > 0
        for j in range(c):
            ccol[ok, j] = np.bincount(lf, flat[:, j], len(cy))[ok] / count[ok]
        cy[ok] = np.bincount(lf, yf, len(cy))[ok] / count[ok]
        cx[ok] = np.bincount(lf, xf, len(cy))[ok] / count[ok]
    return labels.astype(np.int32)


@dataclass(frozen=True)
class MergeConfig:
    """How far region merging goes."""

    # Stop when the cheapest merge costs more than this; the cost is Ward's squared-colour
    # increase divided by the picture's pixel count, so the threshold does not depend on
    # resolution. Larger -> fewer, bigger items.
    threshold: float = 12.0
    # How much an edge along the shared border raises the cost: cost *= 1 + edge_weight *
    # mean gradient magnitude on the border (gradient in Lab units per pixel).
    edge_weight: float = 0.2
    # Regions smaller than this fraction of the picture are always merged.
    min_fraction: float = 0.004
    # Never more regions than this, never fewer than min_regions (unless the picture has
    # fewer distinct regions).
    max_regions: int = 24
    min_regions: int = 3


def _adjacency(labels: np.ndarray, grad: np.ndarray) -> dict[tuple[int, int], list[float]]:
    """Shared border of every pair of touching regions: ``{(a, b): [length, grad sum]}``."""
    pairs: dict[tuple[int, int], list[float]] = {}
    for a, b, g in (
        (labels[:, :-1], labels[:, 1:], (grad[:, :-1] + grad[:, 1:]) / 2),
        (labels[:-1, :], labels[1:, :], (grad[:-1, :] + grad[1:, :]) / 2),
    ):
        diff = a != b
        lo = np.minimum(a[diff], b[diff]).astype(np.int64)
        hi = np.maximum(a[diff], b[diff]).astype(np.int64)
        key = lo * (int(labels.max()) + 1) + hi
        uniq, inv = np.unique(key, return_inverse=True)
        length = np.bincount(inv)
        gsum = np.bincount(inv, g[diff])
        n = int(labels.max()) + 1
        for k, ln, gs in zip(uniq.tolist(), length.tolist(), gsum.tolist()):
            e = pairs.setdefault((k // n, k % n), [0.0, 0.0])
            e[0] += ln
            e[1] += gs
    return pairs


def merge_regions(
    labels: np.ndarray, lab: np.ndarray, grad: np.ndarray, config: MergeConfig = MergeConfig()
) -> np.ndarray:
    """Greedily merge adjacent regions of ``labels``; see the module docstring.

    Args:
        labels: ``(H, W)`` int region ids (e.g. superpixels).
        lab: ``(H, W, C)`` float colour image the costs are measured in.
        grad: ``(H, W)`` float edge strength.
    Returns:
        ``(H, W)`` int32 merged region ids (not compacted).
    """
    h, w, c = lab.shape
    total = float(h * w)
    flat = labels.ravel()
    n = int(flat.max()) + 1
    count = np.bincount(flat, minlength=n).astype(np.float64)
    sums = np.stack([np.bincount(flat, lab[..., j].ravel(), n) for j in range(c)], axis=1)
    edges = _adjacency(labels, grad)
    nbrs: dict[int, dict[int, list[float]]] = {i: {} for i in range(n) if count[i] > 0}
    for (a, b), e in edges.items():
        nbrs[a][b] = e
        nbrs[b][a] = e
    parent = np.arange(n)
    version = np.zeros(n, dtype=np.int64)
    min_px = config.min_fraction * total

    def cost(a: int, b: int) -> float:
        na, nb = count[a], count[b]
        d2 = float(((sums[a] / na - sums[b] / nb) ** 2).sum())
        ward = na * nb / (na + nb) * d2 / total
        length, gsum = nbrs[a][b]
        ward *= 1.0 + config.edge_weight * gsum / max(length, 1.0)
        # A tiny region merges before anything else, into its most similar neighbour.
        if min(na, nb) < min_px:
            ward -= 1e9
        return ward

    heap = [(cost(a, b), a, b, 0, 0) for (a, b) in edges]
    heapq.heapify(heap)
    alive = len(nbrs)
    while heap and alive > config.min_regions:
        cst, a, b, va, vb = heapq.heappop(heap)
        if version[a] != va or version[b] != vb or parent[a] != a or parent[b] != b:
            continue
        if cst > config.threshold and alive <= config.max_regions:
            break
        # Merge b into a.
        if count[b] > count[a]:
            a, b = b, a
        parent[b] = a
        count[a] += count[b]
        sums[a] += sums[b]
        for k, e in nbrs.pop(b).items():
            del nbrs[k][b]
            if k == a:
                continue
            if k in nbrs[a]:
                nbrs[a][k][0] += e[0]
                nbrs[a][k][1] += e[1]
            else:
                nbrs[a][k] = list(e)
                nbrs[k][a] = nbrs[a][k]
            nbrs[k][a] = nbrs[a][k]
        version[a] += 1
        alive -= 1
        for k in nbrs[a]:
            lo, hi = (a, k) if a < k else (k, a)
            heapq.heappush(heap, (cost(lo, hi), lo, hi, version[lo], version[hi]))
    # Follow parents to the root of every region.
    root = parent.copy()
    while True:
        nxt = root[root]
        if np.array_equal(nxt, root):
            break
        root = nxt
    return root[labels].astype(np.int32)


def gradient_magnitude(lab: np.ndarray) -> np.ndarray:
    """``(H, W)`` float32 colour edge strength: the norm of the per-channel Sobel gradients."""
    g = np.zeros(lab.shape[:2], dtype=np.float32)
    for j in range(lab.shape[2]):
        gx = ndimage.sobel(lab[..., j], axis=1)
        gy = ndimage.sobel(lab[..., j], axis=0)
        g += gx * gx + gy * gy
    return np.sqrt(g) / 8.0  # Sobel's kernel sums to 8: per-pixel units
