"""numpy arrays <-> QImage/QPixmap without per-pixel Python."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
from PySide6.QtCore import QByteArray
from PySide6.QtGui import QColor, QColorSpace, QImage, QPixmap

from dedit_app import partition


def rgb_image(image: np.ndarray) -> QImage:
    """``(H, W, 3)`` uint8 RGB -> an independent QImage (RGB888)."""
    image = np.ascontiguousarray(image, dtype=np.uint8)
    h, w = image.shape[:2]
    return QImage(image.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


def rgb_pixmap(image: np.ndarray) -> QPixmap:
    return QPixmap.fromImage(rgb_image(image))


def argb_image(words: np.ndarray, *, premultiplied: bool = False) -> QImage:
    """``(h, w)`` uint32 ARGB32 words -> an independent QImage."""
    words = np.ascontiguousarray(words, dtype=np.uint32)
    h, w = words.shape
    fmt = (
        QImage.Format.Format_ARGB32_Premultiplied if premultiplied else QImage.Format.Format_ARGB32
    )
    return QImage(words.data, w, h, 4 * w, fmt).copy()


def indexed_image(codes: np.ndarray, table: np.ndarray) -> QImage:
    """``(h, w)`` uint8 codes and a 256-entry straight-ARGB table -> premultiplied ARGB32.

    Qt does the table lookup in C++ while converting, which is faster than building the
    RGBA array in numpy.
    """
    codes = np.ascontiguousarray(codes, dtype=np.uint8)
    h, w = codes.shape
    img = QImage(codes.data, w, h, w, QImage.Format.Format_Indexed8)
    img.setColorTable([int(c) for c in table])
    return img.convertToFormat(QImage.Format.Format_ARGB32_Premultiplied)


def mask_image(mask: np.ndarray, colour: QColor) -> QImage:
    """A bool ``(h, w)`` mask as a translucent tint: ``colour`` where True, clear elsewhere."""
    codes = np.ascontiguousarray(mask, dtype=np.uint8)
    h, w = codes.shape
    img = QImage(codes.data, w, h, w, QImage.Format.Format_Indexed8)
    img.setColorTable([0, colour.rgba()])
    return img.convertToFormat(QImage.Format.Format_ARGB32_Premultiplied)


def cutout_image(image: np.ndarray, mask: np.ndarray) -> QImage:
    """RGB pixels where ``mask`` (same h x w) is True, transparent elsewhere. A uint8
    ``mask`` is the opacity itself (0 transparent .. 255 opaque), for a shrunk mask's soft
    edge."""
    h, w = mask.shape
    rgba = np.empty((h, w, 4), np.uint8)
    rgba[..., :3] = image
    rgba[..., 3] = mask if mask.dtype == np.uint8 else np.where(mask, 255, 0).astype(np.uint8)
    return QImage(rgba.data, w, h, 4 * w, QImage.Format.Format_RGBA8888).copy()


def with_profile(img: QImage, profile: bytes | None) -> QImage:
    """``img`` tagged with the photo's colour profile (ICC bytes, the project's), so that
    a PNG Qt writes of it (the clipboard's, a dragged cut-out's file) embeds it as an
    export does. A profile Qt cannot read leaves the picture untagged."""
    if profile:
        space = QColorSpace.fromIccProfile(QByteArray(profile))
        if space.isValid():
            img.setColorSpace(space)
    return img


def qimage_rgb(img: QImage) -> np.ndarray:
    """A QImage as an ``(H, W, 3)`` uint8 RGB array (a copy)."""
    return _qimage_pixels(img, QImage.Format.Format_RGB888, 3)


def qimage_rgba(img: QImage) -> np.ndarray:
    """A QImage as an ``(H, W, 4)`` uint8 RGBA array with straight alpha (a copy)."""
    return _qimage_pixels(img, QImage.Format.Format_RGBA8888, 4)


def _qimage_pixels(img: QImage, fmt: QImage.Format, channels: int) -> np.ndarray:
    img = img.convertToFormat(fmt)
    h, w, bpl = img.height(), img.width(), img.bytesPerLine()
    buf = np.frombuffer(img.constBits(), np.uint8, count=h * bpl).reshape(h, bpl)
    return buf[:, : channels * w].reshape(h, w, channels).copy()


def area_shrink(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` ``(H, W, C)`` area-averaged down to ``size = (w, h)``, no larger than it.

    OpenCV's area average is quick for a factor of 2 and slow for a large odd one (90 ms
    from 24 MP to 192 px, 10 ms to halve it), so this halves while the picture is at least
    twice the size, then averages the rest of the way."""
    image = np.ascontiguousarray(image)
    w, h = size
    while image.shape[1] >= 2 * w and image.shape[0] >= 2 * h:
        image = cv2.resize(
            image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_AREA
        )
    if (image.shape[1], image.shape[0]) == (w, h):
        return image
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)


def changed_box(a: np.ndarray, b: np.ndarray) -> tuple[slice, slice] | None:
    """``(rows, cols)`` slices of the smallest box holding every pixel where ``a`` and
    ``b`` (the same ``(H, W, C)`` shape) differ; None when they are equal. 20 ms for two
    24 MP pictures on one core: the rows are found on ``(H, W*C)`` bytes, and the columns
    only between the first and last row that differ."""
    h, w = a.shape[:2]
    box = partition.bounding_window(a.reshape(h, -1) != b.reshape(h, -1), 0)
    if box is None:
        return None
    channels = a.shape[2] if a.ndim == 3 else 1
    return box[0], slice(box[1].start // channels, (box[1].stop - 1) // channels + 1)


def shrink_to(image: np.ndarray, side: int) -> np.ndarray:
    """``image`` ``(H, W, C)`` area-averaged to ``side`` pixels on its long edge; one no
    larger is returned as it is."""
    h, w = image.shape[:2]
    if max(h, w) <= side:
        return image
    scale = side / max(h, w)
    return area_shrink(image, (max(1, round(w * scale)), max(1, round(h * scale))))


def thumbnail(
    image: np.ndarray, side: int, colours: Callable | None = None, ratio: float = 1.0
) -> QPixmap:
    """A pixmap of ``image`` ``(H, W, 3)`` uint8 RGB fitted to ``side`` logical pixels on
    its long edge (smooth), in the screen's colours by ``colours`` (the photo's profile to
    sRGB, :func:`dedit_app.colour_profiles.to_srgb`; None: as they are). ``ratio``: the
    screen's device pixels per logical pixel (``QWidget.devicePixelRatioF``), so that on a
    Retina screen the pixmap has twice the pixels and is not scaled up. A larger picture
    is shrunk before it becomes a pixmap: converting a 24-megapixel candidate whole first
    took about 180 ms per thumbnail on the UI thread."""
    from PySide6.QtCore import Qt

    pixels = max(1, round(side * ratio))
    if max(image.shape[:2]) > pixels:
        small = shrink_to(image, pixels)
        out = rgb_pixmap(small if colours is None else colours(small))
    else:
        if colours is not None:
            image = colours(image)
        out = rgb_pixmap(image).scaled(
            pixels,
            pixels,
            Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.SmoothTransformation,
        )
    out.setDevicePixelRatio(ratio)
    return out
