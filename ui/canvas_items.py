"""The things drawn on the canvas's scene: the photo (with its before/after split), the
items' translucent overlay, the resize handles and the click tool's markers.

Scene coordinates are image pixels, as in :mod:`ui.canvas`: pixel ``(i, j)`` covers
``[i, i+1) x [j, j+1)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPen, QPixmap, QTransform
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem

from ui import overlay
from ui.imaging import area_shrink, argb_image, changed_box, indexed_image, rgb_image
from ui.theme import COLORS

if TYPE_CHECKING:
    from ui.canvas import CanvasView


def device_ratio(painter: QPainter) -> float:
    """Device pixels per logical pixel of what ``painter`` draws on: 1 on most screens,
    2 on a Retina one, 1.25 or 1.5 on a Windows screen scaled up."""
    device = painter.device()
    return float(device.devicePixelRatioF()) if device is not None else 1.0


def line_width(ratio: float) -> int:
    """The overlay's outline width in device pixels: one logical pixel, rounded."""
    return max(1, math.floor(ratio + 0.5))


class _Mipmap:
    """A picture's pixmaps at 1, 1/2, 1/4, ... of its size, each made the first time it
    is drawn: at fit-to-view a 24-megapixel photo needs only a small level, and making
    the full-size pixmap up front (about 100 MB) held the UI thread for longer than a
    frame after every edit, undo and compare.

    With ``colours`` (a photo with a colour profile other than sRGB) each level's values
    and their screen colours are kept (``shown``), and a mipmap made ``like`` another of
    the same picture's size converts only the box where its values differ from that one's:
    an edit, an undo or the picture before an edit changes a box, and converting a whole
    24 MP level took 0.18 s on the UI thread (2 cores) each time a picture landed at
    100 %. The cost is one more copy of each level drawn, for such photos only."""

    def __init__(
        self, image: np.ndarray, colours: Callable | None = None, like: _Mipmap | None = None
    ) -> None:
        self.array = image
        self.colours = colours  # the photo's values to the screen's (None: as they are)
        self.levels: dict[int, QPixmap] = {}
        # level -> (its values, those in the screen's colours); only with colours
        self.shown: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        # the other mipmap's, taken now (not the mipmap: a chain of them would be held)
        same = like is not None and colours is not None and like.colours is colours
        self._like = dict(like.shown) if same else {}

    def level(self, k: int) -> QPixmap:
        """The picture shrunk by ``2**k`` (area-averaged), as a pixmap. Shrunk first and
        then turned into the screen's colours: a level is a quarter of the one before,
        so a wide-gamut photo costs 0.18 s at 24 MP (2 cores) only once zoomed to 100 %,
        and then only where it differs from the picture shown before."""
        pm = self.levels.get(k)
        if pm is None:
            h, w = self.array.shape[:2]
            small = area_shrink(self.array, (max(w >> k, 1), max(h >> k, 1)))
            if self.colours is not None:
                small = self._on_screen(k, small)
            pm = self.levels[k] = QPixmap.fromImage(rgb_image(small))
        return pm

    def _on_screen(self, k: int, small: np.ndarray) -> np.ndarray:
        """Level ``k``'s values ``small`` in the screen's colours, from the other
        mipmap's level where only a box differs."""
        values, shown = self._like.pop(k, (None, None))
        box = None
        if values is not None and values.shape == small.shape:
            box = changed_box(values, small)
            if box is None:  # the same values: the same colours (never changed in place)
                self.shown[k] = (small, shown)
                return shown
        if box is None or _area(box) * 2 > small.shape[0] * small.shape[1]:
            out = self.colours(small)  # nothing to start from, or most of it changed
        else:
            out = shown.copy()
            out[box] = self.colours(small[box])
        self.shown[k] = (small, out)
        return out


def _area(box: tuple[slice, slice]) -> int:
    rows, cols = box
    return (rows.stop - rows.start) * (cols.stop - cols.start)


class PhotoItem(QGraphicsItem):
    """The photo, drawn from a mipmap so a 4096-px photo at fit-to-view stays cheap and
    smooth; optionally split with a "before" picture left of a vertical line."""

    def __init__(self) -> None:
        super().__init__()
        self._photo: _Mipmap | None = None
        self._before: _Mipmap | None = None
        # the document's colour profile to the screen's colours, set with the document
        # (dedit_app.colour_profiles.to_srgb); None: the values are shown as they are
        self.colours: Callable | None = None
        self.split: float | None = None  # 0..1 of the width shows ``before``
        self._size = (0, 0)

    def set_image(self, image: np.ndarray | None) -> None:
        """Show ``image`` ``(H, W, 3)`` uint8 (never changed in place), or nothing."""
        self.prepareGeometryChange()
        self._photo = self._mipmap(image, self._photo)
        self._size = (0, 0) if image is None else (image.shape[1], image.shape[0])
        self.update()

    def set_before(self, image: np.ndarray | None, split: float | None) -> None:
        """Show ``image`` left of ``split`` (0..1 of the width); None: no split."""
        self._before = self._mipmap(image, self._before, self._photo)
        self.split = split
        self.update()

    def _mipmap(self, image: np.ndarray | None, now: _Mipmap | None, *others) -> _Mipmap | None:
        """The mipmap to show ``image`` with: ``now`` itself while it is of that very
        picture (dragging the compare split sets the same picture at every move, and
        remaking its levels held the UI thread each time), else a new one converting
        only what differs from ``now``'s or ``others``'s levels."""
        if image is None:
            return None
        if now is not None and now.array is image and now.colours is self.colours:
            return now
        likes = [m for m in (now, *others) if m is not None and m.shown]
        return _Mipmap(image, self.colours, likes[0] if likes else None)

    def boundingRect(self) -> QRectF:
        return QRectF(0, 0, *self._size)

    def _level(self, scale: float) -> int:
        """The smallest mipmap level still at least as large as the screen shows it."""
        k = 0
        while scale * (2 ** (k + 1)) <= 1.0 and min(self._size) >> (k + 1) >= 64:
            k += 1
        return k

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget=None) -> None:
        if self._photo is None:
            return
        # device pixels per image pixel: on a Retina screen the level is chosen for its
        # device pixels, or a photo at 50 % would be drawn from the quarter-size level
        scale = painter.worldTransform().m11() * device_ratio(painter)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, scale < 2.0)
        target = self.boundingRect()
        k = self._level(scale)
        pm = self._photo.level(k)
        painter.drawPixmap(target, pm, QRectF(pm.rect()))
        if self._before is not None and self.split is not None:
            before = self._before.level(k)
            w = target.width() * self.split
            painter.drawPixmap(
                QRectF(0, 0, w, target.height()),
                before,
                QRectF(0, 0, before.width() * self.split, before.height()),
            )
            pen = QPen(QColor(COLORS["accent"]), 0)
            pen.setCosmetic(True)
            pen.setWidthF(2)
            painter.setPen(pen)
            painter.drawLine(QPointF(w, 0), QPointF(w, target.height()))


class OverlayItem(QGraphicsItem):
    """Item tints and outlines, rendered per repaint in screen space (see ui.overlay)."""

    def __init__(self, view: CanvasView) -> None:
        super().__init__()
        self.view = view
        self._key: tuple | None = None
        self._image: QImage | None = None
        self._pos = (0, 0)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption)

    def boundingRect(self) -> QRectF:
        labels = self.view.shown_labels()
        if labels is None:
            return QRectF()
        return QRectF(0, 0, labels.shape[1], labels.shape[0])

    def invalidate(self) -> None:
        self._key = None
        self.update()

    def reset(self) -> None:
        """The label map (and so the bounding rectangle) was replaced."""
        self.prepareGeometryChange()
        self.invalidate()

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget=None) -> None:
        labels = self.view.shown_labels()
        if labels is None:
            return
        # World coordinates of the viewport, not device ones: when the window is grabbed
        # the device is the whole window and Qt adds the viewport's offset underneath.
        # Rendered in device pixels (2 x 2 per logical one on a Retina screen), so item
        # edges and outlines are as sharp as the photo under them rather than scaled up.
        t = painter.worldTransform()
        ratio = device_ratio(painter)
        vp = self.view.viewport()
        size = (math.ceil(vp.width() * ratio), math.ceil(vp.height() * ratio))
        key = (
            id(labels),
            self.view.labels_key(),
            self.view.tables_key(),
            t.m11(),
            t.dx(),
            t.dy(),
            size,
            ratio,
        )
        if key != self._key:
            self._render(labels, t.m11() * ratio, (t.dx() * ratio, t.dy() * ratio), size, ratio)
            self._key = key
        if self._image is None:
            return
        painter.save()
        painter.setTransform(QTransform())
        painter.drawImage(QPointF(self._pos[0] / ratio, self._pos[1] / ratio), self._image)
        painter.restore()

    def _render(self, labels, scale, origin, size, ratio: float) -> None:
        """Render the overlay of the view at ``scale`` device pixels per image pixel, image
        corner (0, 0) at device position ``origin``, over ``size`` device pixels."""
        pos, rows, cols = overlay.view_window(labels.shape, origin=origin, scale=scale, size=size)
        if rows.size == 0:
            self._image = None
            return
        sampled = overlay.sample_labels(labels, rows, cols)
        codes, table = overlay.render_codes(sampled, self.view.tables(), line_width(ratio))
        if codes.dtype == np.uint8:
            self._image = indexed_image(codes, table)
        else:
            self._image = argb_image(np.take(table, codes))
        self._image.setDevicePixelRatio(ratio)
        self._pos = pos


class HandlesItem(QGraphicsItem):
    """A dashed box round the selected item with four corner handles for resizing."""

    SIZE = 9  # screen pixels

    def __init__(self) -> None:
        super().__init__()
        self.rect = QRectF()
        self.setZValue(10)

    def set_rect(self, rect: QRectF | None) -> None:
        self.prepareGeometryChange()
        self.rect = rect or QRectF()
        self.setVisible(rect is not None)

    def boundingRect(self) -> QRectF:
        pad = 50.0
        return self.rect.adjusted(-pad, -pad, pad, pad)

    def corners(self) -> list[QPointF]:
        r = self.rect
        return [r.topLeft(), r.topRight(), r.bottomRight(), r.bottomLeft()]

    def paint(self, painter: QPainter, option, widget=None) -> None:
        if self.rect.isNull():
            return
        t = painter.worldTransform()
        painter.save()
        painter.setTransform(QTransform())
        r = t.mapRect(self.rect)
        pen = QPen(QColor(255, 255, 255, 200), 1, Qt.PenStyle.DashLine)
        painter.setPen(pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRect(r)
        painter.setPen(QPen(QColor(COLORS["accent"]), 1.5))
        painter.setBrush(QColor(255, 255, 255))
        s = self.SIZE
        for c in (r.topLeft(), r.topRight(), r.bottomRight(), r.bottomLeft()):
            painter.drawRect(QRectF(c.x() - s / 2, c.y() - s / 2, s, s))
        painter.restore()


class MarkersItem(QGraphicsItem):
    """The include (+) and exclude (-) clicks of click-to-segment, in screen-size dots."""

    def __init__(self) -> None:
        super().__init__()
        self.points: list[tuple[float, float, bool]] = []
        self.setZValue(11)

    def set_points(self, points: list[tuple[float, float, bool]]) -> None:
        self.prepareGeometryChange()
        self.points = list(points)
        self.update()

    def boundingRect(self) -> QRectF:
        if not self.points:
            return QRectF()
        xs = [p[0] for p in self.points]
        ys = [p[1] for p in self.points]
        return QRectF(
            min(xs) - 100, min(ys) - 100, max(xs) - min(xs) + 200, max(ys) - min(ys) + 200
        )

    def paint(self, painter: QPainter, option, widget=None) -> None:
        t = painter.worldTransform()
        painter.save()
        painter.setTransform(QTransform())
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        for x, y, positive in self.points:
            c = t.map(QPointF(x, y))
            painter.setPen(QPen(QColor(255, 255, 255), 2))
            painter.setBrush(QColor(COLORS["ok"] if positive else COLORS["error"]))
            painter.drawEllipse(c, 8, 8)
            painter.setPen(QPen(QColor(255, 255, 255), 2))
            painter.drawLine(QPointF(c.x() - 4, c.y()), QPointF(c.x() + 4, c.y()))
            if positive:
                painter.drawLine(QPointF(c.x(), c.y() - 4), QPointF(c.x(), c.y() + 4))
        painter.restore()


__all__ = ["HandlesItem", "MarkersItem", "OverlayItem", "PhotoItem"]
