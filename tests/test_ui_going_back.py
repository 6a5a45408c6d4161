"""Activity ▸ Edits: the project's edits, saved ones included, and going back to before
any of them as an undoable edit (ui.edits_panel)."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from editor_fixtures import NAMES  # noqa: E402
from PySide6.QtGui import QColor  # noqa: E402

from dedit_app.errors import ItemError  # noqa: E402
from ui.edits_panel import EMPTY  # noqa: E402
from ui.testing import make_window, wait_idle  # noqa: E402
from ui.theme import COLORS  # noqa: E402


def _two_edits(doc) -> list[tuple]:
    """A retyped prompt, then a move (a new item map); each paints a band. Returns the
    (image, labels, [(name, prompt)]) before each edit and after the last."""
    states = []

    def state():
        return doc.image.copy(), doc.labels.copy(), [(i.name, i.prompt) for i in doc.items]

    states.append(state())
    image = doc.image.copy()
    image[:6] = 30
    doc.apply_result(image, doc.labels, {"kind": "text", "item": 2, "prompt": "a red bag"}, "Red")
    states.append(state())
    image, labels = doc.image.copy(), doc.labels.copy()
    image[10:16] = 200
    labels[labels == 3] = 0  # the ball moved away
    labels[:8, :8] = 3
    doc.apply_result(image, labels, {"kind": "move", "moves": [[3, 5, 5, 1.0]]}, "Move")
    states.append(state())
    return states


def _assert_state(doc, state) -> None:
    np.testing.assert_array_equal(doc.image, state[0])
    np.testing.assert_array_equal(doc.labels, state[1])
    assert [(i.name, i.prompt) for i in doc.items] == state[2]


@contextlib.contextmanager
def _reopened(window, folder, qtbot):
    """``window``'s picture saved to ``folder`` and opened in a second window."""
    assert window.save_project(folder, wait=True)
    again = make_window(folder.parent / "settings2")
    qtbot.addWidget(again)
    try:
        assert again.open_path(folder)
        wait_idle(again)
        yield again
    finally:
        again.close()


def _brush(doc) -> None:
    """A stroke of the bag's id over the table: items reshaped by hand."""
    x, y = (int(v) for v in np.argwhere(doc.labels == 1)[0][::-1])
    doc.paint([(x + 0.5, y + 0.5)], 4, 2)


def _rows(window) -> list[str]:
    lst = window.edits_panel.list
    return [lst.item(k).text() for k in range(lst.count())]


def test_a_reopened_project_goes_back_to_before_a_saved_edit_and_undo_returns(
    scene, tmp_path, qtbot
):
    window, _labels = scene
    assert _rows(window) == [EMPTY] and not window.edits_panel.back_button.isEnabled()
    states = _two_edits(window.doc)
    assert _rows(window) == ["1  text: bag → “a red bag”", "2  move: ball"]
    with _reopened(window, tmp_path / "edited.dedit", qtbot) as again:
        assert again.doc.undo.count() == 0  # undo starts empty; the edits are listed
        assert again.history_view.emptyLabel() == "Opened · earlier edits: see Edits"
        # Undo, with only saved edits behind, points to them instead of doing nothing
        assert again.act_undo.isEnabled() and "Activity ▸ Edits" in again.act_undo.text()
        again.act_undo.trigger()
        assert again.activity.currentWidget() is again.edits_panel
        assert again.edits_panel.chosen() == 2
        assert "To go further back" in again.status_message.text()
        _assert_state(again.doc, states[2])  # nothing changed
        assert _rows(again) == ["1  text: bag → “a red bag”", "2  move: ball"]
        again.edits_panel.list.setCurrentRow(0)
        button = again.edits_panel.back_button
        assert button.isEnabled() and button.text() == "Go back to before edit 1"
        button.click()
        assert "Reading the picture from before edit 1" in again.status_message.text()
        button.click()  # again, before it lands: one at a time
        assert again.status_message.text().startswith("Still reading the picture")
        wait_idle(again)
        _assert_state(again.doc, states[0])
        assert again.doc.dirty
        assert "as edit 3; Ctrl+Z undoes it" in again.status_message.text()
        assert _rows(again)[-1] == "3  back: to before edit 1"
        dim = QColor(COLORS["muted"])
        lst = again.edits_panel.list
        assert [lst.item(k).foreground().color() == dim for k in range(3)] == [True, True, False]

        again._undo_redo(undo=True)
        _assert_state(again.doc, states[2])
        assert len(_rows(again)) == 2
        again._undo_redo(undo=False)
        _assert_state(again.doc, states[0])

        # saved and read back: the going back is an edit like any other
        assert again.save_project(tmp_path / "edited.dedit", wait=True)
        from dedit_app.project import Project

        saved = Project.load(tmp_path / "edited.dedit")
        assert [r["kind"] for r in saved.history] == ["text", "move", "back"]
        np.testing.assert_array_equal(saved.image, states[0][0])


def test_enter_on_a_row_goes_back_too(scene):
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    window, _labels = scene
    states = _two_edits(window.doc)
    lst = window.edits_panel.list
    lst.setCurrentRow(1)
    lst.setFocus()
    QTest.keyClick(lst, Qt.Key.Key_Return)
    wait_idle(window)
    _assert_state(window.doc, states[1])
    assert len(window.doc.project.history) == 3


def test_going_back_is_refused_in_words_when_the_edits_change_while_it_reads(scene):
    window, _labels = scene
    states = _two_edits(window.doc)
    window.edits_panel.list.setCurrentRow(1)
    window.edits_panel.back_button.click()
    window._undo_redo(undo=True)  # before the picture lands: edit 2 is gone
    wait_idle(window)
    assert "The edits changed while the picture from before edit 2 was read" in (
        window.message_bar.text()
    )
    _assert_state(window.doc, states[1])  # nothing else changed
    assert len(window.doc.project.history) == 1


def test_going_back_keeps_the_learned_fit_of_the_map_it_returns_to(scene):
    window, _labels = scene
    doc = window.doc
    doc.prepared_on(doc.labels)  # as a preparation finishing on this map does
    states = _two_edits(doc)  # edits made from a prepared map keep it prepared
    assert not doc.refined_since_prepare
    _brush(doc)  # reshaped by hand: the fit is lost
    assert doc.refined_since_prepare
    window.edits_panel.list.setCurrentRow(1)  # before the move: the map prepared on
    window.edits_panel.back_button.click()
    wait_idle(window)
    _assert_state(doc, states[1])
    assert [i.name for i in doc.items] == NAMES
    assert not doc.refined_since_prepare


def test_a_map_read_back_from_the_project_that_equals_a_prepared_one_keeps_its_fit(
    scene, tmp_path, qtbot
):
    window, _labels = scene
    doc = window.doc
    for n, prompt in enumerate(("a red bag", "a blue bag")):  # the item map stays
        image = doc.image.copy()
        image[n * 6 : n * 6 + 4] = 90
        doc.apply_result(image, doc.labels, {"kind": "text", "item": 2, "prompt": prompt}, "T")
    with _reopened(window, tmp_path / "text.dedit", qtbot) as again:
        again.doc.prepared_on(again.doc.labels)  # prepared on the map it opened with
        _brush(again.doc)
        assert again.doc.refined_since_prepare
        again.edits_panel.list.setCurrentRow(1)  # its map, read from the file, is that one
        again.edits_panel.back_button.click()
        wait_idle(again)
        assert again.doc.items[2].prompt == "a red bag"
        assert not again.doc.refined_since_prepare


def test_an_edit_asked_for_before_going_back_to_other_items_is_not_laid_over_them(scene):
    window, labels = scene
    doc = window.doc
    states = _two_edits(doc)
    renamed = np.where(labels == 1, 0, labels).astype(np.int32)  # found again: 3 items
    doc.set_partition(renamed, ["sky", "ground", "post", "rock"], "Find items")
    asked = doc.state()  # an edit of "post" (id 2) is asked for here
    made = (doc.image.copy(), None)
    regions = (labels == 2, np.zeros_like(labels, bool), 2.0)
    window.edits_panel.list.setCurrentRow(1)  # before the move: the items of then
    window.edits_panel.back_button.click()
    wait_idle(window)
    _assert_state(doc, states[1])
    with pytest.raises(ItemError, match="went back to an earlier version of its items"):
        doc.lay_onto(doc.state(), asked, made, regions)
    # going back where the items are the same ones keeps laying edits over it
    asked = doc.state()
    window.edits_panel.list.setCurrentRow(0)  # before the text edit: the items of now
    window.edits_panel.back_button.click()
    wait_idle(window)
    assert doc.lay_onto(doc.state(), asked, made, regions).image is not None


def test_holding_backslash_shows_the_picture_before_the_edit_chosen_in_edits(
    scene, tmp_path, qtbot
):
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    window, _labels = scene
    states = _two_edits(window.doc)
    with _reopened(window, tmp_path / "edited.dedit", qtbot) as again:
        photo = again.canvas.photo

        def hold(on: bool, where=again) -> None:
            (QTest.keyPress if on else QTest.keyRelease)(where, Qt.Key.Key_Backslash)

        hold(True)  # the Jobs tab on show: the photo before every edit
        wait_idle(again)
        np.testing.assert_array_equal(photo._before.array, states[0][0])
        hold(False)
        again.activity.setCurrentWidget(again.edits_panel)
        lst = again.edits_panel.list
        lst.setCurrentRow(1)  # edit 2: the picture after edit 1
        hold(True, lst)  # the list, which has the focus, hands \ to the window
        assert again.status_message.text() == "Reading the picture before edit 2…"
        wait_idle(again)  # still held when it lands: it shows
        np.testing.assert_array_equal(photo._before.array, states[1][0])
        assert again.status_message.text().startswith("The picture before edit 2.")
        hold(False, lst)
        assert photo._before is None and again.status_message.text() == ""
        again.activity_dock.hide()  # the tab closed: \ means the photo again
        hold(True)
        np.testing.assert_array_equal(photo._before.array, states[0][0])
        hold(False)


def test_a_picture_that_cannot_be_read_back_is_said_and_nothing_changes(scene, tmp_path, qtbot):
    window, _labels = scene
    states = _two_edits(window.doc)
    with _reopened(window, tmp_path / "edited.dedit", qtbot) as again:
        first = tmp_path / "edited.dedit" / again.doc.project.history[0]["image"]
        first.write_bytes(b"damaged")
        again.edits_panel.list.setCurrentRow(0)
        again.edits_panel.back_button.click()
        wait_idle(again)
        assert f"The project file {first} is not a readable PNG" in again.message_bar.text()
        _assert_state(again.doc, states[2])
        assert len(again.doc.project.history) == 2 and not again.doc.dirty


def test_export_writes_the_picture_from_before_the_chosen_edit_without_going_back(
    scene, tmp_path, qtbot, monkeypatch
):
    from PySide6.QtWidgets import QFileDialog

    from dedit_app.imageio import load_image

    window, _labels = scene
    states = _two_edits(window.doc)
    asked = []

    def answer(_parent, title, offered, _filters):
        asked.append((title, offered))
        return str(tmp_path / "then.png"), "PNG (*.png)"

    monkeypatch.setattr(QFileDialog, "getSaveFileName", answer)
    with _reopened(window, tmp_path / "edited.dedit", qtbot) as again:
        again.edits_panel.list.setCurrentRow(1)
        again.edits_panel.export_button.click()
        wait_idle(again)
        assert asked == [("Export the picture before edit 2", "scene-before-edit-2.png")]
        np.testing.assert_array_equal(load_image(tmp_path / "then.png"), states[1][0])
        assert "Exported then.png" in again.message_bar.text()
        _assert_state(again.doc, states[2])  # not gone back
        assert len(again.doc.project.history) == 2 and not again.doc.dirty


def test_the_items_list_hands_backslash_to_the_window(scene):
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    window, _labels = scene
    QTest.keyPress(window.items_panel.list, Qt.Key.Key_Backslash)
    assert window.status_message.text() == "No edits yet: this is the photo as it was opened."
    QTest.keyRelease(window.items_panel.list, Qt.Key.Key_Backslash)


def test_a_list_hands_a_digit_to_the_results_strip_on_show(scene, monkeypatch):
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    window, _labels = scene
    _two_edits(window.doc)
    chosen = []
    monkeypatch.setattr(window.editing, "choose_candidate", chosen.append)
    lst = window.edits_panel.list
    lst.setCurrentRow(0)
    QTest.keyClick(lst, Qt.Key.Key_2)  # no strip: the list finds the row starting with "2"
    assert chosen == [] and window.edits_panel.chosen() == 2
    monkeypatch.setattr(window.candidates, "isVisible", lambda: True)
    QTest.keyClick(lst, Qt.Key.Key_1)  # a strip on show: its first result
    assert chosen == [0] and window.edits_panel.chosen() == 2
