"""The wheel, a trackpad and a pinch on the canvas (ui.navigation): a mouse wheel zooms
at the pointer, two fingers pan, a pinch zooms at its centre."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")


@pytest.fixture
def view(qtbot):
    """A canvas at 100 % on a 1200 x 900 photo, far larger than its 400 x 300 view."""
    from dedit_app.project import Project
    from ui.canvas import CanvasView
    from ui.document import Document

    image = np.full((900, 1200, 3), 100, np.uint8)
    canvas = CanvasView()
    qtbot.addWidget(canvas)
    canvas.resize(400, 300)
    canvas.show()
    canvas.set_document(Document(Project.new(image, np.zeros((900, 1200), np.int32), ["all"])))
    canvas.set_zoom(1.0)
    canvas.centerOn(600, 450)
    return canvas


def _wheel(view, pos, angle=(0, 0), pixels=(0, 0), phase=None, ctrl=False):
    from PySide6.QtCore import QPoint, QPointF, Qt
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtWidgets import QApplication

    modifiers = Qt.KeyboardModifier.ControlModifier if ctrl else Qt.KeyboardModifier.NoModifier
    event = QWheelEvent(
        QPointF(*pos),
        QPointF(view.viewport().mapToGlobal(QPoint(*pos))),
        QPoint(*pixels),
        QPoint(*angle),
        Qt.MouseButton.NoButton,
        modifiers,
        phase or Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(view.viewport(), event)


def _pinch(view, pos, kind, value=0.0):
    from PySide6.QtCore import QPoint, QPointF
    from PySide6.QtGui import QNativeGestureEvent, QPointingDevice
    from PySide6.QtWidgets import QApplication

    event = QNativeGestureEvent(
        kind,
        QPointingDevice.primaryPointingDevice(),
        2,
        QPointF(*pos),
        QPointF(*pos),
        QPointF(view.viewport().mapToGlobal(QPoint(*pos))),
        value,
        QPointF(0, 0),
    )
    QApplication.sendEvent(view.viewport(), event)


def _under(view, pos):
    from PySide6.QtCore import QPoint

    p = view.mapToScene(QPoint(*pos))
    return np.array([p.x(), p.y()])


def test_a_mouse_wheel_zooms_keeping_the_photo_point_under_the_pointer(view):
    before = _under(view, (100, 80))
    _wheel(view, (100, 80), angle=(0, 120))  # one notch up
    assert view.zoom == pytest.approx(1.0015**120)
    assert np.abs(_under(view, (100, 80)) - before).max() <= 1.0
    _wheel(view, (100, 80), angle=(0, -240), ctrl=True)  # Ctrl changes nothing here
    assert view.zoom == pytest.approx(1.0015**-120)


def test_two_fingers_on_a_trackpad_pan_and_zoom_only_with_ctrl(view):
    from PySide6.QtCore import Qt

    before = _under(view, (200, 150))
    # fingers moving right and up: the picture follows them
    _wheel(view, (200, 150), angle=(60, -80), pixels=(30, -40), phase=Qt.ScrollPhase.ScrollUpdate)
    assert view.zoom == pytest.approx(1.0)
    np.testing.assert_allclose(_under(view, (200, 150)) - before, [-30, 40], atol=1)
    _wheel(view, (200, 150), angle=(0, 120), phase=Qt.ScrollPhase.ScrollUpdate, ctrl=True)
    assert view.zoom == pytest.approx(1.0015**120)


def test_a_trackpad_without_pixel_deltas_pans_by_lines(view):
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication

    before = _under(view, (200, 150))
    _wheel(view, (200, 150), angle=(0, -120), phase=Qt.ScrollPhase.ScrollUpdate)
    lines = QApplication.wheelScrollLines() * view.verticalScrollBar().singleStep()
    np.testing.assert_allclose(_under(view, (200, 150)) - before, [0, lines], atol=1)


def test_a_pinch_zooms_at_its_centre_and_a_double_tap_switches_fit_and_actual_pixels(view):
    from PySide6.QtCore import Qt

    before = _under(view, (300, 60))
    _pinch(view, (300, 60), Qt.NativeGestureType.ZoomNativeGesture, 0.25)
    assert view.zoom == pytest.approx(1.25)
    assert np.abs(_under(view, (300, 60)) - before).max() <= 1.0
    _pinch(view, (300, 60), Qt.NativeGestureType.SmartZoomNativeGesture)
    assert view._fit and view.zoom < 0.5  # the whole photo
    _pinch(view, (300, 60), Qt.NativeGestureType.SmartZoomNativeGesture)
    assert not view._fit and view.zoom == pytest.approx(1.0)


def test_zoom_to_selection_fills_the_view_with_the_selected_items(qtbot):
    from PySide6.QtCore import QPoint

    from dedit_app.project import Project
    from ui.canvas import CanvasView
    from ui.document import Document

    labels = np.zeros((900, 1200), np.int32)
    labels[100:300, 200:600] = 1  # a 400 x 200 item
    labels[700:704, 1000:1004] = 2  # a speck: 4 x 4
    doc = Document(Project.new(np.full((900, 1200, 3), 90, np.uint8), labels, ["a", "b", "c"]))
    view = CanvasView()
    qtbot.addWidget(view)
    view.resize(448, 348)
    view.show()
    view.set_document(doc)
    vp = view.viewport()
    centre = QPoint(vp.width() // 2, vp.height() // 2)
    doc.select([1])
    view.fit_selection()
    fill = min((vp.width() - 48) / 400, (vp.height() - 48) / 200)
    assert view.zoom == pytest.approx(fill) and not view._fit
    p = view.mapToScene(centre)
    assert abs(p.x() - 400) <= 2 and abs(p.y() - 200) <= 2
    doc.select([2])
    view.fit_selection()
    assert view.screen_zoom() == pytest.approx(8.0)  # a speck: 800 %, not 80 x
    doc.select([1, 2])
    view.fit_selection()  # both: the box round them
    assert view.zoom == pytest.approx(min((vp.width() - 48) / 804, (vp.height() - 48) / 604))
    doc.select([])
    view.fit_selection()
    assert view._fit


def test_a_percentage_is_read_as_designers_type_it():
    from ui.zoom_field import parse_percent

    assert parse_percent("150") == pytest.approx(1.5)
    assert parse_percent(" 150 % ") == pytest.approx(1.5)
    assert parse_percent("12,5%") == pytest.approx(0.125)
    assert parse_percent("33.3") == pytest.approx(0.333)
    for bad in ("", "%", "abc", "-50", "0", "9000", "1e3"):
        assert parse_percent(bad) is None, bad


def test_the_status_bar_zoom_takes_a_typed_or_picked_zoom(scene, window, qtbot):
    """The zoom in the status bar says the canvas's and sets it: typed ("200" + Enter),
    picked from its list, or Fit; a zoom it cannot read leaves the field as it was."""
    from PySide6.QtCore import Qt

    field, canvas = window.zoom_field, window.canvas
    canvas.actual_pixels()
    assert field.currentText() == "100%"
    field.setFocus()
    field.lineEdit().selectAll()
    qtbot.keyClicks(field.lineEdit(), "200")
    qtbot.keyClick(field.lineEdit(), Qt.Key.Key_Return)
    assert canvas.screen_zoom() == pytest.approx(2.0) and field.currentText() == "200%"
    from PySide6.QtGui import QValidator

    check = field.lineEdit().validator()
    assert check.validate("lots", 0)[0] == QValidator.State.Invalid  # no letters typed in
    assert check.validate("12,5 %", 0)[0] == QValidator.State.Acceptable
    field.setEditText("9000")
    qtbot.keyClick(field.lineEdit(), Qt.Key.Key_Return)  # outside 1 % .. 6400 %: kept
    assert canvas.screen_zoom() == pytest.approx(2.0) and field.currentText() == "200%"
    field.activated.emit(field.findText("50%"))  # picked from the list
    assert canvas.screen_zoom() == pytest.approx(0.5) and field.currentText() == "50%"
    field.activated.emit(field.findText("Fit"))
    assert canvas._fit
    # typed and Enter: asked once (the combo box hands Enter on twice), and a typed Fit
    # stays fit rather than becoming the zoom it showed
    asked: list[float] = []
    field.zoom_asked.connect(asked.append)
    for typed in ("100%", "Fit"):
        field.setEditText(typed)
        qtbot.keyClick(field.lineEdit(), Qt.Key.Key_Return)
    assert asked == [pytest.approx(1.0)] and canvas._fit
    window.close_picture()
    assert field.currentText() == "" and field.isHidden()  # the start page has no zoom
