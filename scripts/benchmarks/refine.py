"""Refining items by hand on a large photo, as the UI thread does it: merging 2 and 50
items, a brush stroke, an eraser stroke and a stroke that changes nothing.

Ours (``ui.document.Document``: one pass over the map for a merge, a stroke's mask,
paint, fill, pixel counts and "is anything left to redraw" kept to the stroke's window)
beside the whole-map formulation it replaced, run in the same process on the same
document: :class:`WholeMapDocument` below is the editor's document with the methods as
they were (a full-size stroke canvas, ``merge_items`` once per item, every function's
checks of the whole map, ``np.array_equal``, the counts and the redraw test over the
whole map). Each case times the action and what the editor reads right after it (what
is left to redraw, the items' pixel counts, the selected item's box); the step is undone
between calls, untimed. Both ways are checked to give the same item map.

    python scripts/bench.py partition --only refine [--quick | --full]

``--quick``: a 6-megapixel map (3000 x 2000); ``--full``: 24 megapixels (6000 x 4000).
"""

from __future__ import annotations

import os
import statistics
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.common import (  # noqa: E402
    Row,
    _returned_heap,
    _RssSampler,
    voronoi_labels,
    with_ratios,
)


def _whole_canvas_stroke(shape, points, radius) -> np.ndarray:
    """``partition.stroke_mask`` as it was: drawn on a canvas the size of the picture."""
    canvas = np.zeros(shape, dtype=np.uint8)
    pts = [(round(x * 16), round(y * 16)) for x, y in points]
    for p in pts:
        cv2.circle(canvas, p, max(round(radius * 16), 1), 1, -1, cv2.LINE_8, 4)
    for a, b in zip(pts, pts[1:]):
        cv2.line(canvas, a, b, 1, max(int(round(2 * radius)), 1), cv2.LINE_8, 4)
    return canvas.astype(bool)


def _whole_map_document():
    from dedit_app import partition
    from dedit_app.errors import ItemError
    from ui.document import Document

    class WholeMapDocument(Document):
        """The document with paint, erase, merge, bbox, reshaped and counts as they were."""

        def paint(self, points, radius, item):
            item = self._need_item(item)
            stroke = _whole_canvas_stroke(self.labels.shape, points, radius)
            labels = partition.paint(self.labels, stroke, item)
            if np.array_equal(labels, self.labels):
                return
            self.push(f"Brush {self.item_name(item)}", self.with_labels(labels), kind="brush")

        def erase(self, points, radius, item):
            item = self._need_item(item)
            if self.counts[item] == self.counts.sum():
                raise ItemError("covers the whole picture")
            stroke = _whole_canvas_stroke(self.labels.shape, points, radius)
            # partition.erase as it was: its checks, then fill_from_nearest's own
            labels = partition.check_labels(self.labels)
            partition._check_item(labels, item)
            holes = stroke & (labels == item)
            if holes.any() and not (labels != item).any():
                raise ItemError("covers the whole picture")
            labels = partition.fill_from_nearest(labels, holes, labels != item)
            if np.array_equal(labels, self.labels):
                return
            self.push(f"Erase {self.item_name(item)}", self.with_labels(labels), kind="erase")

        def merge(self, items):
            items = [self._need_item(i) for i in items]
            keep, labels = items[0], self.labels
            for other in items[1:]:
                labels = partition.merge_items(labels, keep, other)
            self.push("Merge", self.with_labels(labels), select_after=(keep,), kind="merge")

        def bbox(self, item):
            return self._cached(("bbox", item), lambda: partition.item_bbox(self.labels, item))

        @property
        def reshaped(self):
            key = ("reshaped", self.image_version, self.undo.index())

            def differs():
                drawn = self.drawn_labels()
                return drawn is not self.labels and bool((drawn != self.labels).any())

            return self._cached(key, differs)

        def _count(self):
            return partition.item_areas(self.labels, len(self.items))

    return WholeMapDocument


def rows(profile: str) -> list[Row]:
    from dedit_app.project import Project
    from ui.app import create_app
    from ui.document import Document

    create_app()
    height, width = (2000, 3000) if profile == "quick" else (4000, 6000)
    repeats = 3 if profile == "quick" else 5
    labels = voronoi_labels(height, width, 60)
    image = np.zeros((height, width, 3), np.uint8)
    names = [f"item {k}" for k in range(60)]
    docs = {
        "ours": Document(Project.new(image, labels, names)),
        "whole map (before)": _whole_map_document()(Project.new(image, labels, names)),
    }
    # The strokes: a drag of 40 points over about 900 pixels, brush radius 25, across
    # several items; and a small dab inside the largest item, painting it (changes nothing).
    t = np.linspace(0, 1, 40)
    drag = [(float(width * 0.3 + 700 * s), float(height * 0.4 + 300 * s * s)) for s in t]
    start = int(labels[int(drag[0][1]), int(drag[0][0])])
    by_area = [int(k) for k in np.argsort(-np.bincount(labels.ravel()))]
    big = by_area[0]
    inner = cv2.distanceTransform((labels == big).astype(np.uint8), cv2.DIST_L2, 5)
    cy, cx = np.unravel_index(int(np.argmax(inner)), inner.shape)
    inside = [(float(cx - 10), float(cy)), (float(cx + 10), float(cy))]  # the item's own
    cases = {
        "merge 2 items": lambda d: d.merge([by_area[1], by_area[2]]),
        "merge 50 items": lambda d: d.merge(by_area[:50]),
        "brush stroke": lambda d: d.paint(drag, 25.0, start),
        "eraser stroke": lambda d: d.erase(drag, 25.0, start),
        "stroke changing nothing": lambda d: d.paint(inside, 6.0, big),
    }
    out: list[Row] = []
    mp = f"{height * width / 1e6:.0f} MP"
    for case, act in cases.items():
        measured, results = {}, {}
        for name, doc in docs.items():

            def step(doc=doc, act=act):
                act(doc)
                doc.reshaped, doc.counts  # noqa: B018 - what the editor reads next
                if doc.selection:
                    doc.bbox(doc.selection[0])

            def reset(doc=doc):
                while doc.undo.index():
                    doc.undo.undo()
                doc.select([start])
                doc.reshaped, doc.counts  # noqa: B018 - as the editor had them before

            times = []
            for k in range(repeats + 1):  # the first warms up
                reset()
                t0 = time.perf_counter()
                step()
                if k:
                    times.append(time.perf_counter() - t0)
            reset()
            with _returned_heap(), _RssSampler() as s:
                step()
            results[name] = doc.labels
            measured[name] = (statistics.median(times), s.extra_mb)
            reset()
        same = np.array_equal(results["ours"], results["whole map (before)"])
        ours, before = (Row(f"{case} @{mp}", n, *measured[n]) for n in docs)
        ours.note = ("same map" if same else "MAPS DIFFER") + "; UI thread"
        out += with_ratios(ours, before)
    return out
