"""The segmenter interface every backend implements, and the checks they share.

Modelled on segment-anything's ``SamPredictor``: :meth:`Segmenter.set_image` once per photo
(the backend caches whatever is expensive: an image embedding, a downscaled copy,
superpixels), then any number of :meth:`Segmenter.segment_auto` and
:meth:`Segmenter.segment_click` calls against that photo.

Conventions (the whole engine's): images are ``(H, W, 3)`` uint8 RGB; label maps are
``(H, W)`` int32 with values ``0..K-1``; points are ``(x, y)`` in pixels of the photo set with
``set_image``, x = column (right), y = row (down), pixel centres at integer coordinates, so a
click anywhere on the picture lies in ``[-0.5, W - 0.5] x [-0.5, H - 0.5]``; boxes are
``(x0, y0, x1, y1)`` in the same coordinates, corner to corner.
"""

from __future__ import annotations

import abc
import dataclasses
import importlib.util
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np

from dedit_app.errors import SegmentationError, SegmenterUnavailable
from dedit_app.jobs import CancelToken, Job, run_job

T = TypeVar("T")

__all__ = [
    "Segmentation",
    "Segmenter",
    "check_box",
    "check_image",
    "check_option_names",
    "check_points",
    "config_from_options",
    "device_problem",
    "installed",
    "option_value",
    "pick_device",
    "require_prompt",
    "unique_names",
]


@dataclass
class Segmentation:
    """A partition of the photo into named items.

    Attributes:
        labels: ``(H, W)`` int32; every pixel belongs to exactly one item ``0..K-1`` and every
            item owns at least one pixel.
        names: ``K`` short names, one per item, unique (``"handbag"``, ``"handbag 2"``).
        scores: optional ``K`` confidences in ``[0, 1]`` (``nan`` where a backend has none,
            for example the leftover background item).
    """

    labels: np.ndarray
    names: list[str]
    scores: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.labels = np.ascontiguousarray(self.labels, dtype=np.int32)
        k = int(self.labels.max()) + 1 if self.labels.size else 0
        if len(self.names) != k:
            raise ValueError(f"{len(self.names)} names for {k} items")

    @property
    def num_items(self) -> int:
        return len(self.names)


def check_image(image: np.ndarray) -> np.ndarray:
    """Validate an ``(H, W, 3)`` uint8 RGB photo and return it C-contiguous."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise SegmentationError(
            f"Segmentation needs an RGB photo of 8-bit pixels (H, W, 3); "
            f"got an array of shape {image.shape} and type {image.dtype}."
        )
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise SegmentationError(
            f"The picture is only {image.shape[1]}x{image.shape[0]} pixels; there is nothing to "
            "segment."
        )
    return np.ascontiguousarray(image)


def check_points(
    points: np.ndarray | Sequence[Sequence[float]] | None,
    point_labels: np.ndarray | Sequence[int] | None,
    size: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """Validate clicks against a ``(H, W)`` picture.

    Returns ``points`` as ``(N, 2)`` float64 ``(x, y)`` clipped to pixel centres inside the
    picture and ``point_labels`` as ``(N,)`` int64 (1 = on the item, 0 = not on it; all 1
    when ``point_labels`` is None). ``N`` may be 0.
    """
    h, w = size
    pts = np.zeros((0, 2)) if points is None else np.asarray(points, dtype=np.float64)
    if pts.size == 0:
        pts = np.zeros((0, 2))
    if pts.ndim == 1 and pts.shape[0] == 2:
        pts = pts[None]
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise SegmentationError(
            f"Clicks must be a list of (x, y) positions; got an array of shape {pts.shape}."
        )
    if not np.isfinite(pts).all():
        raise SegmentationError("A click position is not a finite number of pixels.")
    if point_labels is None:
        lab = np.ones(len(pts), dtype=np.int64)
    else:
        lab = np.asarray(point_labels).reshape(-1)
        if len(lab) != len(pts):
            raise SegmentationError(
                f"There are {len(pts)} clicks but {len(lab)} click kinds (1 = on the item, "
                "0 = not on it); give one per click."
            )
        if not np.isin(lab, (0, 1)).all():
            raise SegmentationError(
                "Each click must be marked 1 (on the item) or 0 (not on the item)."
            )
        lab = lab.astype(np.int64)
    for x, y in pts:
        if not (-0.5 <= x <= w - 0.5 and -0.5 <= y <= h - 0.5):
            raise SegmentationError(
                f"The click at ({x:g}, {y:g}) is outside the picture, which is {w}x{h} pixels."
            )
    pts = np.stack([np.clip(pts[:, 0], 0, w - 1), np.clip(pts[:, 1], 0, h - 1)], axis=1)
    return pts, lab


def check_box(box: Sequence[float] | np.ndarray | None, size: tuple[int, int]) -> np.ndarray | None:
    """Validate a box ``(x0, y0, x1, y1)`` against a ``(H, W)`` picture.

    The corners may come in any order and may stick out of the picture; the box is clipped
    to it. Returns float64 ``[x0, y0, x1, y1]`` with ``x0 < x1``, ``y0 < y1``, or None.
    Raises SegmentationError when the box is empty, degenerate or entirely outside.
    """
    if box is None:
        return None
    b = np.asarray(box, dtype=np.float64).reshape(-1)
    if b.shape != (4,) or not np.isfinite(b).all():
        raise SegmentationError(
            "A box must be four finite numbers (x0, y0, x1, y1) in pixels; "
            f"got {np.asarray(box).tolist()}."
        )
    h, w = size
    x0, x1 = sorted((b[0], b[2]))
    y0, y1 = sorted((b[1], b[3]))
    cx0, cx1 = max(x0, -0.5), min(x1, w - 0.5)
    cy0, cy1 = max(y0, -0.5), min(y1, h - 0.5)
    # A box thinner than one pixel encloses no pixel centre: nothing to segment inside it.
    if x1 - x0 < 1 or y1 - y0 < 1:
        raise SegmentationError(
            f"The box ({b[0]:g}, {b[1]:g}, {b[2]:g}, {b[3]:g}) is empty; drag a box at least a "
            "pixel wide and tall around the item."
        )
    if cx1 - cx0 < 1 or cy1 - cy0 < 1:
        raise SegmentationError(
            f"The box ({b[0]:g}, {b[1]:g}, {b[2]:g}, {b[3]:g}) lies outside the picture, "
            f"which is {w}x{h} pixels."
        )
    return np.array([cx0, cy0, cx1, cy1])


def unique_names(names: Sequence[str]) -> list[str]:
    """Make names unique in order: ``["bag", "bag", "wall"] -> ["bag", "bag 2", "wall"]``."""
    out: list[str] = []
    used: set[str] = set()
    for name in names:
        name = name.strip() or "item"
        candidate, n = name, 1
        while candidate in used:
            n += 1
            candidate = f"{name} {n}"
        used.add(candidate)
        out.append(candidate)
    return out


def config_from_options(cls: type[T], options: dict[str, object], also: Sequence[str] = ()) -> T:
    """Build the dataclass ``cls`` from options that may arrive as strings (the command
    line's ``--option key=value``, saved settings): numbers and booleans are converted to
    the field's type; an unknown option is an error that lists the known ones (``also``:
    the backend's own options beside the dataclass's, listed first)."""
    known = [f.name for f in dataclasses.fields(cls)]
    check_option_names(options, [*also, *known])
    defaults = cls()
    values = {
        key: option_value(key, value, type(getattr(defaults, key)))
        for key, value in options.items()
    }
    return cls(**values)


def check_option_names(options: dict[str, object], known: Sequence[str]) -> None:
    """SegmentationError listing the ``known`` options when ``options`` has another."""
    bad = sorted(set(options) - set(known))
    if bad:
        which = "option" if len(bad) == 1 else "options"
        raise SegmentationError(
            f"There is no segmentation {which} {', '.join(bad)}; the options are "
            f"{', '.join(known)}."
        )


_KIND_WORDS = {bool: "true or false", int: "whole number", float: "number"}


def option_value(key: str, value: object, kind: type) -> object:
    """``value`` as a ``kind`` (bool, int or float), converted from text where it is text;
    SegmentationError in words when it cannot be."""
    if isinstance(value, kind) and not (kind is float and isinstance(value, bool)):
        return value
    try:
        if kind is bool:
            text = str(value).strip().lower()
            if text not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ValueError(value)
            return text in ("1", "true", "yes", "on")
        if kind is int:
            number = float(value)  # type: ignore[arg-type]
            if not number.is_integer():
                raise ValueError(value)
            return int(number)
        if kind is float:
            return float(value)  # type: ignore[arg-type]
        raise TypeError(kind)
    except (TypeError, ValueError, OverflowError) as err:
        words = _KIND_WORDS.get(kind, kind.__name__)
        article = "" if kind is bool else "a "
        raise SegmentationError(
            f"The segmentation option {key} must be {article}{words}; got {value!r}."
        ) from err


def installed(package: str, *inside: str) -> bool:
    """Is ``package`` installed, with the folder ``inside`` (e.g. ``"models",
    "grounding_dino"``) in it? Imports nothing: the status checks behind the Settings dialog
    run on the UI thread, and importing torch or transformers there freezes it for seconds.
    """
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):  # ValueError: a module without a spec
        return False
    if spec is None:
        return False
    if not inside:
        return True
    return any(Path(root, *inside).is_dir() for root in spec.submodule_search_locations or ())


def device_problem(device: object) -> str:
    """Why ``device`` cannot be used, in a sentence, or "" when it may; torch is asked only
    when it is already imported (the editor loads it ahead), so this stays quick."""
    if not str(device or "").startswith("cuda") or "torch" not in sys.modules:
        return ""
    if sys.modules["torch"].cuda.is_available():
        return ""
    return f"The device {device!r} was asked for but this machine has no usable CUDA GPU."


def pick_device(device: str | None = None) -> str:
    """The torch device to run on: ``device`` if given, else CUDA, else MPS, else CPU."""
    import torch

    if device not in (None, "", "auto"):
        if problem := device_problem(device):
            raise SegmenterUnavailable(problem)
        return str(device)
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


class Segmenter(abc.ABC):
    """A segmentation backend bound to one photo at a time.

    Call :meth:`set_image` once per photo, then :meth:`segment_auto` and
    :meth:`segment_click` as often as needed. Backends are not thread-safe: the editor's one
    worker thread owns them.
    """

    #: registry name of the backend ("classical", "sam", "grounded-sam")
    name: str = ""

    def __init__(self) -> None:
        self._size: tuple[int, int] | None = None

    @property
    def image_size(self) -> tuple[int, int] | None:
        """``(H, W)`` of the photo set with :meth:`set_image`, or None."""
        return self._size

    def _require_image(self) -> tuple[int, int]:
        if self._size is None:
            raise SegmentationError(
                "No picture has been given to the segmenter yet; open a picture first."
            )
        return self._size

    def _checked_prompt(
        self,
        points: np.ndarray | Sequence[Sequence[float]] | None,
        point_labels: np.ndarray | Sequence[int] | None,
        box: Sequence[float] | np.ndarray | None,
    ) -> tuple[tuple[int, int], np.ndarray, np.ndarray, np.ndarray | None]:
        """Validate a click-segment request: ``((H, W), points (N, 2), labels (N,), box)``
        as :func:`check_points` and :func:`check_box` return them; SegmentationError with
        the user's sentence otherwise (no image, outside the picture, nothing to go on)."""
        size = self._require_image()
        pts, lab = check_points(points, point_labels, size)
        bx = check_box(box, size)
        require_prompt(pts, lab, bx)
        return size, pts, lab, bx

    @abc.abstractmethod
    def set_image(self, image: np.ndarray) -> None:
        """Bind the segmenter to a photo and precompute what every later call needs.

        Args:
            image: ``(H, W, 3)`` uint8 RGB.
        """

    @abc.abstractmethod
    def segment_auto_job(
        self, text: str | None = None, cancel: CancelToken | None = None
    ) -> Job[Segmentation]:
        """Partition the photo into items, as a job (yields Progress, returns Segmentation).

        Args:
            text: what to look for, as phrases separated by full stops
                (``"handbag. table. person"``), for backends that understand text; None
                finds items by themselves.
            cancel: honoured between steps.
        Raises:
            SegmentationError: no image set; text given to a backend that cannot read it;
                the text matched nothing (the caller keeps its partition unchanged).
        """

    def segment_auto(self, text: str | None = None) -> Segmentation:
        """Partition the photo into items; see :meth:`segment_auto_job`.

        Returns:
            :class:`Segmentation` whose ``labels`` are ``(H, W)`` int32 covering every pixel.
        """
        return run_job(self.segment_auto_job(text))

    @abc.abstractmethod
    def segment_click(
        self,
        points: np.ndarray | Sequence[Sequence[float]] | None,
        point_labels: np.ndarray | Sequence[int] | None = None,
        box: Sequence[float] | np.ndarray | None = None,
    ) -> np.ndarray:
        """The item under the user's clicks and/or box.

        Args:
            points: ``(N, 2)`` float ``(x, y)`` pixel positions in the photo (N may be 0
                when a box is given).
            point_labels: ``(N,)`` ints, 1 = on the item, 0 = not on it; None = all 1.
            box: ``(x0, y0, x1, y1)`` pixels around the item, or None.
        Returns:
            ``(H, W)`` bool mask of the item at the photo's full resolution.
        Raises:
            SegmentationError: no image set, a click outside the picture, an empty box, or
                no positive click and no box.
        """

    def release(self) -> None:  # noqa: B027 - optional hook, most backends hold no GPU memory
        """Free accelerator memory (for SDXL); the next call moves what it needs back."""


def require_prompt(pts: np.ndarray, lab: np.ndarray, box: np.ndarray | None) -> None:
    """A click-segment needs a positive click or a box to know which item is meant."""
    if box is None and not (lab == 1).any():
        raise SegmentationError(
            "Click on the item (or drag a box around it) first; clicks that only say where "
            "the item is not cannot pick one."
        )
