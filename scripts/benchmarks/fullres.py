"""The host's share of an edit at a photo's own resolution, ours beside the same formulas
computed over the whole frame (how this project did it before, and the natural way to
write them).

After the GPU's steps and decode, every edit finds the soft band around the edited region
(``partition.edit_regions``), its feather weights (``imageio.feather_weights``) and one
full-resolution composite per candidate (``imageio.composite``). On a 24-megapixel photo
done over the whole frame that took about 1.2 s plus 0.9 s per candidate on this 2-core
CPU, more than the GPU's share of a 1-second edit. Ours work in a window around the edited
region, and copy pixels with masked copies instead of boolean indexing.
"""

from __future__ import annotations

import cv2
import numpy as np

from benchmarks.common import Row, measure, with_ratios
from dedit_app.imageio import composite, feather_weights, resize_image
from dedit_app.partition import distance_to, edit_regions

EDGE = 24.0  # the editor's default soft band (SamplingOptions.edge)


def _whole_frame_regions(active: np.ndarray, edge: float) -> tuple[np.ndarray, np.ndarray]:
    soft = (distance_to(active) <= edge) & ~active
    return ~active & ~soft, soft


def _whole_frame_feather(keep: np.ndarray, width: float) -> np.ndarray:
    dist = cv2.distanceTransform(
        (~keep).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE, dstType=cv2.CV_32F
    )
    return np.minimum(dist / np.float32(width), np.float32(1.0))


def _whole_frame_composite(original, generated, keep, feather) -> np.ndarray:
    height, width = original.shape[:2]
    gen = resize_image(generated, (height, width))
    edit = ~keep
    out = original.copy()
    f = np.clip(feather[edit], 0.0, 1.0)[:, None]
    o = original[edit].astype(np.float32)
    g = gen[edit].astype(np.float32)
    out[edit] = np.clip(np.rint(o + f * (g - o)), 0, 255).astype(np.uint8)
    return out


def host_rows(height: int, width: int, candidates: int, repeats: int, case: str) -> list[Row]:
    """An item of a fifth of a ``height x width`` photo edited, ``candidates`` pictures
    decoded at SDXL's bucket for that aspect ratio: regions, feather and composites, ours
    beside the whole-frame formulas (results must agree)."""
    rng = np.random.default_rng(3)
    photo = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:height, 0:width]
    active = ((yy - 0.55 * height) / (0.3 * height)) ** 2 + (
        (xx - 0.45 * width) / (0.2 * width)
    ) ** 2 <= 1
    bucket = (1024, round(1024 * width / height / 64) * 64)
    gens = [rng.integers(0, 256, (*bucket, 3), dtype=np.uint8) for _ in range(candidates)]

    def ours():
        hard, _ = edit_regions(active, EDGE)
        feather = feather_weights(hard, EDGE)
        return [composite(photo, g, hard, feather) for g in gens]

    def whole_frame():
        hard, _ = _whole_frame_regions(active, EDGE)
        feather = _whole_frame_feather(hard, EDGE)
        return [_whole_frame_composite(photo, g, hard, feather) for g in gens]

    worst = max(
        int(np.abs(a.astype(int) - b).max()) for a, b in zip(ours(), whole_frame(), strict=True)
    )
    s, mb = measure(ours, repeats=repeats)
    rs, rmb = measure(whole_frame, repeats=repeats)
    label = f"{height * width / 1e6:.2g} MP, {candidates} pictures"
    return with_ratios(
        Row(case, f"{label}: ours (window)", s, mb,
            note=f"soft band, feather, composites; max pixel diff {worst}"),
        Row(case, f"{label}: whole frame", rs, rmb),
    )  # fmt: skip
