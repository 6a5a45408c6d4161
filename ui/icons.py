"""Line icons drawn with QPainter, so the editor needs no icon files and they follow the
theme's text colour."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QCursor, QIcon, QPainter, QPainterPath, QPen, QPixmap

from ui.theme import COLORS

_SIZE = 48  # drawn at 2x and scaled down by Qt: crisp at 24 px

Draw = Callable[[QPainter], None]


def _pointer(p: QPainter) -> None:
    path = QPainterPath(QPointF(14, 8))
    path.lineTo(14, 38)
    path.lineTo(21, 31)
    path.lineTo(26, 41)
    path.lineTo(30, 39)
    path.lineTo(25, 29)
    path.lineTo(35, 29)
    path.closeSubpath()
    p.drawPath(path)


def _brush(p: QPainter) -> None:
    p.drawLine(QPointF(36, 8), QPointF(20, 26))
    path = QPainterPath(QPointF(20, 26))
    path.cubicTo(12, 24, 10, 34, 8, 40)
    path.cubicTo(16, 40, 26, 38, 24, 30)
    path.closeSubpath()
    p.drawPath(path)


def _eraser(p: QPainter) -> None:
    path = QPainterPath(QPointF(10, 30))
    path.lineTo(26, 12)
    path.lineTo(38, 24)
    path.lineTo(26, 38)
    path.lineTo(16, 38)
    path.closeSubpath()
    p.drawPath(path)
    p.drawLine(QPointF(18, 21), QPointF(30, 33))
    p.drawLine(QPointF(16, 38), QPointF(40, 38))


def _wand(p: QPainter) -> None:
    p.drawLine(QPointF(10, 38), QPointF(28, 20))
    for a, b in (
        ((32, 8), (32, 14)),
        ((38, 14), (42, 10)),
        ((36, 20), (42, 20)),
        ((26, 12), (22, 8)),
    ):
        p.drawLine(QPointF(*a), QPointF(*b))
    p.drawEllipse(QPointF(32, 17), 2, 2)


def _folder(p: QPainter) -> None:
    path = QPainterPath(QPointF(6, 14))
    path.lineTo(18, 14)
    path.lineTo(22, 18)
    path.lineTo(42, 18)
    path.lineTo(42, 38)
    path.lineTo(6, 38)
    path.closeSubpath()
    p.drawPath(path)


def _save(p: QPainter) -> None:
    p.drawRoundedRect(QRectF(8, 8, 32, 32), 4, 4)
    p.drawRect(QRectF(15, 8, 16, 10))
    p.drawRect(QRectF(14, 26, 20, 14))


def _export(p: QPainter) -> None:
    p.drawLine(QPointF(24, 8), QPointF(24, 30))
    p.drawLine(QPointF(16, 16), QPointF(24, 8))
    p.drawLine(QPointF(32, 16), QPointF(24, 8))
    path = QPainterPath(QPointF(10, 26))
    path.lineTo(10, 40)
    path.lineTo(38, 40)
    path.lineTo(38, 26)
    p.drawPath(path)


def _arrow(flip: bool) -> Draw:
    def draw(p: QPainter) -> None:
        if flip:
            p.translate(48, 0)
            p.scale(-1, 1)
        path = QPainterPath(QPointF(14, 18))
        path.lineTo(30, 18)
        path.cubicTo(42, 18, 42, 36, 30, 36)
        path.lineTo(20, 36)
        p.drawPath(path)
        p.drawLine(QPointF(14, 18), QPointF(21, 11))
        p.drawLine(QPointF(14, 18), QPointF(21, 25))

    return draw


def _spark(p: QPainter) -> None:
    path = QPainterPath(QPointF(22, 6))
    path.cubicTo(24, 18, 26, 20, 38, 22)
    path.cubicTo(26, 24, 24, 26, 22, 38)
    path.cubicTo(20, 26, 18, 24, 6, 22)
    path.cubicTo(18, 20, 20, 18, 22, 6)
    p.drawPath(path)
    p.drawLine(QPointF(38, 34), QPointF(38, 42))
    p.drawLine(QPointF(34, 38), QPointF(42, 38))


def _gear(p: QPainter) -> None:
    p.drawEllipse(QPointF(24, 24), 6, 6)
    p.drawEllipse(QPointF(24, 24), 14, 14)
    import math

    for k in range(8):
        a = k * math.pi / 4
        p.drawLine(
            QPointF(24 + 14 * math.cos(a), 24 + 14 * math.sin(a)),
            QPointF(24 + 19 * math.cos(a), 24 + 19 * math.sin(a)),
        )


def _image(p: QPainter) -> None:
    p.drawRoundedRect(QRectF(6, 10, 36, 28), 4, 4)
    p.drawEllipse(QPointF(16, 19), 3, 3)
    path = QPainterPath(QPointF(6, 34))
    path.lineTo(18, 24)
    path.lineTo(26, 31)
    path.lineTo(32, 26)
    path.lineTo(42, 34)
    p.drawPath(path)


def _eye(p: QPainter) -> None:
    path = QPainterPath(QPointF(6, 24))
    path.cubicTo(14, 12, 34, 12, 42, 24)
    path.cubicTo(34, 36, 14, 36, 6, 24)
    p.drawPath(path)
    p.drawEllipse(QPointF(24, 24), 5, 5)


def _fit(p: QPainter) -> None:
    for (x, y), (dx, dy) in (
        ((8, 8), (1, 1)),
        ((40, 8), (-1, 1)),
        ((40, 40), (-1, -1)),
        ((8, 40), (1, -1)),
    ):
        p.drawLine(QPointF(x, y), QPointF(x + 8 * dx, y))
        p.drawLine(QPointF(x, y), QPointF(x, y + 8 * dy))
    p.drawRect(QRectF(16, 16, 16, 16))


def _turn(p: QPainter) -> None:
    """Three quarters of a circle with an arrowhead: turning."""
    path = QPainterPath()
    path.arcMoveTo(QRectF(10, 10, 28, 28), 90)
    path.arcTo(QRectF(10, 10, 28, 28), 90, 270)
    p.drawPath(path)
    end = QPointF(38, 24)  # where the arc ends, at three o'clock, heading up
    p.drawLine(end, QPointF(32, 30))
    p.drawLine(end, QPointF(44, 30))


def turn_cursor() -> QCursor:
    """The pointer beside a corner handle, where a drag turns the item: a dark curved
    arrow outlined in white, so that it shows on any photo."""
    pm = QPixmap(_SIZE, _SIZE)
    pm.fill(Qt.GlobalColor.transparent)
    p = QPainter(pm)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    for colour, width in (("#ffffff", 7), ("#1b1b1f", 3)):
        cap, join = Qt.PenCapStyle.RoundCap, Qt.PenJoinStyle.RoundJoin
        p.setPen(QPen(QColor(colour), width, Qt.PenStyle.SolidLine, cap, join))
        _turn(p)
    p.end()
    pm = pm.scaled(
        24, 24, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
    )
    return QCursor(pm, 12, 12)


_DRAW: dict[str, Draw] = {
    "select": _pointer,
    "brush": _brush,
    "eraser": _eraser,
    "click": _wand,
    "open": _folder,
    "save": _save,
    "export": _export,
    "undo": _arrow(False),
    "redo": _arrow(True),
    "prepare": _spark,
    "settings": _gear,
    "reference": _image,
    "overlay": _eye,
    "fit": _fit,
}

_cache: dict[tuple[str, str], QIcon] = {}


def icon(name: str, colour: str | None = None) -> QIcon:
    """The named icon in the theme's text colour (and white when checked)."""
    key = (name, colour or "")
    if key in _cache:
        return _cache[key]
    ic = QIcon()
    for mode_colour, state in (
        (colour or COLORS["text"], QIcon.State.Off),
        ("#ffffff", QIcon.State.On),
    ):
        pm = QPixmap(_SIZE, _SIZE)
        pm.fill(Qt.GlobalColor.transparent)
        p = QPainter(pm)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setPen(
            QPen(
                QColor(mode_colour),
                3,
                Qt.PenStyle.SolidLine,
                Qt.PenCapStyle.RoundCap,
                Qt.PenJoinStyle.RoundJoin,
            )
        )
        _DRAW[name](p)
        p.end()
        ic.addPixmap(pm, QIcon.Mode.Normal, state)
        if state is QIcon.State.Off:
            dim = QPixmap(pm)
            ic.addPixmap(dim, QIcon.Mode.Disabled, state)
    _cache[key] = ic
    return ic
