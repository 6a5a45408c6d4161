"""Opening, saving and exporting large pictures on the files thread: the window stays
live, the result is the same as done at once, and nothing asked for is lost."""

from __future__ import annotations

import errno
import json
import threading
from pathlib import Path

import image_corpus as corpus
import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

import shiboken6  # noqa: E402
from editor_fixtures import (  # noqa: E402
    NAMES,
    assert_holds_history,
    count_where,
    land_edits,
    tight_undo_budget,
    undo_arrays,
)
from PySide6.QtCore import QSettings, QStandardPaths, Qt  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import (  # noqa: E402
    QAbstractItemView,
    QApplication,
    QDialogButtonBox,
    QFileDialog,
    QFileSystemModel,
    QLineEdit,
    QTreeView,
)

from dedit_app import spill  # noqa: E402
from dedit_app.imageio import load_image  # noqa: E402
from dedit_app.project import Project  # noqa: E402
from dedit_app.project_file import FORMAT_VERSION  # noqa: E402
from ui.open_dialog import OPEN_FILTERS, OpenDialog  # noqa: E402
from ui.testing import wait_idle, wait_until, write_synthetic_photo  # noqa: E402


# ----- opening ---------------------------------------------------------------------------
def test_a_large_photo_decodes_off_the_ui_thread_then_opens(window, tmp_path, monkeypatch):
    window.files.aside_from = 0  # every photo counts as large
    photo = tmp_path / "large.png"
    write_synthetic_photo(photo)
    counted = count_where(monkeypatch)
    assert window.open_path(photo)
    assert window.opening and window.doc is None  # it arrives later; the window is live
    assert "Opening large.png (320×240)" in window.status_message.text()
    wait_idle(window)
    assert not window.opening and window.doc.project.source == "large.png"
    np.testing.assert_array_equal(window.doc.image, load_image(photo))
    assert len(window.doc.visible_items()) > 1  # its items were found, as for any photo
    # The items list's pixel counts came with the items found, counted on the worker.
    assert counted and threading.main_thread() not in counted
    n = len(window.doc.items)
    np.testing.assert_array_equal(
        window.doc.counts, np.bincount(window.doc.labels.ravel(), minlength=n)
    )


@pytest.mark.parametrize("large", [False, True])
def test_opening_a_photo_says_what_its_file_held_that_the_picture_leaves_out(
    window, tmp_path, large
):
    from PIL import Image

    window.files.aside_from = 0 if large else 10**9
    rgba = np.zeros((30, 40, 4), np.uint8)
    rgba[5:25, 10:30] = (20, 90, 200, 255)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "cut-out.png")
    assert window.open_path(tmp_path / "cut-out.png")
    wait_idle(window)
    assert window.doc.project.source == "cut-out.png"
    assert "cut-out.png has transparent pixels; the editor placed them on white" in (
        window.message_text()
    )
    # an ordinary photo says nothing of the kind
    write_synthetic_photo(tmp_path / "plain.png")
    assert window.open_path(tmp_path / "plain.png")
    wait_idle(window)
    assert window.doc.project.source == "plain.png" and "white" not in window.message_text()
    # a reference photo too
    path = corpus.make_multi_frame(tmp_path, "GIF")
    assert window.reference_photo.open(path)
    wait_idle(window)
    assert window.reference_photo.doc.project.source == "frames.gif"
    assert f"{path} has 3 frames; the editor took the first." in window.message_text()


def test_a_large_photo_found_damaged_when_decoded_keeps_the_current_picture(scene, tmp_path):
    window, _labels = scene
    doc = window.doc
    window.files.aside_from = 0
    damaged = corpus.make_truncated_png(tmp_path)
    assert window.open_path(damaged)  # the header is fine; decoding finds the damage
    wait_idle(window)
    assert "truncated or corrupt" in window.message_text()
    assert window.message_bar.level == "error"
    assert window.doc is doc


def test_the_latest_photo_chosen_wins_over_one_still_decoding(window, tmp_path):
    window.files.aside_from = 0
    first, second = tmp_path / "first.png", tmp_path / "second.png"
    write_synthetic_photo(first)
    write_synthetic_photo(second, 120, 160)
    assert window.open_path(first)
    window.files.aside_from = 10**9  # the second one decodes at once, on the UI thread
    assert window.open_path(second)
    assert window.doc.project.source == "second.png" and not window.opening
    wait_idle(window)
    assert window.doc.project.source == "second.png"


def test_changes_made_while_a_photo_decodes_are_asked_about_again(scene, tmp_path, monkeypatch):
    window, labels = scene
    doc = window.doc
    window.files.aside_from = 0
    photo = tmp_path / "next.png"
    write_synthetic_photo(photo)
    assert window.open_path(photo)
    # The answer comes through the event loop, so this change lands before it.
    doc.set_partition(np.where(labels == 3, 2, labels), list(NAMES), "Merge")
    asked = []
    monkeypatch.setattr(window, "maybe_discard", lambda: bool(asked.append(True)))
    wait_idle(window)
    assert asked == [True]
    assert window.doc is doc and "Kept the current picture" in window.status_message.text()


def test_a_save_of_many_earlier_pictures_is_written_aside(scene, tmp_path):
    """Each edit's earlier picture is encoded at the save too: many of a small photo are
    as much work as one large one, and go to the files thread like it."""
    window, labels = scene
    doc = window.doc
    h, w = labels.shape
    window.files.aside_from = 3 * h * w
    assert window.save_project(tmp_path / "a.dedit") and not doc.dirty  # saved at once
    for k in range(3):
        edited = doc.image.copy()
        edited[k] = 255
        doc.apply_result(edited, doc.labels, {"kind": "recon"}, f"Edit {k}")
    assert window.save_project(tmp_path / "b.dedit")
    assert window.files.saving and doc.dirty  # under way on the files thread
    wait_idle(window)
    assert not doc.dirty and len(Project.load(tmp_path / "b.dedit").history) == 3


def test_a_save_after_undo_moved_earlier_pictures_to_files_writes_the_whole_history(
    scene, tmp_path
):
    window, _labels = scene
    doc = window.doc
    tight_undo_budget(doc, tmp_path / "scratch")
    states = land_edits(doc, 5)
    assert any(spill.file_backed(a) for a in undo_arrays(doc) if a is not None)
    window.files.aside_from = 0  # written on the files thread, as a large save is
    assert window.save_project(tmp_path / "a.dedit")
    wait_idle(window)
    assert not doc.dirty
    assert_holds_history(Project.load(tmp_path / "a.dedit"), states, 5)
    window.act_undo.trigger()  # and undo still has them after the save
    np.testing.assert_array_equal(doc.image, states[-2][0])


def test_a_large_project_is_read_aside_and_a_newer_one_is_refused_at_once(
    scene, tmp_path, monkeypatch
):
    window, labels = scene
    doc = window.doc
    target = tmp_path / "kept.dedit"
    assert window.save_project(target) and not doc.dirty  # small: saved at once
    window.files.aside_from = 0
    counted = count_where(monkeypatch)
    assert window.open_path(target)
    assert window.opening and window.doc is doc
    assert "Opening kept.dedit (320×240)" in window.status_message.text()
    wait_idle(window)
    opened = window.doc
    assert opened is not doc and opened.folder == target and not opened.dirty
    np.testing.assert_array_equal(opened.labels, labels)
    # The items list's pixel counts were worked out on the files thread, with the reading.
    assert counted and threading.main_thread() not in counted
    np.testing.assert_array_equal(opened.counts, np.bincount(labels.ravel(), minlength=4))
    np.testing.assert_array_equal(opened.image, doc.image)
    assert [i.name for i in opened.items] == NAMES

    newer = tmp_path / "newer.dedit"
    newer.mkdir()
    meta = json.loads((target / "project.json").read_text())
    later = {**meta, "version": FORMAT_VERSION + 1}  # one past the newest this version reads
    (newer / "project.json").write_text(json.dumps(later))
    assert not window.open_path(newer)
    assert "newer D-Edit Studio" in window.message_text()
    assert window.doc is opened and not window.opening


# ----- the Open dialog -------------------------------------------------------------------
def _folder_of_photo_and_project(folder):
    """``folder`` with photo.png, a saved-looking a.dedit/, a plain folder and a text file."""
    write_synthetic_photo(folder / "photo.png")
    (folder / "a.dedit").mkdir()
    (folder / "a.dedit" / "project.json").write_text("{}")
    (folder / "plain").mkdir()
    (folder / "notes.txt").write_text("not a picture")
    return folder / "a.dedit"


def _listed(dialog, timeout=10.0):
    """The view on show (list or details, as the user last left Qt's dialog) and the names
    it lists, once the dialog has read its folder."""
    views = [dialog.findChild(QAbstractItemView, n) for n in ("listView", "treeView")]
    view = next(v for v in views if v.isVisible())

    def names():
        model, root = view.model(), view.rootIndex()
        return [model.index(i, 0, root).data() for i in range(model.rowCount(root))]

    wait_until(lambda: "photo.png" in names(), timeout, "the dialog lists the folder")
    return view, names()


def _row(view, name):
    model, root = view.model(), view.rootIndex()
    return next(
        model.index(i, 0, root)
        for i in range(model.rowCount(root))
        if model.index(i, 0, root).data() == name
    )


def _open_button(dialog):
    return dialog.findChild(QDialogButtonBox).button(QDialogButtonBox.StandardButton.Open)


def _click(view, name):
    centre = view.visualRect(_row(view, name)).center()
    QTest.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=centre)
    return centre


def _double_click(view, name):
    centre = _click(view, name)
    QTest.mouseDClick(view.viewport(), Qt.MouseButton.LeftButton, pos=centre)
    QApplication.processEvents()


def _dialogs_on_show(window):
    return [d for d in window.findChildren(OpenDialog) if d.isVisible()]


@pytest.fixture
def opening(window, tmp_path, monkeypatch):
    """The window with a folder of a photo and a project, and what Open asked to open.
    Qt's dialog keeps its history and view in the user's Qt settings: here, in tmp_path."""
    QSettings.setPath(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, str(tmp_path))
    user_config = QStandardPaths.writableLocation(
        QStandardPaths.StandardLocation.GenericConfigLocation
    )
    folder = tmp_path / "pictures"
    folder.mkdir()
    bundle = _folder_of_photo_and_project(folder)
    asked = []
    monkeypatch.setattr(window, "open_path", lambda path: bool(asked.append(Path(path))))
    yield window, folder, bundle, asked
    for dialog in window.findChildren(OpenDialog):
        shiboken6.delete(dialog)  # it saves its state as it goes, still in tmp_path
    QSettings.setPath(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, user_config)


def test_the_open_dialog_lists_a_project_among_the_photos_and_open_chooses_it(opening, tmp_path):
    window, folder, bundle, asked = opening
    window.remember(folder / "photo.png")  # it starts in the most recent file's folder
    dialog = window.open_dialog()
    assert dialog.isVisible() and Path(dialog.directory().absolutePath()) == folder
    assert dialog.selectedNameFilter().startswith("Photos and projects (")
    view, names = _listed(dialog)
    assert "a.dedit" in names and "photo.png" in names and "notes.txt" not in names
    chosen = []
    dialog.fileSelected.connect(chosen.append)
    _click(view, "a.dedit")  # select the project, then Open
    assert dialog.findChild(QLineEdit, "fileNameEdit").text() == "a.dedit"  # as for a photo
    assert _open_button(dialog).isEnabled()
    QTest.mouseClick(_open_button(dialog), Qt.MouseButton.LeftButton)
    assert chosen == [str(bundle)] and asked == [bundle]  # the project, not a look inside
    assert not _dialogs_on_show(window)


@pytest.mark.parametrize("mode", ["List", "Detail"])
def test_double_clicking_a_project_in_the_open_dialog_opens_it(opening, mode):
    window, folder, bundle, asked = opening
    dialog = window.open_dialog()
    dialog.setViewMode(QFileDialog.ViewMode[mode])
    dialog.setDirectory(str(folder))
    view, _names = _listed(dialog)
    _double_click(view, "plain")  # an ordinary folder is still entered
    assert dialog.isVisible() and Path(dialog.directory().absolutePath()) == folder / "plain"
    assert asked == []
    dialog.setDirectory(str(folder))
    view, _names = _listed(dialog)
    _double_click(view, "a.dedit")
    assert asked == [bundle] and not _dialogs_on_show(window)


def test_the_open_dialog_opens_a_typed_project_a_photo_or_a_project_json(opening):
    window, folder, bundle, asked = opening
    dialog = window.open_dialog()
    dialog.setDirectory(str(folder))
    dialog.selectFile("a.dedit")  # typed in the name box, then Enter
    dialog.accept()
    dialog = window.open_dialog()
    dialog.setDirectory(str(folder))
    dialog.selectFile("photo.png")
    dialog.accept()
    dialog = window.open_dialog()
    dialog.setDirectory(str(bundle))  # inside a project, as before
    dialog.selectNameFilter(next(f for f in OPEN_FILTERS if "project.json" in f))
    dialog.selectFile("project.json")
    dialog.accept()
    assert asked == [bundle, folder / "photo.png", bundle]


def test_the_open_dialog_shows_a_project_as_a_project_not_a_folder(opening):
    window, folder, bundle, _asked = opening
    dialog = window.open_dialog()
    dialog.setDirectory(str(folder))
    _listed(dialog)
    model = dialog.findChild(QFileSystemModel)
    project, plain = model.index(str(bundle)), model.index(str(folder / "plain"))
    wait_until(lambda: model.type(project) == "D-Edit project", 10, "the project's type")
    assert model.type(plain) != "D-Edit project"
    assert model.fileIcon(project).cacheKey() == dialog.icons.project.cacheKey()
    assert model.fileIcon(plain).cacheKey() != dialog.icons.project.cacheKey()
    details = dialog.findChild(QTreeView, "treeView")  # its Type column reads it whole
    said = details.fontMetrics().horizontalAdvance("D-Edit project")
    assert details.header().sectionSize(2) > said
    dialog.reject()


@pytest.mark.parametrize("mode", ["List", "Detail"])
def test_the_open_dialog_sorts_a_project_among_the_photos_not_with_the_folders(opening, mode):
    window, folder, _bundle, _asked = opening
    for name in ("holiday.png", "house.jpg", "Pear.png", "photo 10.png", "photo 2.png"):
        (folder / name).write_bytes((folder / "photo.png").read_bytes())
    (folder / "holiday.dedit").mkdir()
    (folder / "holiday.dedit" / "project.json").write_text("{}")
    (folder / "zzz").mkdir()
    dialog = window.open_dialog()
    dialog.setViewMode(QFileDialog.ViewMode[mode])
    dialog.setDirectory(str(folder))
    # case aside, as Qt's own model sorts, and numbers as numbers
    expected = ["plain", "zzz", "a.dedit", "holiday.dedit", "holiday.png", "house.jpg"]
    expected += ["Pear.png", "photo 2.png", "photo 10.png", "photo.png"]
    view, _names = _listed(dialog)

    def names():
        model, root = view.model(), view.rootIndex()
        return [model.index(i, 0, root).data() for i in range(model.rowCount(root))]

    try:
        wait_until(lambda: names() == expected, 10, "projects sorted among the photos")
    except AssertionError:
        raise AssertionError(f"listed {names()}") from None
    if mode == "Detail":  # sorted the other way, folders stay first
        view.sortByColumn(0, Qt.SortOrder.DescendingOrder)
        wait_until(lambda: names() == expected[:2][::-1] + expected[2:][::-1], 10, "reversed")
    dialog.reject()


# ----- saving ----------------------------------------------------------------------------


def test_a_large_save_writes_its_pictures_aside_then_saves_what_is_there(scene, tmp_path):
    window, labels = scene
    doc = window.doc
    window.files.aside_from = 0
    doc.rename(2, "handbag")
    target = tmp_path / "big.dedit"
    assert window.save_project(target)
    assert window.files.saving and doc.dirty
    assert "Saving big.dedit" in window.status_message.text()
    doc.set_prompt(3, "a red ball")  # made while the pictures are written: saved too
    wait_idle(window)
    assert not window.files.saving and not doc.dirty
    assert "Saved big.dedit" in window.status_message.text()
    assert "big.dedit" in window.windowTitle()
    again = Project.load(target)
    assert again.items[2].name == "handbag" and again.items[3].prompt == "a red ball"
    np.testing.assert_array_equal(again.image, doc.image)
    np.testing.assert_array_equal(again.labels, labels)


def test_a_save_as_asked_for_during_a_save_follows_it(scene, tmp_path):
    window, labels = scene
    doc = window.doc
    window.files.aside_from = 0
    first, second = tmp_path / "first.dedit", tmp_path / "second.dedit"
    assert window.save_project(first)
    merged = np.where(labels == 3, 2, labels)
    doc.set_partition(merged, list(NAMES), "Merge")
    assert window.save_project(second)  # waits for the first save, then follows it
    wait_idle(window)
    assert doc.folder == second and not doc.dirty
    np.testing.assert_array_equal(Project.load(second).labels, merged)
    assert Project.load(first).labels.shape == labels.shape


def test_opening_a_photo_during_a_save_completes_the_save_first(scene, tmp_path):
    window, _labels = scene
    doc = window.doc
    window.files.aside_from = 0
    doc.rename(1, "desk")
    target = tmp_path / "before.dedit"
    assert window.save_project(target)
    assert window.save_project(tmp_path / "also.dedit")  # follows the first
    other = tmp_path / "other.png"
    write_synthetic_photo(other, 120, 160)
    window.files.aside_from = 10**9  # the next photo opens at once
    assert window.open_path(other)
    assert window.doc.project.source == "other.png" and not window.files.saving
    assert Project.load(target).items[1].name == "desk"
    assert Project.load(tmp_path / "also.dedit").items[1].name == "desk"
    wait_idle(window)  # the save's late answer changes nothing
    assert window.doc.project.source == "other.png"


def test_a_large_save_that_fails_says_why_and_keeps_the_work(scene, tmp_path, monkeypatch):
    window, _labels = scene
    doc = window.doc

    def disk_full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    # every file of the save: the pictures and the project file
    monkeypatch.setattr("dedit_app.bundle_files.atomic_write_bytes", disk_full)
    monkeypatch.setattr("dedit_app.project.atomic_write_bytes", disk_full)
    window.files.aside_from = 0
    doc.rename(2, "handbag")
    target = tmp_path / "full.dedit"
    assert window.save_project(target)
    wait_idle(window)
    assert "The disk is full: could not save to" in window.message_text()
    assert window.message_bar.level == "error"
    assert doc.dirty and doc.items[2].name == "handbag" and not window.files.saving
    assert not (target / "project.json").exists()


# ----- exporting -------------------------------------------------------------------------


def test_the_export_dialogs_type_gives_the_name_its_extension(scene, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    from ui.files import export_name

    offered = "scene-edited.png"
    jpeg, webp, png = "JPEG (*.jpg *.jpeg)", "WebP (*.webp)", "PNG (*.png)"
    assert export_name("/x/final", jpeg, offered).name == "final.jpg"
    assert export_name("/x/final.v2", webp, offered).name == "final.v2.webp"
    assert export_name("/x/scene-edited.png", jpeg, offered).name == "scene-edited.jpg"
    assert export_name("/x/mine.png", jpeg, offered).name == "mine.png"  # typed: kept
    assert export_name("/x/a.tiff", png, offered).name == "a.tiff"
    window, _labels = scene
    answer = (str(tmp_path / "final"), webp)
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: answer)
    window.files.export_dialog()
    wait_idle(window)
    assert load_image(tmp_path / "final.webp").shape == window.doc.image.shape


def test_the_selected_items_export_as_a_cut_out_transparent_around_them(
    scene, tmp_path, monkeypatch
):
    import cv2
    from PySide6.QtWidgets import QFileDialog

    window, labels = scene
    doc = window.doc
    assert not window.act_export_items.isEnabled()  # nothing selected
    window.files.export_cutout_dialog()
    assert "Select the items to export first" in window.message_text()
    doc.select((2, 3))
    assert window.act_export_items.isEnabled()
    asked = []

    def ask(_parent, _title, offered, filters):
        asked.append((offered, filters))
        return str(tmp_path / "both"), "PNG (*.png)"

    monkeypatch.setattr(QFileDialog, "getSaveFileName", ask)
    window.act_export_items.trigger()
    wait_idle(window)
    ((offered, filters),) = asked
    assert offered == f"{doc.item_name(2)} + {doc.item_name(3)}.png"
    assert filters == "PNG (*.png);;WebP (*.webp)"  # the formats that keep transparency
    back = cv2.imread(str(tmp_path / "both.png"), cv2.IMREAD_UNCHANGED)
    x0, y0, x1, y1 = doc.items_box((2, 3))
    inside = np.isin(labels[y0:y1, x0:x1], [2, 3])
    np.testing.assert_array_equal(back[..., 3], np.where(inside, 255, 0))
    np.testing.assert_array_equal(back[..., 2::-1][inside], doc.image[y0:y1, x0:x1][inside])
    assert f"Exported both.png ({x1 - x0}×{y1 - y0}" in window.message_text()
    # a format without transparency is refused in words, and nothing is written
    window.files.export_cutout(tmp_path / "both.jpg", (2,))
    wait_idle(window)
    assert "cannot hold a cut-out" in window.message_text()
    assert not (tmp_path / "both.jpg").exists()


def test_files_dropped_on_the_reference_panel_open_as_the_reference(scene, tmp_path):
    """Of several files, the first photo the editor reads opens; on the reference panel
    it is the reference, and the photo being edited stays."""
    from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
    from PySide6.QtGui import QDropEvent

    window, _labels = scene
    doc = window.doc
    notes, photo = tmp_path / "notes.txt", tmp_path / "other.png"
    notes.write_text("not a picture")
    write_synthetic_photo(photo)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(notes)), QUrl.fromLocalFile(str(photo))])
    window.reference_dock.show()
    panel = window.reference_panel
    drop = QDropEvent(
        QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )  # fmt: skip
    panel.dropEvent(drop)
    wait_idle(window)
    assert window.doc is doc
    assert window.reference_photo.doc is not None
    assert window.reference_photo.doc.project.source == "other.png"


def test_a_large_export_is_written_aside_and_one_still_queued_survives_closing(scene, tmp_path):
    window, _labels = scene
    image = window.doc.image
    window.files.aside_from = 0
    assert not window.export_image(tmp_path / "big.xyz")  # refused at once, not later
    assert ".xyz" in window.message_text()
    out = tmp_path / "big.png"
    assert window.export_image(out)
    assert "Exporting big.png" in window.status_message.text()
    wait_idle(window)
    assert "Exported big.png (320×240)" in window.message_text()
    np.testing.assert_array_equal(load_image(out), image)
    late = [tmp_path / "late.png", tmp_path / "late.jpg"]
    assert all(window.export_image(p) for p in late)
    window.close()  # closing waits for the exports asked for
    np.testing.assert_array_equal(load_image(late[0]), image)
    assert load_image(late[1]).shape == image.shape


def test_a_photos_colour_profile_goes_into_its_exports_and_its_project(window, tmp_path):
    """A phone photo in Display P3 keeps its profile: the exports a designer hands on
    show the photo's colours in a colour-managed program, saved as a project or not."""
    from PIL import Image, ImageCms

    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    photo = tmp_path / "phone.jpg"
    write_synthetic_photo(tmp_path / "plain.png")
    Image.open(tmp_path / "plain.png").save(photo, quality=95, icc_profile=profile)
    assert window.open_path(photo)
    wait_idle(window)

    def embedded(path: Path) -> bytes | None:
        with Image.open(path) as im:
            return im.info.get("icc_profile")

    assert window.export_image(tmp_path / "small.png")  # written at once
    assert "Exported small.png (320×240, colour profile sRGB built-in)." in window.message_text()
    window.files.aside_from = 0
    assert window.export_image(tmp_path / "large.tif")  # written on the files thread
    wait_idle(window)
    assert embedded(tmp_path / "small.png") == embedded(tmp_path / "large.tif") == profile
    assert window.save_project(tmp_path / "phone.dedit", wait=True)
    assert Project.load(tmp_path / "phone.dedit").profile == profile


def write_16_bit_photo(path: Path, height: int = 240, width: int = 320, seed: int = 7):
    """A 16-bit PNG or TIFF at ``path`` of the synthetic photo with random finer bits
    below what 8 bits hold; returns ``(its 8-bit picture, its 16-bit values)``, RGB."""
    import cv2

    write_synthetic_photo(path.with_name("plain.png"), height, width)
    image = load_image(path.with_name("plain.png"))
    fine = np.random.default_rng(seed).integers(-128, 129, image.shape)
    deep = np.clip(image.astype(np.int64) * 257 + fine, 0, 65535).astype(np.uint16)
    assert cv2.imwrite(str(path), deep[..., ::-1])
    return image, deep


def test_a_16_bit_photo_is_exported_at_16_bits_and_its_project_keeps_them(window, tmp_path):
    """A designer's 16-bit PNG comes back from the editor at 16 bits: the pixels an edit
    did not paint are the file's own, saved as a project or not; JPEG stays 8-bit."""
    import cv2

    from dedit_app.imageio import eight_bits

    image, deep = write_16_bit_photo(tmp_path / "deep.png")
    assert window.open_path(tmp_path / "deep.png")
    assert window.status_message.text() == "Opened deep.png (320×240, 16 bits per channel)."
    wait_idle(window)
    np.testing.assert_array_equal(window.doc.image, image)
    doc = window.doc
    edited = image.copy()
    edited[10:40, 20:90] = (30, 140, 200)
    doc.apply_result(edited, doc.labels, {"kind": "recon"}, "Paint")

    def read16(path: Path) -> np.ndarray:
        pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert pixels.dtype == np.uint16, path
        return pixels[..., ::-1]

    assert window.export_image(tmp_path / "out.png")
    assert "Exported out.png (320×240, 16 bits per channel)." in window.message_text()
    out = read16(tmp_path / "out.png")
    np.testing.assert_array_equal(eight_bits(out), edited)
    np.testing.assert_array_equal(out[40:], deep[40:])  # below the painted box: the file's
    window.files.aside_from = 0
    assert window.files.export_image(tmp_path / "before.tif", before=1)  # the photo as opened
    wait_idle(window)
    np.testing.assert_array_equal(read16(tmp_path / "before.tif"), deep)
    assert window.export_image(tmp_path / "out.jpg", wait=True)
    assert "16 bits" not in window.message_text()
    assert window.save_project(tmp_path / "deep.dedit", wait=True)
    np.testing.assert_array_equal(Project.load(tmp_path / "deep.dedit").deep, deep)


def test_the_16_bit_photo_goes_to_a_file_first_when_undo_holds_too_much(window, tmp_path):
    """Only an export reads the photo at 16 bits: over undo's memory budget it is the
    first array moved out of RAM, and exports and saves (Save as too, which links its
    file) read it from there."""
    import cv2

    _image, deep = write_16_bit_photo(tmp_path / "deep.png", seed=8)
    assert window.open_path(tmp_path / "deep.png")
    wait_idle(window)
    doc = window.doc
    assert doc.held_for_undo()[-1] is doc.project.deep  # the farthest of all
    tight_undo_budget(doc, tmp_path / "scratch")
    land_edits(doc, 2)
    assert spill.file_backed(doc.project.deep)
    before = window.files.export_image(tmp_path / "before.png", wait=True, before=1)
    assert before
    out = cv2.imread(str(tmp_path / "before.png"), cv2.IMREAD_UNCHANGED)[..., ::-1]
    np.testing.assert_array_equal(out, deep)
    assert window.save_project(tmp_path / "deep.dedit", wait=True)
    np.testing.assert_array_equal(Project.load(tmp_path / "deep.dedit").deep, deep)
    window.files.aside_from = 0  # Save as on the files thread: its 16 bits are linked
    assert window.save_project(tmp_path / "again.dedit")
    wait_idle(window)
    np.testing.assert_array_equal(Project.load(tmp_path / "again.dedit").deep, deep)


def test_the_export_dialog_offers_a_16_bit_photo_at_8_bits_too(window, tmp_path, monkeypatch):
    """A designer who wants the smaller 8-bit PNG of a 16-bit photo picks it as the type."""
    import cv2
    from PySide6.QtWidgets import QFileDialog

    image, deep = write_16_bit_photo(tmp_path / "deep.tif", seed=9)
    assert window.open_path(tmp_path / "deep.tif")
    wait_idle(window)
    offered: list[str] = []

    def ask(_parent, _title, _name, filters):
        offered.extend(filters.split(";;"))
        return str(tmp_path / "small.png"), "PNG, 8 bits per channel (*.png)"

    monkeypatch.setattr(QFileDialog, "getSaveFileName", ask)
    window.files.export_dialog()
    wait_idle(window)
    assert offered[:2] == ["PNG, 16 bits per channel (*.png)", "PNG, 8 bits per channel (*.png)"]
    small = cv2.imread(str(tmp_path / "small.png"), cv2.IMREAD_UNCHANGED)
    assert small.dtype == np.uint8
    np.testing.assert_array_equal(small[..., ::-1], image)
    assert "Exported small.png (320×240)." in window.message_text()
    answer = (str(tmp_path / "full"), "TIFF, 16 bits per channel (*.tif *.tiff)")
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: answer)
    window.files.export_dialog()
    wait_idle(window)
    full = cv2.imread(str(tmp_path / "full.tif"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(full[..., ::-1], deep)


def test_a_wide_gamut_photo_is_shown_in_the_screens_colours_and_exported_as_it_is(window, tmp_path):
    """A Display P3 photo looks on the canvas (and in the results strip, the jobs'
    previews and the recent files) as a colour-managed viewer shows it; the pixels kept
    and exported are the photo's own, byte for byte."""
    from image_corpus import p3_like_profile
    from PIL import Image

    from dedit_app.colour_profiles import to_srgb
    from ui import thumbnails
    from ui.imaging import qimage_rgb, shrink_to

    profile = p3_like_profile()
    photo = tmp_path / "p3.png"
    write_synthetic_photo(tmp_path / "plain.png")
    raw = load_image(tmp_path / "plain.png")
    Image.fromarray(raw).save(photo, icc_profile=profile)
    assert window.open_path(photo)
    wait_idle(window)
    to_screen = to_srgb(profile)
    shown = qimage_rgb(window.canvas.photo._photo.level(0).toImage())
    np.testing.assert_array_equal(shown, to_screen(raw))
    assert not np.array_equal(shown, raw)  # the synthetic photo has saturated colours
    np.testing.assert_array_equal(window.doc.image, raw)  # kept as it is
    assert window.candidates.colours is to_screen and window.jobs_panel.colours is to_screen
    assert window.export_image(tmp_path / "out.png")
    np.testing.assert_array_equal(load_image(tmp_path / "out.png"), raw)
    key = str(photo.resolve())
    kept = thumbnails.read(window.recent.thumbnail_dir, [key])[key]  # the start page's
    np.testing.assert_array_equal(kept, to_screen(shrink_to(raw, thumbnails.LONGEST)))
    write_synthetic_photo(tmp_path / "plain2.png")  # a photo with no profile: as it is
    assert window.open_path(tmp_path / "plain2.png")
    wait_idle(window)
    assert window.canvas.photo.colours is None and window.candidates.colours is None


# ----- the reference photo ---------------------------------------------------------------


def test_a_16_bit_reference_photo_lets_its_16_bits_go(scene, tmp_path):
    """A reference lends looks and is never exported: its 16 bits are not held."""

    window, _labels = scene
    image, _deep = write_16_bit_photo(tmp_path / "ref16.png", 120, 160)
    assert window.reference_photo.open(tmp_path / "ref16.png")
    wait_idle(window)
    reference = window.editing.reference
    assert reference is not None and reference.project.deep is None
    np.testing.assert_array_equal(reference.image, image)
    assert window.doc.project.deep is None  # the photo being edited is unchanged


def test_a_large_reference_photo_is_read_aside(scene, tmp_path):
    window, _labels = scene
    window.files.aside_from = 0
    ref = tmp_path / "ref.png"
    write_synthetic_photo(ref, 120, 160)
    assert not window.reference_photo.open(tmp_path / "nowhere.png")
    assert "does not exist" in window.message_text()
    assert window.reference_photo.open(ref)
    assert window.editing.reference is None
    assert "Opening ref.png" in window.reference_panel.status.text()
    wait_idle(window)
    reference = window.editing.reference
    assert reference is not None and reference.project.source == "ref.png"
    np.testing.assert_array_equal(reference.image, load_image(ref))
    assert len(reference.visible_items()) > 1  # its items were found
    said = window.reference_panel.status.text()
    assert said.startswith(f"{len(reference.visible_items())} items. Prepare (Ctrl+P)")
    # Another one found damaged as it is read: the reference on show stays, and so does
    # its sentence (it was left blank).
    damaged = tmp_path / "damaged.png"
    damaged.write_bytes(ref.read_bytes()[:300])
    assert window.reference_photo.open(damaged)
    wait_idle(window)
    assert window.editing.reference is reference and "damaged" in window.message_text()
    assert window.reference_panel.status.text() == said
