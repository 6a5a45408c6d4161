"""The canvas: the photo, its items as translucent overlays, and the pointer tools.

Scene coordinates are image pixels: pixel ``(i, j)`` covers ``[i, i+1) x [j, j+1)``, so the
pixel under a scene point is ``floor(x), floor(y)`` and pixel centres (the engine's
coordinates) sit at ``+0.5``. The canvas never edits the document: it reports what the user
did (clicked an item, drew a stroke, dropped a moved item) through signals, and the main
window turns those into undoable commands or jobs. What it draws (photo, overlay, handles,
markers) is in :mod:`ui.canvas_items`.
"""

from __future__ import annotations

import enum
import math

import numpy as np
from PySide6.QtCore import QEvent, QPoint, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import (
    QColor,
    QKeySequence,
    QPainter,
    QPainterPath,
    QPen,
    QPixmap,
    QTransform,
)
from PySide6.QtWidgets import (
    QFrame,
    QGraphicsEllipseItem,
    QGraphicsPathItem,
    QGraphicsPixmapItem,
    QGraphicsScene,
    QGraphicsView,
    QWidget,
)

from dedit_app.colour_profiles import to_srgb
from dedit_app.errors import ItemError
from ui import navigation, overlay
from ui.canvas_gestures import ALT, NUDGE_KEYS, REF_ITEM_MIME, Gestures, shift_words
from ui.canvas_items import HandlesItem, MarkersItem, OverlayItem, PhotoItem
from ui.clipboard import dropped_files
from ui.document import Document
from ui.imaging import mask_image
from ui.side_thread import SideThread
from ui.theme import COLORS


class Tool(enum.Enum):
    SELECT = "select"  # click to select, drag to move, corner handles to resize
    BRUSH = "brush"  # paint pixels into the selected item
    ERASER = "eraser"  # give the selected item's pixels to their nearest neighbours
    CLICK = "click"  # click-to-segment a new item (left: include, right/Alt: exclude)


def _clamped(zoom: float) -> float:
    """``zoom`` (logical pixels per image pixel) within what the canvas zooms to."""
    return min(max(zoom, 0.02), 32.0)


class CanvasView(Gestures, QGraphicsView):
    """The photo with its items; tools report what the user did through signals."""

    item_clicked = Signal(int, object)  # item id, Qt.KeyboardModifier
    item_double_clicked = Signal(int)  # item id (select tool): type its prompt
    empty_clicked = Signal()
    stroke_finished = Signal(list, float, bool)  # [(x, y) pixel centres], radius, erase
    click_point = Signal(float, float, bool)  # x, y (pixel centres), include?
    # (items,), dx, dy, scale, angle: one item dragged, resized or turned, or the selected
    # items dragged or nudged together
    move_requested = Signal(tuple, float, float, float, float)
    copy_requested = Signal(tuple, float, float)  # items, dx, dy: an Alt+drag copies them
    swap_dropped = Signal(int, int)  # target item, reference item
    files_dropped = Signal(list)  # [path]
    cursor_info = Signal(object)  # (x, y, item) or None
    zoom_changed = Signal(float)  # screen (device) pixels per image pixel, as shown
    level_failed = Signal(str)  # the photo could not be made at this zoom: why, in words
    menu_asked = Signal(object, QPoint)  # right-click: the item there (or None), global point

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("canvas")
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setScene(QGraphicsScene(self))
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.FullViewportUpdate)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setMouseTracking(True)
        self.setAcceptDrops(True)
        self.setBackgroundBrush(QColor(COLORS["canvas"]))
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.doc: Document | None = None
        self.tool = Tool.SELECT
        self.brush_radius = 12.0
        self.overlays_visible = True
        self.editable = True  # False while a preview (move, candidate) is shown
        # The reference photo's canvas: an item dragged there is carried off to be dropped
        # on the photo (a swap), not moved; it has no handles and no nudges.
        self.drags_out = False
        self._fit = True
        self._preview_image: np.ndarray | None = None
        self._preview_labels: np.ndarray | None = None
        self._preview_compact: np.ndarray | None = None
        self._tables_cache: tuple | None = None

        # large levels of the photo are made on a thread of the canvas's own, so a zoom
        # to 100 % or an edit landing there never holds the UI thread (ui.photo_levels)
        self.levels = SideThread(self, "dedit-levels")
        self.photo = PhotoItem(self.levels, self.level_failed.emit)
        self.overlay_item = OverlayItem(self)
        self.overlay_item.setZValue(1)
        self.proposal = QGraphicsPixmapItem()
        self.proposal.setZValue(3)
        self.ghost, self.measure_label = self._gesture_items()
        self.guides = self._guide_items()
        self.stroke_item = QGraphicsPathItem()
        self.stroke_item.setZValue(6)
        self.brush_cursor = QGraphicsEllipseItem()
        self.brush_cursor.setZValue(12)
        self.brush_cursor.setVisible(False)
        pen = QPen(QColor(255, 255, 255), 1.5)
        pen.setCosmetic(True)
        self.brush_cursor.setPen(pen)
        self.handles = HandlesItem()
        self.handles.setVisible(False)
        self.markers = MarkersItem()
        for it in (
            self.photo,
            self.overlay_item,
            self.proposal,
            self.ghost,
            self.stroke_item,
            self.brush_cursor,
            self.handles,
            self.markers,
            self.measure_label,
            *self.guides,
        ):
            self.scene().addItem(it)

        self._press: dict | None = None  # the gesture in progress
        self._pan: tuple | None = None
        self._space = False
        self._nudge_timer = QTimer(self)
        self._nudge_timer.setSingleShot(True)
        self._nudge_timer.timeout.connect(self.end_nudge)
        self._turn_shape = None  # the turn cursor, made the first time it shows
        self._boxes_asked: np.ndarray | None = None  # the map whose boxes are being found

    # ----- document ---------------------------------------------------------------------

    def set_document(self, doc: Document | None) -> None:
        if self.doc is not None:
            self.doc.changed.disconnect(self._on_changed)
            self.doc.selection_changed.disconnect(self._on_selection)
            self.doc.hover_changed.disconnect(self._on_hover)
        if self._press is not None:  # a nudge or drag of the picture going away
            self._cancel_gesture()
        self.doc = doc
        self.clear_preview()
        self.set_proposal(None)
        self.markers.set_points([])
        if doc is not None:
            doc.changed.connect(self._on_changed)
            doc.selection_changed.connect(self._on_selection)
            doc.hover_changed.connect(self._on_hover)
            self.photo.set_image(None)  # another photo's picture never stands in for it
            self.photo.colours = to_srgb(doc.project.profile)
            self.photo.set_image(doc.image)
            self.scene().setSceneRect(QRectF(0, 0, doc.image.shape[1], doc.image.shape[0]))
        else:
            self.photo.set_image(None)
            self.scene().setSceneRect(QRectF(0, 0, 1, 1))
        self.overlay_item.reset()
        self._on_selection()
        self.fit()

    def shutdown(self) -> None:
        """The window closes: no level is made any more (one being made is waited for)."""
        self.levels.shutdown()

    def _on_changed(self, parts: frozenset) -> None:
        if "image" in parts and self._preview_image is None:
            self.photo.set_image(self.doc.image)
        self._update_handles()
        self.overlay_item.invalidate()
        self.viewport().update()

    def _on_selection(self) -> None:
        g = self._press
        if g is not None and g["kind"] == "nudge" and self.doc.selection != g["items"]:
            self.end_nudge()  # other items chosen (Tab, the list): the nudged ones go
        self._update_handles()
        self.overlay_item.update()
        self.viewport().update()

    def _on_hover(self) -> None:
        self.overlay_item.update()
        self.viewport().update()

    # ----- what is shown ----------------------------------------------------------------

    def set_preview(self, image: np.ndarray | None, labels: np.ndarray | None = None) -> None:
        """Show ``image`` (and its ``labels``) instead of the document until cleared."""
        self._preview_image = image
        self._preview_labels = labels
        self._preview_compact = None if labels is None else overlay.compact_labels(labels)
        self.editable = image is None and labels is None
        self.photo.set_image(image if image is not None else self.doc.image if self.doc else None)
        self._update_handles()
        self.overlay_item.reset()
        self.viewport().update()

    def clear_preview(self) -> None:
        if self._preview_image is not None or self._preview_labels is not None:
            self.set_preview(None, None)
        self.editable = True

    @property
    def previewing(self) -> bool:
        return self._preview_image is not None or self._preview_labels is not None

    def set_compare(self, before: np.ndarray | None, split: float | None) -> None:
        """Show ``before`` left of ``split`` (0..1 of the width) over the current picture."""
        self.photo.set_before(before, split)

    def shown_labels(self) -> np.ndarray | None:
        if self._preview_compact is not None:
            return self._preview_compact
        return self.doc.compact_labels if self.doc is not None else None

    def shown_image(self) -> np.ndarray | None:
        if self._preview_image is not None:
            return self._preview_image
        return self.doc.image if self.doc is not None else None

    def labels_key(self) -> tuple:
        return (id(self._preview_compact), self.doc.labels_version if self.doc else -1)

    def tables_key(self) -> tuple:
        d = self.doc
        if d is None:
            return ()
        return (len(d.items), d.selection, d.hover, self.overlays_visible)

    def tables(self) -> overlay.Tables:
        key = self.tables_key()
        if self._tables_cache is None or self._tables_cache[0] != key:
            d = self.doc
            t = overlay.build_tables(
                len(d.items),
                selected=d.selection,
                hover=d.hover,
                hidden=not self.overlays_visible,
            )
            self._tables_cache = (key, t)
        return self._tables_cache[1]

    def set_overlays_visible(self, visible: bool) -> None:
        self.overlays_visible = visible
        self.overlay_item.update()
        self.viewport().update()

    def set_proposal(self, mask: np.ndarray | None) -> None:
        """Show a click-to-segment proposal (bool mask) as an accent tint."""
        if mask is None or not mask.any():
            self.proposal.setVisible(False)
            self.proposal.setPixmap(QPixmap())
            return
        ys, xs = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
        y0, y1, x0, x1 = ys[0], ys[-1] + 1, xs[0], xs[-1] + 1
        colour = QColor(COLORS["accent"])
        colour.setAlpha(140)
        self.proposal.setPixmap(QPixmap.fromImage(mask_image(mask[y0:y1, x0:x1], colour)))
        self.proposal.setPos(float(x0), float(y0))
        self.proposal.setVisible(True)

    def set_markers(self, points: list[tuple[float, float, bool]]) -> None:
        """Click-to-segment clicks, in pixel-centre coordinates."""
        self.markers.set_points([(x + 0.5, y + 0.5, p) for x, y, p in points])

    def _update_handles(self) -> None:
        d = self.doc
        show = (
            d is not None
            and self.tool is Tool.SELECT
            and bool(d.selection)
            and self.editable
            and not self.drags_out
            and self._press is None
        )
        rect = None
        if show:  # round the selected items together: they resize and turn as a group
            try:
                x0, y0, x1, y1 = d.items_box(d.selection)
                rect = QRectF(x0, y0, x1 - x0, y1 - y0)
            except ItemError:  # an item with no pixels has no box
                pass
        self.handles.set_rect(rect)

    # ----- tools ------------------------------------------------------------------------

    def set_tool(self, tool: Tool) -> None:
        self.tool = tool
        self.brush_cursor.setVisible(False)
        self._update_handles()
        cursors = {
            Tool.SELECT: Qt.CursorShape.ArrowCursor,
            Tool.BRUSH: Qt.CursorShape.CrossCursor,
            Tool.ERASER: Qt.CursorShape.CrossCursor,
            Tool.CLICK: Qt.CursorShape.PointingHandCursor,
        }
        self.viewport().setCursor(cursors[tool])

    def set_brush_radius(self, radius: float) -> None:
        self.brush_radius = max(0.5, float(radius))
        r = self.brush_radius
        c = self.brush_cursor.rect().center()
        self.brush_cursor.setRect(QRectF(c.x() - r, c.y() - r, 2 * r, 2 * r))

    # ----- zoom -------------------------------------------------------------------------

    @property
    def zoom(self) -> float:
        """Logical pixels per image pixel (the view's own scale)."""
        return self.transform().m11()

    def screen_ratio(self) -> float:
        """Device pixels per logical pixel of the screen the canvas is on (2 on a Retina
        screen)."""
        return float(self.viewport().devicePixelRatioF())

    def screen_zoom(self) -> float:
        """Screen (device) pixels per image pixel: what the zoom reads in the status bar,
        as in design tools, where 100 % shows each pixel of the photo on one pixel of the
        screen, a Retina screen's included."""
        return self.zoom * self.screen_ratio()

    def set_screen_zoom(self, zoom: float) -> None:
        """Zoom to ``zoom`` screen (device) pixels per photo pixel, about the view's
        centre: what the status bar's zoom field asks."""
        self.set_zoom(zoom / self.screen_ratio())

    def actual_pixels(self) -> None:
        """Zoom to one image pixel per screen pixel (Ctrl+1)."""
        self.set_screen_zoom(1.0)

    def changeEvent(self, event) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.DevicePixelRatioChange:  # moved to another screen
            self.zoom_changed.emit(self.screen_zoom())

    def fit(self) -> None:
        """Fit the whole photo in the view (and keep fitting on resize)."""
        self._fit = True
        rect = self.photo.boundingRect()
        if rect.isEmpty():
            return
        s = self._scale_to_show(rect.width(), rect.height())
        self.setTransform(QTransform.fromScale(s, s))
        self.centerOn(rect.center())
        self.zoom_changed.emit(self.screen_zoom())

    def fit_selection(self) -> None:
        """Zoom so the selected items fill the view, at most to 800 % of the screen's
        pixels (Ctrl+2); with none selected, or none with pixels, fit the photo."""
        d = self.doc
        shown = [k for k in d.selection if d.counts[k]] if d is not None else []
        if not shown:  # an item with no pixels has no box
            self.fit()
            return
        x0, y0, x1, y1 = d.items_box(shown)
        self.set_zoom(min(self._scale_to_show(x1 - x0, y1 - y0), 8.0 / self.screen_ratio()))
        self.centerOn(QPointF((x0 + x1) / 2, (y0 + y1) / 2))

    def _scale_to_show(self, width: float, height: float) -> float:
        """The zoom at which ``width`` x ``height`` image pixels fill the view, less a
        margin of 24 logical pixels round them."""
        margin = 24
        vw = max(self.viewport().width() - 2 * margin, 1)
        vh = max(self.viewport().height() - 2 * margin, 1)
        return min(vw / width, vh / height)

    def set_zoom(self, factor: float, anchor: QPointF | None = None) -> None:
        factor = _clamped(factor)
        self._fit = False
        old = self.transformationAnchor()
        if anchor is None:
            self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setTransform(QTransform.fromScale(factor, factor))
        self.setTransformationAnchor(old)
        self.zoom_changed.emit(self.screen_zoom())

    def zoom_by(self, step: float) -> None:
        self.set_zoom(self.zoom * step)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self._fit:
            self.fit()

    def zoom_at(self, factor: float, pos: QPointF) -> None:
        """Zoom by ``factor`` keeping the photo's point under viewport position ``pos``
        (logical pixels) where it is, as far as the scroll bars allow."""
        new = _clamped(self.zoom * factor)
        if new == self.zoom:
            return
        self._fit = False
        at = pos.toPoint()
        anchor = self.mapToScene(at)
        old = self.transformationAnchor()
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.NoAnchor)
        self.scale(new / self.zoom, new / self.zoom)
        self.setTransformationAnchor(old)
        self._pan_by(at - self.mapFromScene(anchor))
        self.zoom_changed.emit(self.screen_zoom())

    def _pan_by(self, step: QPoint) -> None:
        """Move the picture by ``step`` logical pixels (as far as the scroll bars go)."""
        h, v = self.horizontalScrollBar(), self.verticalScrollBar()
        h.setValue(h.value() - step.x())
        v.setValue(v.value() - step.y())

    def wheelEvent(self, event) -> None:
        # ui.navigation: a mouse wheel (or Ctrl) zooms at the pointer; a trackpad pans
        if not navigation.wants_zoom(event):
            self._pan_by(navigation.pan_step(event, self.verticalScrollBar().singleStep()))
            event.accept()
            return
        delta = event.angleDelta().y()
        if delta == 0:
            return super().wheelEvent(event)
        self.zoom_at(1.0015**delta, event.position())
        event.accept()

    def viewportEvent(self, event) -> bool:
        if event.type() == QEvent.Type.NativeGesture:
            kind = event.gestureType()
            if kind == Qt.NativeGestureType.ZoomNativeGesture:  # a pinch: zoom at it
                self.zoom_at(1.0 + event.value(), event.position())
                return True
            if kind == Qt.NativeGestureType.SmartZoomNativeGesture:  # two-finger double tap
                if self._fit:
                    self.actual_pixels()
                else:
                    self.fit()
                return True
        return super().viewportEvent(event)

    # ----- pointer ----------------------------------------------------------------------

    def _scene(self, event) -> QPointF:
        return self.mapToScene(event.position().toPoint())

    def _item_at(self, p: QPointF) -> int | None:
        labels = self.shown_labels()
        if labels is None:
            return None
        i, j = math.floor(p.x()), math.floor(p.y())
        if 0 <= j < labels.shape[0] and 0 <= i < labels.shape[1]:
            return int(labels[j, i])
        return None

    def _handle_at(self, event) -> int | None:
        if not self.handles.isVisible():
            return None
        pos = event.position()
        for k, c in enumerate(self.handles.corners()):
            v = self.mapFromScene(c)
            if abs(v.x() - pos.x()) <= 8 and abs(v.y() - pos.y()) <= 8:
                return k
        return None

    def keyPressEvent(self, event) -> None:
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = True
            self.viewport().setCursor(Qt.CursorShape.OpenHandCursor)
            return
        if event.key() == Qt.Key.Key_Escape and self._press is not None:
            self._cancel_gesture()
            return
        if event.key() == Qt.Key.Key_Alt:
            self._show_copying(event.modifiers() | ALT)
        if event.key() in NUDGE_KEYS and self.tool is Tool.SELECT and self._nudge(event):
            return
        # with nothing else to undo, Undo is disabled and its key comes here: it still
        # takes back arrow presses not yet asked (the window's Undo does, when enabled)
        if event.matches(QKeySequence.StandardKey.Undo) and self.drop_nudge():
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event) -> None:
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = False
            self.set_tool(self.tool)
            return
        if event.key() == Qt.Key.Key_Alt:  # some platforms still report it held here
            self._show_copying(event.modifiers() & ~ALT)
        super().keyReleaseEvent(event)

    def mousePressEvent(self, event) -> None:
        if self.doc is None:
            return
        self.end_nudge()  # a click after arrow presses: their move first
        button = event.button()
        if button == Qt.MouseButton.MiddleButton or (
            self._space and button == Qt.MouseButton.LeftButton
        ):
            self._pan = (
                event.position(),
                self.horizontalScrollBar().value(),
                self.verticalScrollBar().value(),
            )
            self.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)
            return
        p = self._scene(event)
        mods = event.modifiers()
        if self.tool is Tool.CLICK:
            if not self.editable:
                return
            if button in (Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton):
                include = button == Qt.MouseButton.LeftButton and not (
                    mods & Qt.KeyboardModifier.AltModifier
                )
                if self._item_at(p) is not None:
                    self.click_point.emit(p.x() - 0.5, p.y() - 0.5, include)
            return
        if button != Qt.MouseButton.LeftButton:
            return
        if self.tool in (Tool.BRUSH, Tool.ERASER):
            if not self.editable:
                return
            self._press = {"kind": "stroke", "points": [(p.x() - 0.5, p.y() - 0.5)]}
            self._update_stroke()
            return
        # SELECT. Ctrl or Shift adds the item under the pointer to the selection, even
        # beside a corner: handles and turning are for a plain press.
        adding = bool(
            mods & (Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
        )
        handle = self._handle_at(event) if self.editable and not adding else None
        if handle is not None:
            self._press = {
                "kind": "resize",
                "handle": handle,
                "start": p,
                "items": self.doc.selection,
                "active": True,
            }
            self._start_ghost(self._press["items"])
            self._ask_boxes()
            self._press["lines"] = self._snap_lines(self._press["items"])
            return
        if self.editable and not adding and self._turn_at(event):
            centre = self.handles.rect.center()  # of the selected items' box, in the scene
            self._press = {
                "kind": "turn",
                "items": self.doc.selection,
                "centre": centre,
                "from": math.atan2(p.y() - centre.y(), p.x() - centre.x()),
                "angle": 0.0,
                "active": True,
            }
            self._start_ghost(self._press["items"])
            return
        item = self._item_at(p)
        if item is None:
            self.empty_clicked.emit()
            return
        plain = not adding
        selected = self.doc.selection
        # A press on one of several selected items keeps them selected, so that a drag
        # moves them all; a click without a drag then selects it alone, as in design tools.
        together = plain and self.editable and len(selected) > 1 and item in selected
        if not together:
            self.item_clicked.emit(item, mods)
        if plain and self.editable:
            self._ask_boxes()  # for the drag to snap to, by the time it moves
            self._press = {
                "kind": "move",
                "items": selected if together else (item,),
                "item": item,
                "start": p,
                "screen": event.position(),
                "active": False,
                "click": mods if together else None,  # the click put off until release
            }

    def contextMenuEvent(self, event) -> None:
        """A right-click with the select tool asks for the menu of the item under the
        pointer, selecting it first when it is not selected, as design tools do (the
        click tool's right button marks where an item is not; the reference photo's
        canvas has no menu)."""
        if self.doc is None or self.tool is not Tool.SELECT or self.drags_out:
            return
        if self._press is not None or self._pan is not None:
            return
        item = self._item_at(self.mapToScene(event.pos()))
        if item is not None and item not in self.doc.selection:
            self.item_clicked.emit(item, Qt.KeyboardModifier.NoModifier)
        self.menu_asked.emit(item, event.globalPos())

    def mouseDoubleClickEvent(self, event) -> None:
        # QGraphicsView hands a double-click to the scene, which has no use for it: the
        # second press of a quick brush dab or of two clicked points would be lost.
        if self.doc is None or self._pan is not None:
            return
        item = self._item_at(self._scene(event))
        if (
            self.tool is Tool.SELECT
            and event.button() == Qt.MouseButton.LeftButton
            and not self._space
            and item is not None
        ):
            self.item_double_clicked.emit(item)
            return
        self.mousePressEvent(event)

    def mouseMoveEvent(self, event) -> None:
        if self._pan is not None:
            start, h, v = self._pan
            d = event.position() - start
            self.horizontalScrollBar().setValue(int(h - d.x()))
            self.verticalScrollBar().setValue(int(v - d.y()))
            return
        if self.doc is None:
            return
        p = self._scene(event)
        item = self._item_at(p)
        self.cursor_info.emit(None if item is None else (p.x(), p.y(), item))
        if self.tool in (Tool.BRUSH, Tool.ERASER):
            r = self.brush_radius
            self.brush_cursor.setRect(QRectF(p.x() - r, p.y() - r, 2 * r, 2 * r))
            self.brush_cursor.setVisible(True)
        g = self._press
        if g is None:
            if self.tool is Tool.SELECT:
                self.doc.set_hover(item)
                handle = self._handle_at(event)
                if handle is None and self._turn_at(event):
                    self.viewport().setCursor(self._turn_cursor())
                    return
                shape = (
                    Qt.CursorShape.SizeFDiagCursor
                    if handle in (0, 2)
                    else Qt.CursorShape.SizeBDiagCursor
                    if handle in (1, 3)
                    else Qt.CursorShape.ArrowCursor
                )
                self.viewport().setCursor(shape)
            return
        if g["kind"] == "stroke":
            g["points"].append((p.x() - 0.5, p.y() - 0.5))
            self._update_stroke()
        elif g["kind"] == "move":
            if not g["active"]:
                d = event.position() - g["screen"]
                if abs(d.x()) + abs(d.y()) < 5:
                    return
                if self.drags_out:
                    self._press = None
                    self._drag_out(g["item"])
                    return
                g["active"] = True
                self._start_ghost(g["items"])
                g["lines"] = self._snap_lines(g["items"])
            delta = p - g["start"]
            g["dx"], g["dy"], g["scale"] = delta.x(), delta.y(), 1.0
            self._snap_drag(g, event.modifiers())
            self._place_ghost(g)
            self._show_measure(shift_words(g["dx"], g["dy"]), p)
            self._show_copying(event.modifiers())
        elif g["kind"] == "resize":
            self._resize_gesture(g, p, event.modifiers())
            self._place_ghost(g)
            self._show_measure(f"{g['scale'] * 100:.0f} %", p)
        elif g["kind"] == "turn":
            self._turn_gesture(g, p, event.modifiers())
            self._place_ghost(g)

    def mouseReleaseEvent(self, event) -> None:
        if self._pan is not None:
            self._pan = None
            self.set_tool(self.tool)
            return
        g, self._press = self._press, None
        if g is None:
            return
        if g["kind"] == "stroke":
            self.stroke_item.setPath(QPainterPath())
            self.stroke_finished.emit(g["points"], self.brush_radius, self.tool is Tool.ERASER)
        elif g["kind"] == "turn":
            self.ghost.setVisible(False)
            self.measure_label.setVisible(False)
            if abs(g["angle"]) >= 0.5:
                self.move_requested.emit(g["items"], 0.0, 0.0, 1.0, round(g["angle"], 1))
        elif g["kind"] in ("move", "resize"):
            self.ghost.setVisible(False)
            self.measure_label.setVisible(False)
            self._hide_guides()
            self.viewport().setCursor(Qt.CursorShape.ArrowCursor)  # no copy's plus left
            if g.get("active") and ("dx" in g):
                moved = abs(g["dx"]) >= 0.5 or abs(g["dy"]) >= 0.5 or abs(g["scale"] - 1) > 1e-3
                copying = g["kind"] == "move" and event.modifiers() & ALT
                if moved and copying:
                    self.copy_requested.emit(g["items"], round(g["dx"]), round(g["dy"]))
                elif moved:
                    self.move_requested.emit(
                        g["items"], round(g["dx"]), round(g["dy"]), g["scale"], 0.0
                    )
            elif g.get("click") is not None:  # pressed and let go on one of the selected
                self.item_clicked.emit(g["item"], g["click"])
        self._update_handles()

    def leaveEvent(self, event) -> None:
        if self.doc is not None and self._press is None:
            self.doc.set_hover(None)
        self.brush_cursor.setVisible(False)
        self.cursor_info.emit(None)
        super().leaveEvent(event)

    def _cancel_gesture(self) -> None:
        self._nudge_timer.stop()
        self._press = None
        self.ghost.setVisible(False)
        self._hide_guides()
        self.measure_label.setVisible(False)
        self.stroke_item.setPath(QPainterPath())
        self._update_handles()

    def _update_stroke(self) -> None:
        pts = self._press["points"]
        path = QPainterPath(QPointF(pts[0][0] + 0.5, pts[0][1] + 0.5))
        for x, y in pts[1:]:
            path.lineTo(x + 0.5, y + 0.5)
        if len(pts) == 1:
            path.lineTo(pts[0][0] + 0.5001, pts[0][1] + 0.5)
        erase = self.tool is Tool.ERASER
        d = self.doc
        if erase:
            colour = QColor(20, 20, 24, 150)
        else:
            rgb = overlay.item_colours(max(len(d.items), 1))[d.current or 0]
            colour = QColor(int(rgb[0]), int(rgb[1]), int(rgb[2]), 150)
        pen = QPen(
            colour,
            2 * self.brush_radius,
            Qt.PenStyle.SolidLine,
            Qt.PenCapStyle.RoundCap,
            Qt.PenJoinStyle.RoundJoin,
        )
        self.stroke_item.setPen(pen)
        self.stroke_item.setPath(path)

    # ----- drag and drop ----------------------------------------------------------------

    def dragEnterEvent(self, event) -> None:
        md = event.mimeData()
        if md.hasFormat(REF_ITEM_MIME) or dropped_files(md):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:
        md = event.mimeData()
        if md.hasFormat(REF_ITEM_MIME) and self.doc is not None:
            item = self._item_at(self.mapToScene(event.position().toPoint()))
            self.doc.set_hover(item)
            if item is None:
                event.ignore()
                return
        event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        md = event.mimeData()
        if md.hasFormat(REF_ITEM_MIME):
            item = self._item_at(self.mapToScene(event.position().toPoint()))
            if item is not None:
                ref = int(bytes(md.data(REF_ITEM_MIME)).decode())
                self.swap_dropped.emit(item, ref)
                event.acceptProposedAction()
            return
        paths = dropped_files(md)
        if paths:
            self.files_dropped.emit(paths)
            event.acceptProposedAction()
