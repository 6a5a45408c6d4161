"""Copy and paste: the selected items leave as a transparent cut-out at full resolution,
a pasted picture opens as a new photo, and a focused text field keeps Ctrl+C for its text."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import QMimeData, Qt, QUrl  # noqa: E402
from PySide6.QtGui import QImage  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from dedit_app.imageio import load_image  # noqa: E402
from ui.imaging import qimage_rgba, rgb_image  # noqa: E402
from ui.testing import wait_idle, write_synthetic_photo  # noqa: E402


def clipboard_pixels() -> np.ndarray:
    return qimage_rgba(QApplication.clipboard().image())


def test_copy_gives_the_selected_items_as_a_cut_out(scene):
    window, labels = scene
    doc = window.doc
    doc.select([2, 3])
    window.act_copy.trigger()
    got = clipboard_pixels()
    ys, xs = np.nonzero(np.isin(labels, [2, 3]))
    box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    inside = np.isin(labels[box], [2, 3])
    assert got.shape[:2] == inside.shape
    assert (got[..., 3] == np.where(inside, 255, 0)).all()
    assert np.array_equal(got[..., :3][inside], doc.image[box][inside])
    assert "as a cut-out" in window.status_message.text()

    doc.select([])  # nothing selected: the whole picture
    window.act_copy.trigger()
    got = clipboard_pixels()
    assert np.array_equal(got[..., :3], doc.image) and (got[..., 3] == 255).all()


def test_ctrl_c_in_the_prompt_field_copies_its_text(scene):
    window, _labels = scene
    window.doc.select([2])
    field = window.items_panel.prompt_edit
    field.setFocus()
    field.setText("a white handbag")
    field.selectAll()
    QTest.keyClick(field, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    assert QApplication.clipboard().text() == "a white handbag"


def test_a_pasted_picture_opens_as_a_new_unsaved_photo(scene):
    window, _labels = scene
    rgba = np.full((50, 70, 4), 40, np.uint8)
    rgba[..., 3] = 255
    rgba[:10, :, 3] = 0  # a transparent band, as from a layer: white, as for files
    image = QImage(rgba.data, 70, 50, 70 * 4, QImage.Format.Format_RGBA8888).copy()
    QApplication.clipboard().setImage(image)
    window.act_paste.trigger()
    assert "Pasted a picture (70×50)" in window.status_message.text()
    wait_idle(window)  # its items are found, as for an opened photo
    doc = window.doc
    assert doc.project.source == "pasted.png" and doc.folder is None and doc.dirty
    assert (doc.image[:10] == 255).all() and (doc.image[10:] == 40).all()
    assert len(doc.visible_items()) >= 2


def test_a_copied_image_file_pastes_as_that_file(window, tmp_path):
    photo = tmp_path / "copied in the file manager.png"
    write_synthetic_photo(photo)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(photo))])
    QApplication.clipboard().setMimeData(mime)
    window.act_paste.trigger()
    wait_idle(window)
    assert window.doc.project.source == photo.name
    assert np.array_equal(window.doc.image, load_image(photo))


def test_pasting_nothing_or_keeping_the_picture_changes_nothing(scene, monkeypatch):
    window, _labels = scene
    doc = window.doc
    QApplication.clipboard().setText("only words")
    window.act_paste.trigger()
    assert "The clipboard holds no picture" in window.message_text()
    assert window.doc is doc

    QApplication.clipboard().setImage(rgb_image(np.zeros((8, 8, 3), np.uint8)))
    monkeypatch.setattr(window, "maybe_discard", lambda: False)  # "Cancel" to "save changes?"
    window.act_paste.trigger()
    assert window.doc is doc
