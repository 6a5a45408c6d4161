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
    said = window.status_message.text()
    assert "Pasted a picture (70×50)" in said
    assert "The pasted picture has transparent pixels; the editor placed them on white" in said
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


def drag_row(items_list, item: int) -> None:
    """Press on ``item``'s row and move the mouse 60 px to the right, as a hand would (the
    release goes to the drag, not to the list)."""
    from PySide6.QtCore import QEvent, QPoint, QPointF
    from PySide6.QtGui import QMouseEvent

    from ui.items_panel import ITEM_ROLE

    row = next(
        items_list.item(r)
        for r in range(items_list.count())
        if items_list.item(r).data(ITEM_ROLE) == item
    )
    viewport, at = items_list.viewport(), items_list.visualItemRect(row).center()
    left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
    steps = [(QEvent.Type.MouseButtonPress, at, left, left)]
    steps += [(QEvent.Type.MouseMove, at + QPoint(dx, 0), none, left) for dx in (5, 20, 60)]
    for kind, pos, button, buttons in steps:
        event = QMouseEvent(
            kind,
            QPointF(pos),
            QPointF(viewport.mapToGlobal(pos)),
            button,
            buttons,
            Qt.KeyboardModifier.NoModifier,
        )
        QApplication.sendEvent(viewport, event)


def test_dragging_items_out_of_the_list_carries_their_cut_out(scene, tmp_path, monkeypatch):
    from ui import clipboard

    window, labels = scene
    doc = window.doc
    doc.select([2, 3])
    monkeypatch.setattr(clipboard, "drag_folder", lambda: tmp_path / "drag")
    seen = {}

    def drop_target(drag, _action):  # QDrag.exec: what another program would ask for
        mime = drag.mimeData()
        seen["preview"] = drag.pixmap().size()
        seen["selection"] = list(doc.selection)
        seen["made at start"] = mime._image is not None or mime.file.exists()
        seen["own drop"] = clipboard.dropped_files(mime)
        seen["png"] = bytes(mime.data("image/png"))
        seen["files"] = [u.toLocalFile() for u in mime.urls()]
        return Qt.DropAction.CopyAction

    monkeypatch.setattr(clipboard.QDrag, "exec", drop_target)
    drag_row(window.items_panel.list, 2)
    assert seen["selection"] == [2, 3]  # pressing a selected row keeps the selection

    ys, xs = np.nonzero(np.isin(labels, [2, 3]))
    box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    inside = np.isin(labels[box], [2, 3])
    want = np.dstack([doc.image[box], np.where(inside, 255, 0).astype(np.uint8)])
    want[~inside, :3] = 0
    assert not seen["made at start"]  # made when the drop target asks, not before
    assert seen["own drop"] == []  # dropped back on the picture it opens nothing
    assert max(seen["preview"].width(), seen["preview"].height()) <= clipboard.DRAG_PREVIEW
    for got in (QImage.fromData(seen["png"]), QImage(seen["files"][0])):
        pixels = qimage_rgba(got)
        pixels[pixels[..., 3] == 0, :3] = 0
        assert np.array_equal(pixels, want)
    name = f"{doc.item_name(2)} + {doc.item_name(3)}.png"
    assert seen["files"] == [str(tmp_path / "drag" / name)]


def test_a_dragged_cut_out_that_cannot_be_written_says_so(scene, tmp_path, monkeypatch):
    from ui import clipboard

    window, _labels = scene
    window.doc.select([2])
    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    mime = clipboard.CutoutMime(window.doc, [2], blocker / "drag", window.show_error)
    assert mime.urls() == []
    assert "Could not write the dragged cut-out" in window.message_text()
    assert "Ctrl+C copies it instead" in window.message_text()
    assert not QImage.fromData(bytes(mime.data("image/png"))).isNull()  # the picture still goes


def test_copies_and_dragged_cut_outs_carry_the_photos_colour_profile(scene, tmp_path):
    import io

    from PIL import Image, ImageCms

    from ui import clipboard

    window, _labels = scene
    doc = window.doc
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    doc.project.profile = profile
    for selection in ([], [2]):
        doc.select(selection)
        window.act_copy.trigger()
        assert bytes(QApplication.clipboard().image().colorSpace().iccProfile()) == profile
    mime = clipboard.CutoutMime(doc, [2, 3], tmp_path, window.show_error)
    with Image.open(io.BytesIO(bytes(mime.retrieveData("image/png", None)))) as im:
        assert im.info.get("icc_profile") == profile
    assert mime._write()
    with Image.open(mime.file) as im:
        assert im.info.get("icc_profile") == profile


def test_a_pasted_picture_keeps_the_colour_profile_it_came_with(scene):
    """A screenshot on a Mac comes tagged Display P3; none: none kept."""
    from PIL import ImageCms
    from PySide6.QtCore import QByteArray
    from PySide6.QtGui import QColorSpace

    window, _labels = scene
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    rgb = np.full((30, 40, 3), 90, np.uint8)
    for tagged in (True, False):
        image = rgb_image(rgb)
        if tagged:
            image.setColorSpace(QColorSpace.fromIccProfile(QByteArray(profile)))
        QApplication.clipboard().setImage(image)
        window.act_paste.trigger()
        wait_idle(window)
        assert window.doc.project.source == "pasted.png"
        assert window.doc.project.profile == (profile if tagged else None)
