"""The empty window's start page: recent files one click away (a file that has gone is
taken off the list, with a sentence), a dropped photo opens, and closing a picture
brings the page back."""

from __future__ import annotations

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from ui.settings import EditorSettings  # noqa: E402
from ui.testing import drop_files, wait_idle, write_synthetic_photo  # noqa: E402


def test_recent_files_open_from_the_start_page_and_a_gone_one_leaves_the_list(window, tmp_path):
    photo, gone = tmp_path / "scene.png", tmp_path / "gone & lost.png"
    write_synthetic_photo(photo)
    window.settings.recent = [str(gone), str(photo)]
    window._rebuild_recent()
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
    assert window.zoom_label.text() == "" and window.message_text() == ""
    assert not window.act_close.isEnabled() and not window.act_save.isEnabled()
    assert "scene.png" in [b.text() for b in window.start_page.recent_buttons]
    assert window.prepare_panel.button.isEnabled() is False
