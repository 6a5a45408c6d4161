"""The things drawn on the canvas's scene: the photo (with its before/after split), the
items' translucent overlay, the resize handles and the click tool's markers.

Scene coordinates are image pixels, as in :mod:`ui.canvas`: pixel ``(i, j)`` covers
``[i, i+1) x [j, j+1)``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPen, QPixmap, QTransform
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem

from ui import overlay
from ui.imaging import argb_image, indexed_image
from ui.photo_levels import Level, Mipmap
from ui.theme import COLORS

if TYPE_CHECKING:
    from ui.canvas import CanvasView
    from ui.side_thread import SideThread

log = logging.getLogger(__name__)


def device_ratio(painter: QPainter) -> float:
    """Device pixels per logical pixel of what ``painter`` draws on: 1 on most screens,
    2 on a Retina one, 1.25 or 1.5 on a Windows screen scaled up."""
    device = painter.device()
    return float(device.devicePixelRatioF()) if device is not None else 1.0


def line_width(ratio: float) -> int:
    """The overlay's outline width in device pixels: one logical pixel, rounded."""
    return max(1, math.floor(ratio + 0.5))


class PhotoItem(QGraphicsItem):
    """The photo, drawn from a mipmap so a 4096-px photo at fit-to-view stays cheap and
    smooth; optionally split with a "before" picture left of a vertical line.

    With ``maker`` (the canvas's own thread) a level too large to make within a frame is
    made there, and what is at hand is drawn until it comes (:mod:`ui.photo_levels`);
    without one, every level is made where it is drawn."""

    def __init__(
        self, maker: SideThread | None = None, refused: Callable[[str], None] | None = None
    ) -> None:
        super().__init__()
        self._maker = maker
        self._refused = refused  # told, in a sentence, when a level could not be made
        self._photo: Mipmap | None = None
        self._before: Mipmap | None = None
        # the picture shown before ``_photo``, of its size, drawn until ``_photo`` has a
        # level: an edit at 100 % then lands when its picture is ready to show
        self._stale: Mipmap | None = None
        # the document's colour profile to the screen's colours, set with the document
        # (dedit_app.colour_profiles.to_srgb); None: the values are shown as they are
        self.colours: Callable | None = None
        self.split: float | None = None  # 0..1 of the width shows ``before``
        self._size = (0, 0)
        self._on_show: int | None = None  # the level last drawn (None: none yet)

    def set_image(self, image: np.ndarray | None) -> None:
        """Show ``image`` ``(H, W, 3)`` uint8 (never changed in place), or nothing."""
        self.prepareGeometryChange()
        old = self._photo
        self._photo = self._mipmap(image, old)
        if self._photo is not old:
            self._forget(old)
            if old is not None and old.levels:
                self._stale = old
            if self._photo is None or (self._stale is not None and not self._same(self._stale)):
                self._stale = None
        self._size = (0, 0) if image is None else (image.shape[1], image.shape[0])
        self.update()

    def set_before(self, image: np.ndarray | None, split: float | None) -> None:
        """Show ``image`` left of ``split`` (0..1 of the width); None: no split."""
        old = self._before
        self._before = self._mipmap(image, old, self._photo)
        if self._before is not old:
            self._forget(old)
        self.split = split
        self.update()

    def ready(self) -> bool:
        """True when nothing drawn is waiting for a level to be made."""
        return not any(m is not None and m.asked for m in (self._photo, self._before))

    def _same(self, other: Mipmap) -> bool:
        return other.shape == self._photo.shape and other.colours is self._photo.colours

    def _mipmap(self, image: np.ndarray | None, now: Mipmap | None, *others) -> Mipmap | None:
        """The mipmap to show ``image`` with: ``now`` itself while it is of that very
        picture (dragging the compare split sets the same picture at every move, and
        remaking its levels held the UI thread each time), else a new one converting
        only what differs from ``now``'s or ``others``'s levels."""
        if image is None:
            return None
        if now is not None and now.array is image and now.colours is self.colours:
            return now
        likes = [m for m in (now, *others) if m is not None and m.shown]
        return Mipmap(image, self.colours, likes[0] if likes else None, self._on_show)

    def _forget(self, mipmap: Mipmap | None) -> None:
        """``mipmap`` is no longer drawn: levels not yet being made are not made."""
        if mipmap is None or self._maker is None:
            return
        for ticket in mipmap.asked.values():
            self._maker.forget(ticket)
        mipmap.asked.clear()

    def boundingRect(self) -> QRectF:
        return QRectF(0, 0, *self._size)

    def _level(self, scale: float) -> int:
        """The smallest mipmap level still at least as large as the screen shows it."""
        k = 0
        while scale * (2 ** (k + 1)) <= 1.0 and k < self._photo.top:
            k += 1
        return k

    def _drawable(self, mipmap: Mipmap, k: int, stale: Mipmap | None = None) -> QPixmap:
        """Level ``k`` of ``mipmap`` if made or quick to make; else it is asked of the
        canvas's thread, and the nearest level made stands in, or else ``stale``'s level
        ``k`` (as sharp: the picture before, for a moment), or else a quick one."""
        pm = mipmap.levels.get(k)
        if pm is not None or self._maker is None or mipmap.quick(k):
            return pm if pm is not None else mipmap.level(k)
        if k not in mipmap.refused:
            self._ask(mipmap, k)
        pm = mipmap.nearest(k)
        if pm is None and stale is not None:
            pm = stale.levels.get(k)
        if pm is None:
            quick = next((j for j in range(k, mipmap.top + 1) if mipmap.quick(j)), mipmap.top)
            pm = mipmap.level(quick)
        return pm

    def _ask(self, mipmap: Mipmap, k: int) -> None:
        if k in mipmap.asked:
            return
        # levels asked for before and not started are no longer on show (a zoom passed
        # through them): not made, so the one asked now comes next
        for j, ticket in list(mipmap.asked.items()):
            if self._maker.cancel(ticket):
                del mipmap.asked[j]

        def made(level: Level) -> None:
            mipmap.asked.pop(k, None)
            if mipmap is self._photo or mipmap is self._before:
                mipmap.keep(level)
                self.update()  # the repaint lets the picture before go

        def failed(text: str) -> None:  # another level stands in until the zoom changes
            mipmap.asked.pop(k, None)
            mipmap.refused.add(k)
            log.warning("Level %d of the photo on show was not made: %s", k, text)
            if self._refused is not None and (mipmap is self._photo or mipmap is self._before):
                self._refused(text)

        mipmap.asked[k] = self._maker.submit(
            "Showing the photo at this zoom", lambda: mipmap.make(k), made, failed
        )

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget=None) -> None:
        if self._photo is None:
            return
        # device pixels per image pixel: on a Retina screen the level is chosen for its
        # device pixels, or a photo at 50 % would be drawn from the quarter-size level
        scale = painter.worldTransform().m11() * device_ratio(painter)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, scale < 2.0)
        target = self.boundingRect()
        k = self._level(scale)
        if k != self._on_show:  # another zoom: a level refused before may be tried again
            for mipmap in (self._photo, self._before):
                if mipmap is not None:
                    mipmap.refused.clear()
        self._on_show = k
        pm = self._drawable(self._photo, k, self._stale)
        if self._photo.levels:  # its own level drawn: the one before is let go
            self._stale = None
        painter.drawPixmap(target, pm, QRectF(pm.rect()))
        if self._before is not None and self.split is not None:
            # until its level comes, the picture on show stands in, sharp: holding \ to
            # see the original then shows it a moment late rather than soft
            before = self._drawable(self._before, k, self._photo)
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
