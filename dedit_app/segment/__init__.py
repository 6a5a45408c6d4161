"""Segmentation backends: a photo in, a label map covering every pixel plus item names out.

    from dedit_app.segment import get_backend, list_backends
    seg = get_backend("classical")          # or "sam", "grounded-sam"
    seg.set_image(image)                    # (H, W, 3) uint8 RGB, once per photo
    result = seg.segment_auto()             # Segmentation(labels (H, W) int32, names)
    mask = seg.segment_click([(x, y)], [1]) # (H, W) bool, x right, y down, pixels

See :mod:`dedit_app.segment.base` for the interface and conventions and docs/SEGMENTATION.md
for the backends.
"""

from dedit_app.segment.base import Segmentation, Segmenter, pick_device
from dedit_app.segment.registry import (
    DEFAULT_BACKEND,
    BackendInfo,
    backend_status,
    get_backend,
    list_backends,
    parse_options,
)

__all__ = [
    "DEFAULT_BACKEND",
    "BackendInfo",
    "Segmentation",
    "Segmenter",
    "backend_status",
    "get_backend",
    "list_backends",
    "parse_options",
    "pick_device",
]
