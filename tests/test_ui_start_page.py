"""The empty window's start page: recent files one click away (a file that has gone is
taken off the list, with a sentence) with a thumbnail of their picture, a dropped photo
opens, and closing a picture brings the page back."""

from __future__ import annotations

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from dedit_app.imageio import load_image  # noqa: E402
from ui import thumbnails  # noqa: E402
from ui.imaging import shrink_to  # noqa: E402
from ui.settings import EditorSettings  # noqa: E402
from ui.testing import drop_files, wait_idle, write_synthetic_photo  # noqa: E402


def test_recent_files_open_from_the_start_page_and_a_gone_one_leaves_the_list(window, tmp_path):
    photo, gone = tmp_path / "scene.png", tmp_path / "gone & lost.png"
    write_synthetic_photo(photo)
    window.settings.recent = [str(gone), str(photo)]
    window.recent.rebuild()
    page = window.start_page
    assert window.pages.currentWidget() is page
    assert [b.text() for b in page.recent_buttons] == ["gone && lost.png", "scene.png"]

    page.recent_buttons[0].click()
    assert "“gone & lost.png” is no longer in" in window.message_text()
    assert window.doc is None and window.settings.recent == [str(photo)]
    assert EditorSettings.load(window.qsettings).recent == [str(photo)]  # remembered
    assert [a.text() for a in window.recent_menu.actions()] == ["scene.png"]
    assert [b.text() for b in page.recent_buttons] == ["scene.png"]

    page.recent_buttons[0].click()
    wait_idle(window)
    assert window.doc is not None and window.doc.project.source == "scene.png"
    assert window.pages.currentWidget() is window.canvas


def test_a_photo_dropped_on_the_start_page_opens(window, tmp_path):
    photo = tmp_path / "dropped.png"
    write_synthetic_photo(photo)
    drop_files(window.start_page, [photo])
    wait_idle(window)
    assert window.doc is not None and window.doc.project.source == "dropped.png"


def test_closing_the_picture_asks_about_changes_and_shows_the_start_page(scene, monkeypatch):
    window, _labels = scene
    window.doc.set_prompt(2, "a red bag")
    window.ask_to_save = True
    monkeypatch.setattr(window, "maybe_discard", lambda: False)  # "Cancel" to "save changes?"
    assert not window.close_picture()
    assert window.doc is not None and window.pages.currentWidget() is window.canvas

    monkeypatch.setattr(window, "maybe_discard", lambda: True)  # "Discard"
    window.act_close.trigger()
    assert window.doc is None and window.pages.currentWidget() is window.start_page
    assert window.zoom_field.isHidden() and window.message_text() == ""
    assert not window.act_close.isEnabled() and not window.act_save.isEnabled()
    assert "scene.png" in [b.text() for b in window.start_page.recent_buttons]
    assert window.prepare_panel.button.isEnabled() is False


def test_recent_files_show_a_thumbnail_of_their_picture(window, tmp_path):
    photo, never = tmp_path / "scene.png", tmp_path / "not opened here.jpg"
    write_synthetic_photo(photo)
    window.recent.thumbnail_dir.mkdir(parents=True)
    stray = window.recent.thumbnail_dir / thumbnails.file_name(str(tmp_path / "long gone.png"))
    stray.write_bytes(b"not needed any more")
    window.settings.recent = [str(never)]
    assert window.open_path(photo)
    assert window.save_project(tmp_path / "scene.dedit", wait=True)
    wait_idle(window)
    assert window.close_picture()
    wait_idle(window)
    tiles = window.start_page.recent_tiles
    saved, opened = str((tmp_path / "scene.dedit").resolve()), str(photo.resolve())
    assert list(tiles) == [saved, opened, str(never)]
    for path in (saved, opened):
        assert not tiles[path].icon().isNull() and tiles[path].text() == ""
    assert tiles[str(never)].icon().isNull() and tiles[str(never)].text() == "jpg"
    # The photo's own pixels, shrunk; a thumbnail no recent file needs is deleted.
    kept = thumbnails.read(window.recent.thumbnail_dir, [opened])[opened]
    assert max(kept.shape[:2]) == thumbnails.LONGEST
    assert (kept == shrink_to(load_image(photo), thumbnails.LONGEST)).all()
    assert not stray.exists()

    tiles[opened].click()  # the tile opens its file, as the name does
    wait_idle(window)
    assert window.doc is not None and window.doc.folder is None
    assert window.doc.project.source == "scene.png"


def test_a_damaged_thumbnail_leaves_a_plain_tile(window, tmp_path):
    photo = tmp_path / "scene.png"
    write_synthetic_photo(photo)
    window.recent.thumbnail_dir.mkdir(parents=True)
    (window.recent.thumbnail_dir / thumbnails.file_name(str(photo))).write_bytes(b"\x89PNG broken")
    window.settings.recent = [str(photo)]
    window.recent.rebuild()
    wait_idle(window)
    tile = window.start_page.recent_tiles[str(photo)]
    assert tile.icon().isNull() and tile.text() == "png"
