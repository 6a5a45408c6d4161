"""What a joint preparation keeps of its reference photo: the item map and names its
tokens were learned for.

A swap needs the reference's items to be exactly those it was prepared with (the weights
name them by ``reference_key``, a hash of the photo and its item map). A reference opened
as a plain photo has its items found afresh each time, and another segmenter, other
segmentation settings or a newer version of one can split it differently: minutes of
preparation would then be useless. So the weights file carries the reference's map (PNG
bytes, as a uint8 tensor beside the learned ones), its item names, and a hash of its
pixels alone, and reopening the same photo takes its items from there.

Nothing here imports torch: the editor reads these on its UI thread.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from dedit_app.errors import DEditError
from dedit_app.imageio import png_bytes
from dedit_app.project import content_key, weights_metadata

__all__ = ["LABELS_TENSOR", "PreparedReference", "prepared_reference", "record"]

# The weights file's tensor holding the reference's item map as 16-bit PNG bytes; the
# loaders install only "text_encoder*", "unet." and "lora." tensors, so it is inert there.
LABELS_TENSOR = "reference.labels_png"


def record(
    image: np.ndarray, labels: np.ndarray, names: tuple[str, ...]
) -> tuple[np.ndarray, dict[str, str]]:
    """What to keep of a reference: its ``(H, W)`` item map as PNG bytes (a 1-D uint8
    array, for the weights file's tensors) and the metadata entries (its item names and
    its pixels' :func:`~dedit_app.project.content_key`)."""
    encoded = np.frombuffer(png_bytes(np.asarray(labels).astype(np.uint16)), np.uint8).copy()
    metadata = {"reference_names": json.dumps(list(names)), "reference_image": content_key(image)}
    return encoded, metadata


@dataclass(frozen=True)
class PreparedReference:
    """The reference photo a project was prepared with: ``image_key`` the
    :func:`~dedit_app.project.content_key` of its pixels, ``labels`` its ``(H, W)`` int32
    item map, ``names`` one per item."""

    image_key: str
    labels: np.ndarray
    names: tuple[str, ...]

    def fits(self, image: np.ndarray) -> bool:
        """True when ``image`` is that photo (same size and pixels)."""
        return image.shape[:2] == self.labels.shape and content_key(image) == self.image_key


def prepared_reference(project, of: np.ndarray | None = None) -> PreparedReference | None:
    """The reference ``project`` was prepared with, from its weights; None when it was
    prepared alone, not prepared, prepared before references were kept, or the record is
    unreadable (the swap then says to prepare again, as it did before). ``of``: only when
    it is this ``(H, W, 3)`` picture (its size, and the pixels' hash, told before the kept
    map is read: a 24 MP map takes a few tenths of a second to decode)."""
    from safetensors import SafetensorError

    try:
        metadata = weights_metadata(project)
        if "reference_image" not in metadata:
            return None
        if of is not None and content_key(of) != metadata["reference_image"]:
            return None
        names = tuple(str(n) for n in json.loads(metadata["reference_names"]))
        encoded = _labels_bytes(project)
    except (DEditError, ValueError, KeyError, TypeError, OSError, SafetensorError):
        return None
    pixels = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED) if encoded.size else None
    if pixels is None or pixels.ndim != 2 or int(pixels.max(initial=0)) >= len(names):
        return None
    if of is not None and pixels.shape != of.shape[:2]:
        return None
    return PreparedReference(metadata["reference_image"], pixels.astype(np.int32), names)


def _labels_bytes(project) -> np.ndarray:
    """The PNG bytes of the kept item map, from weights not yet saved or from the file."""
    if project.pending_weights is not None:
        # stored, not saved yet (the job's own torch tensors): newer than any saved file
        tensor: Any = project.pending_weights[0][LABELS_TENSOR]
        return np.asarray(tensor.cpu().numpy() if hasattr(tensor, "cpu") else tensor, np.uint8)
    from safetensors import safe_open

    with safe_open(str(project.folder / project.training["weights"]), framework="numpy") as f:
        return np.asarray(f.get_tensor(LABELS_TENSOR), np.uint8)
