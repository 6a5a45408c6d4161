"""The canvas's gestures on items that end in an edit: the cut-out (the "ghost") that
follows a drag, a corner handle's resize or a turn just outside it, the arrow keys'
nudge, and a reference photo's item dragged off its canvas towards the photo. A drag
snaps the dragged box's edges and middle to the picture's and to other items' (with
guides drawn where they meet), keeps level or upright with Shift, and copies with Alt.

:class:`Gestures` is mixed into :class:`ui.canvas.CanvasView`, which reads the mouse and
the keys and calls these; what they ask for leaves through ``move_requested`` (photo
pixels, x right, y down; angles in degrees, clockwise as seen), ``copy_requested`` (a
drag with Alt held) or a drag carrying ``REF_ITEM_MIME``.
"""

from __future__ import annotations

import logging
import math

import numpy as np
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt
from PySide6.QtGui import QColor, QCursor, QDrag, QPen, QPixmap, QTransform
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsLineItem,
    QGraphicsPixmapItem,
    QGraphicsSimpleTextItem,
)

from dedit_app.partition import item_bbox
from ui.icons import turn_cursor
from ui.imaging import area_shrink, cutout_image

log = logging.getLogger(__name__)

REF_ITEM_MIME = "application/x-dedit-reference-item"
ALT = Qt.KeyboardModifier.AltModifier  # held as a drag ends: the items are copied there

MIN_RESIZED_SIDE = 16  # image pixels: the shortest side a corner handle shrinks an item to
DRAG_PICTURE = 96  # screen pixels: how large an item dragged off the reference's canvas is
TURN_REACH = 24  # screen pixels round a corner handle, outside the box, where a drag turns
TURN_SNAP = 15.0  # degrees a turn snaps to with Shift held
# screen pixels: how near a dragged box's edge or middle comes to the picture's, or to
# another item's, before it lies on it (Ctrl held: it never snaps)
SNAP_REACH = 6
GUIDE_COLOUR = QColor(255, 61, 154)  # the guides where it snapped: seen on any photo
# Arrow presses this close together (ms) nudge the item as one move, so a designer tapping
# it five pixels over waits for one edit, not five
NUDGE_WAIT_MS = 600
NUDGE_KEYS = {
    Qt.Key.Key_Left: (-1, 0),
    Qt.Key.Key_Right: (1, 0),
    Qt.Key.Key_Up: (0, -1),
    Qt.Key.Key_Down: (0, 1),
}


class Gestures:
    """The canvas's item gestures (see the module); ``self`` is the CanvasView."""

    @staticmethod
    def _guide_items() -> tuple[QGraphicsLineItem, QGraphicsLineItem]:
        """The two guides a drag snaps to, one up and down, one across."""
        pen = QPen(GUIDE_COLOUR, 1)
        pen.setCosmetic(True)  # one screen pixel at any zoom
        guides = QGraphicsLineItem(), QGraphicsLineItem()
        for guide in guides:
            guide.setPen(pen)
            guide.setZValue(11)
            guide.setVisible(False)
        return guides

    def _snap_lines(self, items: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """The x and the y (photo pixels, box edges between pixels) that a drag of
        ``items`` snaps to: the picture's edges and middle, and the edges and middle of the
        box of each other item once those are known (:meth:`_ask_boxes`)."""
        d = self.doc
        h, w = d.labels.shape
        xs, ys = [0.0, w / 2, float(w)], [0.0, h / 2, float(h)]
        for k, (x0, y0, x1, y1) in (d.known_boxes() or {}).items():
            if k not in items:
                xs += [x0, (x0 + x1 + 1) / 2, x1 + 1]
                ys += [y0, (y0 + y1 + 1) / 2, y1 + 1]
        return np.array(xs, float), np.array(ys, float)

    def _ask_boxes(self) -> None:
        """Work out every item's box on the canvas's side thread, once per map, for the
        drags to snap to: asked as an item is pressed, so that they are there by the time
        it moves (a drag already under way takes them when they come)."""
        d = self.doc
        if d is None or d.known_boxes() is not None or self._boxes_asked is d.labels:
            return
        labels, compact, items = d.labels, d.compact_labels, d.visible_items()
        self._boxes_asked = labels

        def find() -> dict:  # 3.6 ms an item at 24 MP on the compact map
            return {k: item_bbox(compact, k, checked=True) for k in items}

        def came(boxes) -> None:
            if self.doc is not d or d.labels is not labels:
                return  # another map since: its boxes are asked when it is dragged on
            d.keep_boxes(labels, boxes)
            g = self._press
            if g is not None and g["kind"] in ("move", "resize") and "lines" in g:
                g["lines"] = self._snap_lines(g["items"])

        self.levels.submit("Finding the items' boxes", find, came, log.info)

    def _snap_drag(self, g: dict, modifiers) -> None:
        """A drag under way: with Shift, keep it level or upright (the axis it went
        further along); then shift it the little that puts the box's left, middle or
        right on the nearest line within SNAP_REACH screen pixels (and its top, middle or
        bottom), unless Ctrl is held, and show a guide where it snapped."""
        level = bool(modifiers & Qt.KeyboardModifier.ShiftModifier)
        if level:
            g["dy" if abs(g["dx"]) >= abs(g["dy"]) else "dx"] = 0.0
        x0, y0, x1, y1 = self._ghost_box
        reach = self._snap_reach()
        snapping = not modifiers & Qt.KeyboardModifier.ControlModifier
        for k, key, (lo, hi) in ((0, "dx", (x0, x1)), (1, "dy", (y0, y1))):
            lines, guide = g["lines"][k], self.guides[k]
            edges = np.array([lo, (lo + hi) / 2, hi], float) + g[key]
            gaps = lines[:, None] - edges[None, :]  # each line less each edge
            at = np.unravel_index(np.argmin(np.abs(gaps)), gaps.shape)
            held = level and g[key] == 0.0  # kept level or upright: it stays there
            if not snapping or held or abs(gaps[at]) > reach:
                guide.setVisible(False)
                continue
            g[key] += float(gaps[at])
            self._show_guide(k, float(lines[at[0]]))

    def _snap_corner(self, g: dict, fixed, moving, s: float, least: float, modifiers) -> float:
        """The scale ``s`` of a resize about corner ``fixed``, changed the little that puts
        the ``moving`` corner (where it is at scale 1) on the nearest snap line, x or y,
        within SNAP_REACH screen pixels; guides shown where it snapped."""
        self._hide_guides()
        if modifiers & Qt.KeyboardModifier.ControlModifier or "lines" not in g:
            return s
        reach = self._snap_reach()
        best = None  # (gap in photo pixels, scale, axis, line)
        for k in (0, 1):
            span = moving[k] - fixed[k]
            if abs(span) < 1:
                continue
            corner = fixed[k] + s * span
            lines = g["lines"][k]
            line = float(lines[np.argmin(np.abs(lines - corner))])
            scale = (line - fixed[k]) / span
            gap = abs(line - corner)
            if gap <= reach and least <= scale <= 8.0 and (best is None or gap < best[0]):
                best = (gap, scale, k, line)
        if best is None:
            return s
        _, s, k, t = best
        self._show_guide(k, t)
        return s

    def _snap_reach(self) -> float:
        """SNAP_REACH in photo pixels at the zoom on show."""
        return SNAP_REACH / max(self.screen_zoom(), 1e-6)

    def _show_guide(self, k: int, t: float) -> None:
        """Guide ``k`` (0: up and down at x = ``t``; 1: across at y = ``t``), the whole
        picture long."""
        h, w = self.doc.labels.shape
        guide = self.guides[k]
        guide.setLine(t, 0, t, h) if k == 0 else guide.setLine(0, t, w, t)
        guide.setVisible(True)

    def _hide_guides(self) -> None:
        for guide in self.guides:
            guide.setVisible(False)

    @staticmethod
    def _gesture_items() -> tuple[QGraphicsPixmapItem, QGraphicsSimpleTextItem]:
        """The ghost (the items' cut-out) and the measure shown beside the pointer."""
        ghost = QGraphicsPixmapItem()
        ghost.setZValue(5)
        ghost.setOpacity(0.85)
        ghost.setVisible(False)
        angle = QGraphicsSimpleTextItem()
        angle.setZValue(13)
        angle.setBrush(QColor(255, 255, 255))
        angle.setPen(QPen(QColor(20, 20, 24), 1.2))  # readable on any photo
        font = angle.font()
        font.setBold(True)
        font.setPixelSize(15)
        angle.setFont(font)
        # the same size at any zoom, a little below and right of the pointer
        angle.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
        angle.setTransform(QTransform().translate(16, 16))
        angle.setVisible(False)
        return ghost, angle

    def _turn_at(self, event) -> bool:
        """Whether the pointer is just outside a corner handle of the selected item's box,
        where a drag turns the item, as in design tools."""
        if not self.handles.isVisible():
            return False
        pos = event.position()
        box = self.mapFromScene(self.handles.rect).boundingRect()
        if box.contains(pos.toPoint()):
            return False
        for c in self.handles.corners():
            v = self.mapFromScene(c)
            if math.hypot(v.x() - pos.x(), v.y() - pos.y()) <= TURN_REACH:
                return True
        return False

    def _turn_cursor(self) -> QCursor:
        if self._turn_shape is None:
            self._turn_shape = turn_cursor()
        return self._turn_shape

    def _show_measure(self, text: str, at: QPointF) -> None:
        """How far a gesture under way has gone, beside the pointer (scene point ``at``):
        the shift of a drag, the size of a resize, the angle of a turn."""
        self.measure_label.setText(text)
        self.measure_label.setPos(at)
        self.measure_label.setVisible(True)

    def _show_copying(self, modifiers) -> None:
        """A drag of items with Alt held copies them where it ends, as in design tools:
        the pointer shows a plus while Alt is held (the items stay under their cut-out)."""
        g = self._press
        if g is None or g["kind"] != "move" or not g["active"]:
            return
        copying = bool(modifiers & ALT)
        shape = Qt.CursorShape.DragCopyCursor if copying else Qt.CursorShape.ArrowCursor
        self.viewport().setCursor(shape)

    def _nudge(self, event) -> bool:
        """An arrow key moves the selected items by a screen pixel (a photo pixel at
        100 %), ten with Shift, as in design tools: their cut-out follows at once, and
        the move is asked NUDGE_WAIT_MS after the last press (or when other items are
        chosen or the picture is clicked). False when the key is not for this (nothing
        selected, another tool, a preview on show): the view scrolls instead."""
        d, g = self.doc, self._press
        if d is None or not d.selection:  # the canvas asks only with the select tool
            return False
        if not self.editable or self.drags_out or (g is not None and g["kind"] != "nudge"):
            return False
        if g is None:
            g = {"kind": "nudge", "items": d.selection, "dx": 0.0, "dy": 0.0, "scale": 1.0}
            self._press = g
            self._start_ghost(g["items"])
        step = max(1, round(1 / self.screen_zoom()))
        if event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            step *= 10
        ux, uy = NUDGE_KEYS[event.key()]
        g["dx"] += ux * step
        g["dy"] += uy * step
        self._place_ghost(g)
        self._nudge_timer.start(NUDGE_WAIT_MS)
        return True

    def end_nudge(self) -> None:
        """Ask for the move the arrow keys made (nothing when none is under way)."""
        g = self._press
        if g is None or g["kind"] != "nudge":
            return
        self._nudge_timer.stop()
        self._press = None
        self.ghost.setVisible(False)
        self._update_handles()
        if g["dx"] or g["dy"]:
            self.move_requested.emit(g["items"], g["dx"], g["dy"], 1.0, 0.0)

    def drop_nudge(self) -> bool:
        """Drop the arrow presses whose move is not asked yet (undo right after them
        undoes them); False when there are none."""
        g = self._press
        if g is None or g["kind"] != "nudge":
            return False
        self._cancel_gesture()
        return True

    def _cutout(self, items: tuple[int, ...], fits: float) -> tuple[QPixmap, tuple, tuple]:
        """``items`` cut out of the picture, transparent around them, shrunk by halves
        while each photo pixel would still cover at most ``fits`` of the picture's pixels
        (screen pixels per photo pixel). Returns the pixmap, its box ``(x0, y0, x1, y1)``
        in photo pixels (ends exclusive) and its photo pixels per pixmap pixel."""
        d = self.doc
        box = x0, y0, x1, y1 = d.items_box(items)
        crop = d.image[y0:y1, x0:x1]
        window = d.labels[y0:y1, x0:x1]
        mask = window == items[0]
        for other in items[1:]:  # a compare per item: np.isin took 80 ms at 17 MP
            mask |= window == other
        h, w = mask.shape
        k = 0
        while fits * 2 ** (k + 1) <= 1.0 and min(h, w) >> (k + 1) >= 16:
            k += 1
        if k:
            size = (w >> k, h >> k)
            crop = area_shrink(crop, size)
            mask = area_shrink(mask.view(np.uint8) * np.uint8(255), size)
        if self.photo.colours is not None:  # as the photo under it is shown
            crop = self.photo.colours(crop)
        pixmap = QPixmap.fromImage(cutout_image(crop, mask))
        return pixmap, box, (w / mask.shape[1], h / mask.shape[0])

    def _start_ghost(self, items: tuple[int, ...]) -> None:
        """The cut-out of ``items`` that follows a drag, a resize or a nudge."""
        # The ghost is seen at the view's zoom, so a picture that size is enough: making a
        # full-size pixmap of a 6-megapixel item held the UI thread 130 ms as a drag began.
        pixmap, box, self._ghost_scale = self._cutout(items, self.screen_zoom())
        self.ghost.setPixmap(pixmap)
        self.ghost.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self.ghost.setPos(float(box[0]), float(box[1]))
        self.ghost.setTransform(QTransform().scale(*self._ghost_scale))
        self.ghost.setVisible(True)
        self.handles.set_rect(None)
        self._ghost_box = box

    def _drag_out(self, item: int) -> None:
        """A reference photo's item dragged off its canvas: it travels as the list's
        items do (REF_ITEM_MIME), to be dropped on an item of the photo to swap it in."""
        md = QMimeData()
        md.setData(REF_ITEM_MIME, str(item).encode())
        md.setText(self.doc.item_name(item))
        drag = QDrag(self)
        drag.setMimeData(md)
        x0, y0, x1, y1 = self.doc.items_box((item,))
        # about DRAG_PICTURE screen pixels across, whatever the item's size
        fits = DRAG_PICTURE / max(x1 - x0, y1 - y0)
        pixmap = self._cutout((item,), fits)[0]
        if max(pixmap.width(), pixmap.height()) > 2 * DRAG_PICTURE:
            pixmap = pixmap.scaled(
                DRAG_PICTURE,
                DRAG_PICTURE,
                Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.SmoothTransformation,
            )
        drag.setPixmap(pixmap)
        drag.setHotSpot(QPoint(pixmap.width() // 2, pixmap.height() // 2))
        drag.exec(Qt.DropAction.CopyAction)

    def _place_ghost(self, g: dict) -> None:
        x0, y0, x1, y1 = self._ghost_box
        s, dx, dy = g.get("scale", 1.0), g.get("dx", 0.0), g.get("dy", 0.0)
        cx, cy = (x1 - x0) / 2, (y1 - y0) / 2  # bbox centre in the ghost's local frame
        t = QTransform()
        t.translate(cx + dx, cy + dy)
        t.rotate(g.get("angle", 0.0))  # clockwise as seen, as the engine's Move.angle
        t.scale(s, s)
        t.translate(-cx, -cy)
        t.scale(*self._ghost_scale)  # from the ghost's pixels to the photo's
        self.ghost.setTransform(t)

    def _resize_gesture(self, g: dict, p: QPointF, modifiers) -> None:
        """Scale about the corner opposite the dragged handle (uniform, keeps the aspect);
        the dragged corner snaps to the nearest line across or up and down within
        SNAP_REACH screen pixels, as a drag does (not with Ctrl held)."""
        x0, y0, x1, y1 = self._ghost_box
        corners = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
        ox, oy = corners[(g["handle"] + 2) % 4]
        hx, hy = corners[g["handle"]]
        d0 = math.hypot(hx - ox, hy - oy)
        # Project the pointer on the box diagonal: the scale a designer expects from a corner.
        ux, uy = (hx - ox) / d0, (hy - oy) / d0
        proj = (p.x() - ox) * ux + (p.y() - oy) * uy
        # A handle dragged to (or past) the opposite corner stops at a size that can still
        # be seen and grabbed: a tenth of the item, and at least MIN_RESIZED_SIDE pixels.
        side = max(min(x1 - x0, y1 - y0), 1)  # the box ends past its last pixel
        least = min(1.0, max(0.1, MIN_RESIZED_SIDE / side))
        s = min(max(proj / d0, least), 8.0)
        s = self._snap_corner(g, (ox, oy), (hx, hy), s, least, modifiers)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        # New centre = opposite corner + s * (centre - opposite corner).
        g["scale"] = s
        g["dx"] = ox + s * (cx - ox) - cx
        g["dy"] = oy + s * (cy - oy) - cy

    def _turn_gesture(self, g: dict, p: QPointF, modifiers) -> None:
        """A turn under way, the pointer at scene point ``p``: the angle from where it
        was pressed, about the item's centre, the short way round (Shift: in TURN_SNAP
        steps), shown beside the pointer."""
        c = g["centre"]
        turned = math.degrees(math.atan2(p.y() - c.y(), p.x() - c.x()) - g["from"])
        turned = (turned + 180) % 360 - 180
        if modifiers & Qt.KeyboardModifier.ShiftModifier:
            turned = TURN_SNAP * round(turned / TURN_SNAP)
        g["angle"] = turned
        self._show_measure(f"{turned:.0f}°", p)


def shift_words(dx: float, dy: float) -> str:
    """A drag's shift as its label says it: "+12, −30 px" (right and down are plus, in
    whole photo pixels, as the move is asked)."""

    def signed(v: float) -> str:
        n = round(v)
        return f"+{n}" if n > 0 else f"−{-n}" if n < 0 else "0"

    return f"{signed(dx)}, {signed(dy)} px"


__all__ = [
    "ALT",
    "Gestures",
    "MIN_RESIZED_SIDE",
    "NUDGE_KEYS",
    "NUDGE_WAIT_MS",
    "REF_ITEM_MIME",
    "SNAP_REACH",
    "shift_words",
]
