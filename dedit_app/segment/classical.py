"""The weights-free default backend: colour-and-edge items, and GrabCut clicks.

Works on a fresh machine with numpy, scipy and plain OpenCV (no contrib modules, no
downloads). Everything runs on small working copies, so the cost hardly depends on the
photo's size:

* :meth:`ClassicalSegmenter.set_image` makes a 1024 px copy and finds the items on a
  512 px copy: edge-preserving smoothing, SLIC superpixels, greedy region merging
  (:mod:`dedit_app.segment.superpixels`), fragments folded into their neighbours. This is
  the expensive part (about a second), done once per photo like SAM's image embedding.
* :meth:`~ClassicalSegmenter.segment_auto` returns those items at full size: each item's
  indicator is interpolated and every pixel takes the strongest, so borders are smooth
  rather than blocky.
* :meth:`~ClassicalSegmenter.segment_click` runs OpenCV GrabCut on a window of the 1024 px
  copy scaled to about 256 px. The window and GrabCut's first guess of the item come from
  the items under the positive clicks (minus those under negative ones), or from the box;
  GrabCut then learns the item's and its surroundings' colours and cuts along edges. The
  result is interpolated back to full size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from dedit_app.errors import SegmentationError
from dedit_app.jobs import CancelToken, Job, Progress, run_job
from dedit_app.partition import fill_from_nearest, relabel_compact
from dedit_app.segment.base import (
    Segmentation,
    Segmenter,
    check_image,
    unique_names,
)
from dedit_app.segment.masks import small_fragments, upsample_labels, upsample_mask
from dedit_app.segment.naming import describe_items
from dedit_app.segment.superpixels import MergeConfig, gradient_magnitude, merge_regions, slic

__all__ = ["ClassicalConfig", "ClassicalSegmenter"]


@dataclass(frozen=True)
class ClassicalConfig:
    """Knobs of the classical backend (defaults tuned on photos around one megapixel)."""

    auto_side: int = 512  # long side of the copy automatic segmentation works on
    superpixels: int = 700  # about how many SLIC superpixels before merging
    compactness: float = 12.0  # SLIC: higher gives squarer superpixels
    merge: MergeConfig = field(default_factory=MergeConfig)
    # Weight of lightness against colour when merging (1 = plain CIELAB distance). Lower
    # values forgive shading but also merge a white table into a cream wall.
    lightness_weight: float = 1.0
    # Pieces of an item smaller than this fraction of the picture join their neighbour.
    fragment_fraction: float = 0.002
    precompute: bool = True  # find the items in set_image (else on first use)
    copy_side: int = 1024  # long side of the copy click windows are cut from
    click_side: int = 256  # long side GrabCut runs at
    grabcut_iterations: int = 3
    seed_radius: float = 0.015  # radius of a click's sure disk, x long side of the window
    window_margin: float = 0.25  # a click window is the seed's box grown by this, each side


def _resize_long(image: np.ndarray, side: int) -> np.ndarray:
    h, w = image.shape[:2]
    s = side / max(h, w)
    if s >= 1:
        return image.copy()
    size = (max(round(w * s), 1), max(round(h * s), 1))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


class ClassicalSegmenter(Segmenter):
    """Colour/edge items and GrabCut clicks; no weights needed. See the module docstring."""

    name = "classical"

    def __init__(self, config: ClassicalConfig | None = None) -> None:
        super().__init__()
        self.config = config or ClassicalConfig()
        self._image: np.ndarray | None = None
        self._items: np.ndarray | None = None  # item map on the auto_side copy
        self._names: list[str] = []
        self._auto: Segmentation | None = None

    def set_image(self, image: np.ndarray) -> None:
        """Bind to a photo ``(H, W, 3)`` uint8 RGB; finds its items unless
        ``config.precompute`` is off (about a second on CPU, whatever the photo's size)."""
        image = check_image(image)
        self._image = image
        self._size = image.shape[:2]
        self._items, self._names, self._auto = None, [], None
        # Made once: a click must not pay for resizing a 16 MP photo.
        self._copy = _resize_long(image, self.config.copy_side)
        if self.config.precompute:
            run_job(self._find_items())

    # ---------------------------------------------------------------- automatic items

    def _find_items(self, cancel: CancelToken | None = None) -> Job[None]:
        """Items on the ``auto_side`` copy -> ``self._items`` (biggest first), names."""
        cancel = cancel or CancelToken()
        cfg = self.config
        total = 4
        small = _resize_long(self._copy, cfg.auto_side)
        lab = cv2.cvtColor(
            cv2.bilateralFilter(small, 9, 30, 5).astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab
        )
        yield Progress(1, total, "superpixels")
        cancel.raise_if_cancelled()
        sp = slic(lab, cfg.superpixels, cfg.compactness)
        yield Progress(2, total, "merging")
        cancel.raise_if_cancelled()
        lab[..., 0] *= cfg.lightness_weight
        grad = gradient_magnitude(cv2.GaussianBlur(lab, (0, 0), 1.0))
        merged = merge_regions(sp, lab, grad, cfg.merge)
        yield Progress(3, total, "cleaning up")
        cancel.raise_if_cancelled()
        min_area = max(int(cfg.fragment_fraction * merged.size), 1)
        holes = small_fragments(merged, min_area)
        if holes.all():
            holes &= merged != np.bincount(merged.ravel()).argmax()
        merged, _ = relabel_compact(fill_from_nearest(merged, holes))
        areas = np.bincount(merged.ravel())
        rank = np.empty(len(areas), dtype=np.int32)
        rank[np.argsort(-areas, kind="stable")] = np.arange(len(areas), dtype=np.int32)
        self._items = rank[merged]
        self._names = unique_names(describe_items(self._items, small))

    def segment_auto_job(
        self, text: str | None = None, cancel: CancelToken | None = None
    ) -> Job[Segmentation]:
        h, w = self._require_image()
        if text is not None and text.strip():
            raise SegmentationError(
                "The classical segmenter cannot search for items by text; clear the text or "
                "choose the grounded-sam backend."
            )
        if self._auto is None:
            if self._items is None:
                yield from self._find_items(cancel)
            labels = upsample_labels(self._items, (h, w))
            # An item can vanish when upsampled; renumber by a lookup table (np.unique
            # would sort all 16 M pixels of a big photo).
            present = np.flatnonzero(np.bincount(labels.ravel(), minlength=len(self._names)))
            if len(present) < len(self._names):
                lut = np.zeros(len(self._names), dtype=np.int32)
                lut[present] = np.arange(len(present), dtype=np.int32)
                labels = lut[labels]
            names = [self._names[k] for k in present]
            self._auto = Segmentation(labels, names, [float("nan")] * len(names))
        yield Progress(1, 1, "done")
        return Segmentation(self._auto.labels.copy(), list(self._auto.names), self._auto.scores)

    # ---------------------------------------------------------------- clicks

    def segment_click(
        self,
        points: np.ndarray | Sequence[Sequence[float]] | None,
        point_labels: np.ndarray | Sequence[int] | None = None,
        box: Sequence[float] | np.ndarray | None = None,
    ) -> np.ndarray:
        (h, w), pts, lab, bx = self._checked_prompt(points, point_labels, box)
        if self._items is None:
            run_job(self._find_items())
        ch, cw = self._copy.shape[:2]
        to_copy = np.array([cw / w, ch / h])
        # Clicks and box in the copy's pixel-edge coordinates (a pixel centre is at i + 0.5).
        cpts = (pts + 0.5) * to_copy
        cbox = None if bx is None else (bx + 0.5) * np.tile(to_copy, 2)
        seed = self._seed(cpts, lab) if cbox is None else None
        if cbox is not None:
            x0, y0, x1, y1 = cbox
            mx, my = 0.15 * (x1 - x0) + 4, 0.15 * (y1 - y0) + 4
            window = (x0 - mx, y0 - my, x1 + mx, y1 + my)
        else:
            window = self._seed_window(seed, cpts)
        fg, win = self._grabcut(cpts, lab, cbox, seed, window)
        if not fg.any():
            raise SegmentationError(
                "Nothing stands out from its surroundings inside that box; click on the item "
                "as well."
            )
        # Window edges in the copy -> full resolution.
        wx0, wy0, wx1, wy1 = win
        X0, Y0 = round(wx0 * w / cw), round(wy0 * h / ch)
        X1, Y1 = min(round(wx1 * w / cw), w), min(round(wy1 * h / ch), h)
        out = np.zeros((h, w), dtype=bool)
        out[Y0:Y1, X0:X1] = upsample_mask(fg, (Y1 - Y0, X1 - X0))
        return out

    def _seed(self, cpts: np.ndarray, lab: np.ndarray) -> np.ndarray:
        """GrabCut's first guess for clicks without a box, on the items map: the items
        under the positive clicks."""
        items = self._items
        s = items.shape[1] / self._copy.shape[1]
        ih, iw = items.shape
        at = [int(items[min(int(y * s), ih - 1), min(int(x * s), iw - 1)]) for x, y in cpts]
        pos = {k for k, kind in zip(at, lab) if kind == 1}
        return np.isin(items, sorted(pos))

    def _seed_window(self, seed: np.ndarray, cpts: np.ndarray) -> tuple[float, ...]:
        """The part of the copy GrabCut looks at for a click: the seed and the clicks, grown
        on every side. GrabCut models the background from this window, so it learns the
        item's surroundings rather than every colour in the photo."""
        s = self._copy.shape[1] / seed.shape[1]
        ys, xs = np.nonzero(seed)
        x0 = min(xs.min() * s if len(xs) else np.inf, cpts[:, 0].min())
        x1 = max((xs.max() + 1) * s if len(xs) else -np.inf, cpts[:, 0].max())
        y0 = min(ys.min() * s if len(ys) else np.inf, cpts[:, 1].min())
        y1 = max((ys.max() + 1) * s if len(ys) else -np.inf, cpts[:, 1].max())
        g = self.config.window_margin
        gx, gy = g * (x1 - x0) + 8, g * (y1 - y0) + 8
        return (x0 - gx, y0 - gy, x1 + gx, y1 + gy)

    def _grabcut(
        self,
        cpts: np.ndarray,
        lab: np.ndarray,
        cbox: np.ndarray | None,
        seed: np.ndarray | None,
        window: tuple[float, ...],
    ) -> tuple[np.ndarray, tuple[int, int, int, int]]:
        """GrabCut inside ``window`` (copy coordinates).

        Returns the item at the working size and the window as integer copy-pixel edges
        ``(x0, y0, x1, y1)``.
        """
        cfg = self.config
        ch, cw = self._copy.shape[:2]
        wx0, wy0 = int(max(np.floor(window[0]), 0)), int(max(np.floor(window[1]), 0))
        wx1, wy1 = int(min(np.ceil(window[2]), cw)), int(min(np.ceil(window[3]), ch))
        small = _resize_long(self._copy[wy0:wy1, wx0:wx1], cfg.click_side)
        sh, sw = small.shape[:2]
        sx, sy = sw / (wx1 - wx0), sh / (wy1 - wy0)

        def to_small(x: float, y: float) -> tuple[int, int]:
            u, v = (x - wx0) * sx - 0.5, (y - wy0) * sy - 0.5
            return int(np.clip(round(u), 0, sw - 1)), int(np.clip(round(v), 0, sh - 1))

        mask = np.full((sh, sw), cv2.GC_PR_BGD, dtype=np.uint8)
        if cbox is not None:
            # Outside the box is surely not the item.
            x0, y0 = to_small(cbox[0], cbox[1])
            x1, y1 = to_small(cbox[2], cbox[3])
            mask[:] = cv2.GC_BGD
            mask[y0 : y1 + 1, x0 : x1 + 1] = cv2.GC_PR_FGD
        elif seed is not None and seed.any():
            s = seed.shape[1] / cw
            part = seed[
                int(wy0 * s) : max(int(np.ceil(wy1 * s)), int(wy0 * s) + 1),
                int(wx0 * s) : max(int(np.ceil(wx1 * s)), int(wx0 * s) + 1),
            ]
            part = cv2.resize(part.astype(np.uint8), (sw, sh), interpolation=cv2.INTER_NEAREST)
            mask[part > 0] = cv2.GC_PR_FGD
        small_pts = [to_small(x, y) for x, y in cpts]
        radius = max(int(round(cfg.seed_radius * max(sh, sw))), 1)
        for (u, v), kind in zip(small_pts, lab):
            cv2.circle(mask, (u, v), radius, cv2.GC_FGD if kind == 1 else cv2.GC_BGD, -1)
        guess = (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)
        if guess.all():
            # GrabCut must see some background to learn from; the window's rim is the
            # best guess when everything else was claimed.
            rim = np.ones_like(guess)
            rim[1:-1, 1:-1] = False
            mask[rim & (mask == cv2.GC_PR_FGD)] = cv2.GC_PR_BGD
        win = (wx0, wy0, wx1, wy1)
        if not guess.any() or guess.all():
            return guess, win
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        cut = mask.copy()
        cv2.grabCut(small, cut, None, bgd, fgd, cfg.grabcut_iterations, cv2.GC_INIT_WITH_MASK)
        fg = (cut == cv2.GC_FGD) | (cut == cv2.GC_PR_FGD)
        # Keep the pieces that hold a positive click (or, with only a box, every piece):
        # a click means "this object", not "everything of this colour".
        positives = [p for p, kind in zip(small_pts, lab) if kind == 1]
        if positives:
            _, comp = cv2.connectedComponents(fg.astype(np.uint8), connectivity=8)
            keep = {int(comp[v, u]) for u, v in positives} - {0}
            fg = np.isin(comp, sorted(keep))
        # GrabCut can collapse onto the click when the item's colours also fill its
        # surroundings; the items under the clicks are then the better answer. (A box is
        # only an upper bound, so a small answer inside it is fine.)
        if cbox is None and fg.sum() < 0.25 * guess.sum():
            fg = guess
        return fg, win
