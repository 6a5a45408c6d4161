"""Helpers shared by the UI tests, the screenshot script and the UI benchmark: a synthetic
photo, a window with private settings, pointer gestures at image coordinates, and what a
canvas item paints."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PySide6.QtCore import QMimeData, QPoint, QPointF, QSettings, Qt, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication


def synthetic_scene(
    height: int = 240, width: int = 320, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """A small photo-like scene and its true partition: wall (0), table (1), bag (2),
    ball (3). Returns ``(image (H, W, 3) uint8, labels (H, W) int32)``."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((height, width), np.int32)
    labels[int(height * 0.7) :, :] = 1
    y0, y1 = int(height * 0.3), int(height * 0.78)
    x0, x1 = int(width * 0.2), int(width * 0.48)
    labels[y0:y1, x0:x1] = 2
    cv2.circle(
        labels, (int(width * 0.72), int(height * 0.55)), int(min(height, width) * 0.14), 3, -1
    )
    colours = np.array([[226, 220, 206], [245, 245, 242], [40, 62, 140], [214, 92, 48]], np.float32)
    image = colours[labels]
    shade = np.linspace(0.85, 1.05, height, dtype=np.float32)[:, None, None]
    image = image * shade + rng.normal(0, 4, image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8), labels


def write_synthetic_photo(path: Path, height: int = 240, width: int = 320) -> np.ndarray:
    """Write :func:`synthetic_scene` as a PNG; returns its labels."""
    image, labels = synthetic_scene(height, width)
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return labels


def private_settings(folder: Path) -> QSettings:
    """A settings store in ``folder`` (never the user's)."""
    return QSettings(str(Path(folder) / "settings.ini"), QSettings.Format.IniFormat)


def make_window(folder: Path, size: tuple[int, int] = (1280, 820)):
    """A shown main window with private settings, recovery copies in ``folder``, and no
    "save changes?" questions."""
    from ui.app import create_app
    from ui.mainwindow import MainWindow

    create_app()
    window = MainWindow(private_settings(folder), Path(folder) / "recovery")
    window.ask_to_save = False
    window.resize(*size)
    window.show()
    QApplication.processEvents()
    return window


def wait_until(condition: Callable[[], bool], timeout: float = 60.0, what: str = "") -> None:
    """Run the Qt event loop until ``condition()`` holds; AssertionError after ``timeout`` s.

    A real event loop, not a processEvents/sleep spin: a spinning UI thread competes with
    the worker for the GIL and slows small-tensor jobs down severalfold.
    """
    from PySide6.QtCore import QEventLoop, QTimer

    if condition():
        QApplication.processEvents()
        return
    end = time.monotonic() + timeout
    loop = QEventLoop()
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: (condition() or time.monotonic() > end) and loop.quit())
    timer.start()
    loop.exec()
    timer.stop()
    if not condition():
        raise AssertionError(f"timed out waiting for {what or condition}")
    QApplication.processEvents()


def wait_idle(window, timeout: float = 120.0) -> None:
    """Wait until nothing is being read or written, no preview is being worked out, and
    no job is queued or running."""
    wait_until(
        lambda: not (window.files.busy or window.side.busy or window.jobs.busy),
        timeout,
        "the jobs to finish",
    )


def view_point(view, x: float, y: float) -> QPoint:
    """Viewport position of image pixel centre ``(x, y)`` (x right, y down)."""
    return view.mapFromScene(QPointF(x + 0.5, y + 0.5))


def inner_pixel(labels: np.ndarray, item: int) -> tuple[int, int]:
    """The pixel of ``item`` farthest from its border: a safe place to click."""
    mask = (labels == item).astype(np.uint8)
    dist = cv2.distanceTransform(np.pad(mask, 1), cv2.DIST_L2, 3)[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return int(x), int(y)


def click(
    view,
    x: float,
    y: float,
    button=Qt.MouseButton.LeftButton,
    modifiers=Qt.KeyboardModifier.NoModifier,
) -> None:
    QTest.mouseClick(view.viewport(), button, modifiers, view_point(view, x, y))
    QApplication.processEvents()


def drag(
    view,
    points: list[tuple[float, float]],
    button=Qt.MouseButton.LeftButton,
    modifiers=Qt.KeyboardModifier.NoModifier,
) -> None:
    """Press at the first image point, move through the others, release at the last, with
    ``modifiers`` held as it is pressed and let go."""
    vp = view.viewport()
    QTest.mousePress(vp, button, modifiers, view_point(view, *points[0]))
    for x, y in points[1:]:
        QTest.mouseMove(vp, view_point(view, x, y))
        QApplication.processEvents()
    QTest.mouseRelease(vp, button, modifiers, view_point(view, *points[-1]))
    QApplication.processEvents()


def drop_files(widget, paths: list[Path]) -> None:
    """Hand ``widget``'s drop handler files dropped at its middle. Qt delivers a real drop
    only inside a drag, which offscreen tests cannot start."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    centre = QPointF(widget.width() / 2, widget.height() / 2)
    widget.dropEvent(
        QDropEvent(
            centre,
            Qt.DropAction.CopyAction,
            mime,
            Qt.MouseButton.LeftButton,
            Qt.KeyboardModifier.NoModifier,
        )
    )


def painted_on(item, ratio: float, scale: float, size: tuple[int, int], view=None):
    """What ``item`` paints on a grey picture of ``size`` logical pixels whose device has
    ``ratio`` device pixels per logical one (a Retina screen: 2), at ``scale`` logical
    pixels per image pixel (or through ``view``'s transform); ``(h, w, 3)`` uint8 RGB of
    its device pixels."""
    from PySide6.QtGui import QColor, QImage, QPainter, QTransform
    from PySide6.QtWidgets import QStyleOptionGraphicsItem

    from ui.imaging import qimage_rgb

    w, h = round(size[0] * ratio), round(size[1] * ratio)
    target = QImage(w, h, QImage.Format.Format_RGB32)
    target.setDevicePixelRatio(ratio)
    target.fill(QColor(128, 128, 128))
    painter = QPainter(target)
    if view is not None:
        painter.setRenderHints(view.renderHints())  # smooth scaling, as the canvas draws
    painter.setWorldTransform(
        view.viewportTransform() if view is not None else QTransform.fromScale(scale, scale)
    )
    item.paint(painter, QStyleOptionGraphicsItem())
    painter.end()
    return qimage_rgb(target)
