"""Render a segmentation as a PNG for the docs: tinted items, outlines, numbers, a legend.

    python scripts/render_partition.py IMAGE -o OUT.png [--backend classical] [--text "bag. table"]
                                       [--option key=value ...] [--width 512]

The picture is segmented with the chosen backend (``dedit_app.segment.get_backend``) and drawn
twice, side by side: the photo with item outlines, and the items in flat colours, both with
each item's number at its most interior point; a legend on the right lists ``number: name``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dedit_app.imageio import load_image, save_image  # noqa: E402
from dedit_app.segment import get_backend  # noqa: E402

# Kelly's colours of maximum contrast (white and black left out): neighbours in the list
# look different, so neighbouring item numbers do too.
_KELLY = [
    (255, 179, 0), (128, 62, 117), (255, 104, 0), (166, 189, 215), (193, 0, 32),
    (206, 162, 98), (0, 125, 52), (246, 118, 142), (0, 83, 138), (255, 122, 92),
    (83, 55, 122), (147, 170, 0), (179, 40, 81), (244, 200, 0), (127, 24, 13),
    (129, 112, 102), (89, 51, 21), (241, 58, 19), (35, 44, 22), (255, 142, 0),
]  # fmt: skip


def palette(k: int) -> np.ndarray:
    """``(k, 3)`` uint8 RGB colours, distinct for up to 20 items, then repeating."""
    return np.array([_KELLY[i % len(_KELLY)] for i in range(k)], dtype=np.uint8).reshape(-1, 3)


def _numbers(canvas: np.ndarray, lab: np.ndarray, k: int) -> None:
    """Write each item's number at its most interior pixel (always inside the item)."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    for i in range(k):
        m = (lab == i).astype(np.uint8)
        if not m.any():
            continue
        d = cv2.distanceTransform(np.pad(m, 1), cv2.DIST_L2, 3)[1:-1, 1:-1]
        y, x = np.unravel_index(int(d.argmax()), d.shape)
        text = str(i)
        (tw, th), _ = cv2.getTextSize(text, font, 0.7, 2)
        org = (int(x - tw / 2), int(y + th / 2))
        cv2.putText(canvas, text, org, font, 0.7, (0, 0, 0), 5, cv2.LINE_AA)
        cv2.putText(canvas, text, org, font, 0.7, (255, 255, 255), 2, cv2.LINE_AA)


def render(image: np.ndarray, labels: np.ndarray, names: list[str], width: int = 512) -> np.ndarray:
    """Three panels side by side as one ``(h, w', 3)`` uint8 RGB image: the photo with item
    outlines and numbers, the items in flat colours, and a legend ``number: name``.
    ``width`` is the width of each picture panel."""
    h, w = labels.shape
    size = (width, max(round(h * width / w), 1))
    img = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    lab = cv2.resize(labels.astype(np.int32), size, interpolation=cv2.INTER_NEAREST)
    k = len(names)
    colours = palette(k)
    edge = np.zeros(lab.shape, bool)
    edge[:, 1:] |= lab[:, 1:] != lab[:, :-1]
    edge[1:, :] |= lab[1:, :] != lab[:-1, :]
    edge = cv2.dilate(edge.astype(np.uint8), np.ones((2, 2), np.uint8)).astype(bool)
    photo = img.copy()
    photo[edge] = (255, 255, 255)
    flat = colours[lab]
    flat[edge] = (255, 255, 255)
    _numbers(photo, lab, k)
    _numbers(flat, lab, k)
    font = cv2.FONT_HERSHEY_SIMPLEX
    line = 24
    legend = np.full((max(size[1], line * k + 20), 300, 3), 255, np.uint8)
    for i, name in enumerate(names):
        y = 20 + i * line
        cv2.rectangle(legend, (10, y - 14), (28, y + 4), tuple(int(c) for c in colours[i]), -1)
        cv2.putText(legend, f"{i}: {name}"[:32], (36, y), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    gap = 8
    canvas = np.full((legend.shape[0], 2 * size[0] + 2 * gap + legend.shape[1], 3), 255, np.uint8)
    canvas[: size[1], : size[0]] = photo
    canvas[: size[1], size[0] + gap : 2 * size[0] + gap] = flat
    canvas[:, 2 * size[0] + 2 * gap :] = legend
    return canvas


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image")
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--backend", default="classical")
    parser.add_argument("--text", default=None)
    parser.add_argument("--option", action="append", default=[], help="backend option k=v")
    parser.add_argument("--width", type=int, default=512, help="width of each panel")
    args = parser.parse_args(argv)
    options = dict(o.split("=", 1) for o in args.option)
    image = load_image(args.image)
    seg = get_backend(args.backend, **options)
    t0 = time.perf_counter()
    seg.set_image(image)
    result = seg.segment_auto(args.text)
    took = time.perf_counter() - t0
    save_image(args.output, render(image, result.labels, result.names, args.width))
    print(f"{len(result.names)} items in {took:.2f} s -> {args.output}")
    for i, name in enumerate(result.names):
        print(f"  {i}: {name} ({(result.labels == i).mean() * 100:.1f}%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
