"""The jobs the editor runs on its worker thread, as immutable requests.

Each task is a frozen dataclass whose ``run(context, cancel)`` calls the engine and returns
its result, or returns the engine's generator (``dedit_app.jobs`` protocol) so the worker
can report progress. Arrays in a request are read-only views: the document may move on
while the job runs, and the job must see the picture as it was when it was asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dedit_app.jobs import CancelToken, Progress
from dedit_app.partition import item_areas
from ui.document import know_areas
from ui.worker import WorkerContext


def readonly(array: np.ndarray) -> np.ndarray:
    view = np.asarray(array).view()
    view.flags.writeable = False
    return view


TEXT_BACKENDS = ("grounded-sam",)  # backends that find items from a text like "bag. table"


def segmenter_options(
    name: str, sam_checkpoint: str = "", grounding_model: str = "", device: str = "auto"
) -> dict:
    """The keyword options ``get_backend(name, **options)`` takes for the chosen backend."""
    options: dict[str, Any] = {}
    if name in ("sam", "grounded-sam"):
        if sam_checkpoint:
            options["checkpoint"] = sam_checkpoint
        if device and device != "auto":
            options["device"] = device
    if name == "grounded-sam" and grounding_model:
        options["model"] = grounding_model
    return options


def _segmenter(ctx: WorkerContext, backend: str, options: tuple, image_key: Any, image):
    """The cached segmenter for ``backend``, with ``image`` set once per picture."""
    from dedit_app.segment import get_backend

    seg = ctx.get(
        "segmenter", lambda: get_backend(backend, **dict(options)), version=(backend, options)
    )
    if ctx.cache.get("segmenter-image", (None,))[0] != image_key:
        ctx.cache.pop("segmenter-image", None)
        seg.set_image(image)
        ctx.cache["segmenter-image"] = (image_key, True)
    return seg


@dataclass(frozen=True)
class SegmentAuto:
    """Split a picture into items with the configured backend -> ``Segmentation``."""

    image: np.ndarray = field(repr=False)  # (H, W, 3) uint8, read-only
    image_key: Any  # identifies the picture, so a segmenter embeds it only once
    backend: str = "classical"
    options: tuple = ()  # sorted (key, value) pairs for get_backend
    text: str | None = None  # "bag. table" for text-driven backends

    @property
    def needs_model(self) -> bool:
        """False for the weights-free segmenter: it runs beside a preparation or edit
        (:class:`ui.worker.JobQueue`), not queued behind it."""
        return self.backend != "classical"

    def run(self, ctx: WorkerContext, cancel: CancelToken):
        yield Progress(0, 1, stage="Finding items", message="Loading the segmenter")
        seg = _segmenter(ctx, self.backend, self.options, self.image_key, self.image)
        cancel.raise_if_cancelled()
        found = yield from seg.segment_auto_job(self.text or None, cancel)
        # The items list shows each item's share: counted here, on the worker, not when
        # the items land on the UI thread (90 ms for a 24 MP map).
        know_areas(found.labels, item_areas(found.labels, len(found.names)))
        return found


@dataclass(frozen=True)
class SegmentClick:
    """One click-to-segment query -> bool mask ``(H, W)``."""

    image: np.ndarray = field(repr=False)
    image_key: Any
    points: tuple[tuple[float, float], ...]  # (x, y) pixel centres
    point_labels: tuple[int, ...]  # 1 = include, 0 = exclude
    backend: str = "classical"
    options: tuple = ()

    @property
    def needs_model(self) -> bool:
        return self.backend != "classical"  # as SegmentAuto's

    def run(self, ctx: WorkerContext, cancel: CancelToken) -> np.ndarray:
        seg = _segmenter(ctx, self.backend, self.options, self.image_key, self.image)
        cancel.raise_if_cancelled()
        pts = np.asarray(self.points, dtype=np.float64).reshape(-1, 2)
        return np.asarray(seg.segment_click(pts, np.asarray(self.point_labels)), dtype=bool)
