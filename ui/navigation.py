"""What the wheel, a trackpad and a pinch do to the canvas (:class:`ui.canvas.CanvasView`).

A mouse wheel zooms at the pointer. Two fingers on a trackpad pan the picture, in any
direction, as in design tools on a laptop; before, every trackpad scroll zoomed, so a
designer on a MacBook could not pan without Space+drag. With Ctrl held they zoom (a
Windows precision touchpad sends its pinch that way). A pinch (macOS) zooms at its centre,
and a double tap with two fingers switches between fitting the photo and actual pixels.
"""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QInputDevice, QWheelEvent
from PySide6.QtWidgets import QApplication


def from_touchpad(event: QWheelEvent) -> bool:
    """Whether ``event`` comes from fingers on a trackpad rather than a mouse wheel: Qt
    names the device a touchpad (macOS, Linux with libinput), or the event has a scroll
    phase, which only a finger gesture and its momentum have (a Magic Mouse's too)."""
    device = event.pointingDevice()
    if device is not None and device.type() == QInputDevice.DeviceType.TouchPad:
        return True
    return event.phase() != Qt.ScrollPhase.NoScrollPhase


def wants_zoom(event: QWheelEvent) -> bool:
    """Whether ``event`` zooms (a mouse wheel, or anything with Ctrl held) or pans."""
    ctrl = bool(event.modifiers() & Qt.KeyboardModifier.ControlModifier)
    return ctrl or not from_touchpad(event)


def pan_step(event: QWheelEvent, line: int) -> QPoint:
    """How far a trackpad scroll moves the picture, in logical pixels ``(dx, dy)``, in
    the direction the fingers moved: the trackpad's own pixels where Qt has them, else
    its angle in lines of ``line`` pixels, as many a notch as a scroll area scrolls."""
    pixels = event.pixelDelta()
    if not pixels.isNull():
        return pixels
    angle = event.angleDelta()
    per_notch = QApplication.wheelScrollLines() * line / 120
    return QPoint(round(angle.x() * per_notch), round(angle.y() * per_notch))


__all__ = ["from_touchpad", "pan_step", "wants_zoom"]
