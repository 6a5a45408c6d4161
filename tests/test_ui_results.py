"""The results of edits in the real window with the tiny random SDXL: more results from
the next seeds, and edits that land after the picture changed while they ran (queued back
to back, items brushed meanwhile), which join those changes instead of undoing them."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from editor_fixtures import brush_at_bag_edge, outside_edit  # noqa: E402

from dedit_app.jobs import JobState  # noqa: E402
from ui import engine  # noqa: E402
from ui.testing import wait_idle  # noqa: E402

pytestmark = pytest.mark.skipif(
    not engine.tiny_model_available(), reason="the D-Edit engine or its tiny models are missing"
)


def painted(labels: np.ndarray, item: int, edge: int) -> np.ndarray:
    """The pixels an edit of ``item`` may change: the item and its soft band."""
    return ~outside_edit(labels == item, edge)


def test_more_results_run_the_edit_again_with_new_seeds(opened):
    window = opened
    doc, strip = window.doc, window.candidates
    image, labels = doc.image, doc.labels
    window.editing.text_edit(2, "a white handbag")
    wait_idle(window, 300)
    assert len(strip.buttons) == 2 and strip.more_button.isEnabled()
    first_two = list(window.editing.candidates.images)

    strip.more_button.click()
    assert not strip.more_button.isEnabled() and strip.more_button.text() == "Making\nmore…"
    wait_idle(window, 300)
    assert len(strip.buttons) == 4 and strip.buttons[0].isChecked()
    assert strip.more_button.isEnabled()
    new = window.editing.candidates.images[2:]
    assert not any(np.array_equal(a, b) for a in new for b in first_two)
    strip.buttons[3].click()
    # One undo step, from the picture before the edit, whichever result is chosen.
    assert doc.undo.count() == 1 and doc.image is new[1]
    assert doc.project.history[-1]["seed"] == 4 and doc.project.history[-1]["candidate"] == 3
    keep = outside_edit(labels == 2, window.settings.edge)
    np.testing.assert_array_equal(doc.image[keep], image[keep])

    # Done while more results are being made stops that job: nobody would see them. The
    # Edit menu's More results (key M) is the same command as the tile.
    assert window.act_more.isEnabled() and window.act_more.shortcut().toString() == "M"
    window.act_more.trigger()
    job = window.editing.candidates.more_job
    assert job is not None and not window.act_more.isEnabled()
    strip.done_button.click()
    wait_idle(window, 300)
    assert window.jobs.jobs[job].state is JobState.CANCELLED and not strip.isVisible()
    assert not window.act_more.isEnabled()  # no results on show: nothing to run again
    assert doc.undo.count() == 1 and doc.image is new[1]
    window.act_undo.trigger()
    assert doc.image is image


def test_more_results_of_a_duplicate_keep_its_copy_whichever_is_chosen(opened):
    window = opened
    doc, strip = window.doc, window.candidates
    n = len(doc.items)
    doc.select((2,))
    window.editing.duplicate_items((2,), -20.0, 0.0)
    wait_idle(window, 300)
    copy_labels = doc.labels
    assert len(doc.items) == n + 1 and doc.selection == (n,)
    strip.more_button.click()
    wait_idle(window, 300)
    assert len(strip.buttons) == 4
    strip.buttons[3].click()
    assert doc.undo.count() == 1 and doc.image is window.editing.candidates.images[3]
    assert doc.labels is copy_labels and len(doc.items) == n + 1
    assert doc.project.history[-1]["copies"] == [n]
    doc.undo.undo()
    assert len(doc.items) == n and int(doc.labels.max()) < n


def test_more_results_are_refused_after_preparing_again(opened):
    window = opened
    doc = window.doc
    window.editing.text_edit(2, "a white handbag")
    wait_idle(window, 300)
    doc.project.training = {**doc.project.training, "weights_id": "prepared-again"}
    window.candidates.more_button.click()
    assert "prepared again after this edit" in window.message_text()
    assert window.editing.candidates.more_job is None and not window.jobs.active("edit")


def test_a_click_on_an_earlier_step_in_history_closes_the_results_as_undo_does(opened):
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    window = opened
    doc, strip, view = window.doc, window.candidates, window.history_view
    image = doc.image
    window.editing.text_edit(2, "a white handbag")
    wait_idle(window, 300)
    assert strip.isVisible() and doc.undo.index() == 1
    window.activity.setCurrentWidget(view)
    opened_row = view.visualRect(view.model().index(0, 0)).center()
    QTest.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=opened_row)
    assert doc.undo.index() == 0 and doc.image is image
    assert not strip.isVisible()  # its tiles would have put the edit back
    QTest.keyClick(view, Qt.Key.Key_Down)  # back to the edit, from the keyboard
    assert doc.undo.index() == 1 and doc.image is not image


# ----- results that land after the picture changed -------------------------------------


def _thumb(image: np.ndarray):
    from ui.imaging import thumbnail
    from ui.widgets import CandidatesStrip

    return thumbnail(image, CandidatesStrip.THUMB * 2).toImage()


def test_edits_queued_back_to_back_each_keep_the_one_before(opened):
    window = opened
    doc, strip = window.doc, window.candidates
    image, labels = doc.image, doc.labels
    edge = window.settings.edge
    window.editing.text_edit(2, "a white handbag")
    window.editing.text_edit(3, "a red ball")  # asked for before the bag's result is in
    assert len(window.jobs.active("edit")) == 2
    wait_idle(window, 300)
    # Two steps: the ball's result was laid over the bag's instead of replacing it.
    assert doc.undo.count() == 2
    bag = doc.undo.command(0).after.image
    assert (bag[labels == 2] != image[labels == 2]).any()
    np.testing.assert_array_equal(doc.image[labels == 2], bag[labels == 2])
    assert (doc.image[labels == 3] != image[labels == 3]).any()
    untouched = ~painted(labels, 2, edge) & ~painted(labels, 3, edge)
    np.testing.assert_array_equal(doc.image[untouched], image[untouched])
    assert [i.prompt for i in doc.items] == ["", "", "a white handbag", "a red ball"]
    assert "laid over the changes made meanwhile" in strip.title.text()
    # The history says the ball's step was laid over the bag's, and the bag's was not.
    assert "laid over" in doc.undo.text(1) and "laid over" not in doc.undo.text(0)
    assert doc.project.history[-1]["laid_over"] is True
    assert "laid_over" not in doc.project.history[-2]
    assert strip.buttons[0].isChecked()
    # Each thumbnail shows its result laid over the bag's edit, as clicking it applies it
    # (laid on the side thread), not the picture the ball's edit started from.
    wait_idle(window)
    thumbs = window.editing.candidates.thumbs
    assert set(thumbs) == {0, 1}
    assert thumbs[0].toImage() == _thumb(doc.image)
    # The other result of the ball goes into the same step, over the bag's picture still.
    strip.buttons[1].click()
    wait_idle(window)  # laid on the side thread
    assert thumbs[1].toImage() == _thumb(doc.image)
    assert strip.buttons[1].icon().cacheKey() != strip.buttons[0].icon().cacheKey()
    assert doc.undo.count() == 2 and doc.project.history[-1]["candidate"] == 1
    assert doc.project.history[-1]["laid_over"] is True
    np.testing.assert_array_equal(doc.image[labels == 2], bag[labels == 2])
    # Undo takes back the ball alone.
    window.act_undo.trigger()
    assert doc.image is bag and [i.prompt for i in doc.items][2:] == ["a white handbag", ""]


def test_items_brushed_while_an_edit_runs_stay_brushed_and_still_to_redraw(opened):
    window = opened
    doc = window.doc
    image, labels = doc.image, doc.labels
    window.editing.text_edit(3, "a red ball")
    # Meanwhile the wall is brushed into the bag's right side and the bag is renamed.
    doc.rename(2, "handbag")
    brush_at_bag_edge(window, labels, [(-6, 1)], item=0)
    brushed = doc.labels
    assert (brushed != labels).any() and window.jobs.active("edit")
    wait_idle(window, 300)
    assert doc.project.history[-1]["kind"] == "text"
    assert (doc.image[labels == 3] != image[labels == 3]).any()
    np.testing.assert_array_equal(doc.labels, brushed)
    assert doc.items[2].name == "handbag" and doc.items[3].prompt == "a red ball"
    # The stroke was not painted by the ball's edit: Redraw still offers to.
    assert doc.reshaped and window.act_redraw.isEnabled()
    np.testing.assert_array_equal(doc.drawn_labels(), labels)


def test_an_edit_over_pixels_changed_meanwhile_waits_for_a_click(opened):
    window = opened
    doc, strip = window.doc, window.candidates
    window.editing.text_edit(2, "a white handbag")
    window.editing.text_edit(2, "a black handbag")  # the same item, from the same picture
    wait_idle(window, 300)
    white = doc.image
    assert doc.undo.count() == 1 and doc.items[2].prompt == "a white handbag"
    assert "changed meanwhile" in strip.title.text()
    assert "overlaps changes made while it ran" in strip.hint.text()
    assert not any(b.isChecked() for b in strip.buttons)
    strip.buttons[1].click()  # lay it over them: a step of its own
    wait_idle(window)
    assert doc.undo.count() == 2 and doc.items[2].prompt == "a black handbag"
    assert doc.undo.command(1).before.image is white
    strip.buttons[0].click()  # another result replaces it in that step
    wait_idle(window)
    assert doc.undo.count() == 2 and doc.project.history[-1]["candidate"] == 0
    window.act_undo.trigger()
    assert doc.image is white


def test_an_edit_asked_for_before_finding_items_again_is_refused_in_a_sentence(opened):
    window = opened
    doc, strip = window.doc, window.candidates
    labels = doc.labels
    window.editing.text_edit(2, "a white handbag")
    doc.set_partition((labels == 3).astype(np.int32), ["rest", "ball"], "Found again")
    wait_idle(window, 300)
    assert doc.undo.count() == 1 and len(doc.items) == 2  # nothing was applied
    assert "found again after this edit" in strip.hint.text()
    strip.buttons[0].click()
    wait_idle(window)
    assert "found again after this edit" in window.message_text()
    assert doc.undo.count() == 1


def test_an_edit_elsewhere_leaves_what_is_still_to_redraw(opened):
    window = opened
    doc = window.doc
    labels = doc.labels
    brush_at_bag_edge(window, labels, [(-5, 20)])
    changed = doc.labels != labels
    assert changed.any() and window.act_redraw.isEnabled()
    window.editing.text_edit(3, "a red ball")  # the ball is far from the stroke
    wait_idle(window, 300)
    assert doc.project.history[-1]["kind"] == "text" and doc.undo.count() == 2
    # The ball's edit did not paint the stroke: it is still drawn as the wall.
    assert window.act_redraw.isEnabled() and doc.project.drawn is not None
    np.testing.assert_array_equal(doc.drawn_labels()[changed], labels[changed])
    window.act_redraw.trigger()
    wait_idle(window, 300)
    assert doc.project.history[-1]["kind"] == "redraw" and not window.act_redraw.isEnabled()


def test_the_same_edit_asked_for_twice_runs_once(opened):
    window = opened
    doc = window.doc
    window.editing.text_edit(2, "a white handbag")
    window.editing.text_edit(2, "a white handbag")  # Enter pressed twice
    assert len(window.jobs.active("edit")) == 1
    assert "Already under way" in window.message_text()
    window.editing.text_edit(2, "a black handbag")  # another edit is queued as usual
    assert len(window.jobs.active("edit")) == 2
    wait_idle(window, 300)
    assert doc.undo.count() == 1 and doc.items[2].prompt == "a white handbag"
    # Once the first has landed, asking for it again is a new edit of the new picture.
    window.editing.text_edit(2, "a white handbag")
    assert len(window.jobs.active("edit")) == 1
    wait_idle(window, 300)


def test_a_result_chosen_while_the_picture_changes_again_is_laid_over_the_newest(opened):
    window = opened
    doc, strip = window.doc, window.candidates
    labels = doc.labels
    window.editing.text_edit(2, "a white handbag")
    window.editing.text_edit(2, "a black handbag")
    wait_idle(window, 300)
    assert doc.undo.count() == 1 and not any(b.isChecked() for b in strip.buttons)
    strip.buttons[1].click()  # laid on the side thread...
    doc.paint([(5.0, 5.0)], 3, 1)  # ...while a stroke changes the item map once more
    stroked = doc.labels
    wait_idle(window)
    # Laid again, over the stroke: three steps, and the stroke is still there.
    assert doc.undo.count() == 3 and doc.undo.command(2).before.labels is stroked
    np.testing.assert_array_equal(doc.labels, stroked)
    assert doc.items[2].prompt == "a black handbag" and (stroked != labels).any()


# ----- results waiting for a click -----------------------------------------------------


def test_results_waiting_for_a_click_come_back_when_the_next_edits_strip_closes(opened):
    window = opened
    doc, strip = window.doc, window.candidates
    window.editing.text_edit(2, "a white handbag")
    window.editing.text_edit(2, "a black handbag")  # overlaps the white one: it will wait
    window.editing.text_edit(3, "a red ball")  # clear of both: applied when it lands
    wait_idle(window, 300)
    # The ball's results are on show; the black bag's wait their turn instead of being lost.
    assert doc.undo.count() == 2 and doc.items[3].prompt == "a red ball"
    assert strip.title.text().endswith("· 1 more edit waiting")
    assert strip.discard_button.text() == "Undo edit"
    ball = doc.image
    strip.done_button.click()
    assert strip.isVisible() and "black handbag" in strip.title.text()
    assert "changed meanwhile" in strip.title.text() and "waiting" not in strip.title.text()
    assert "overlaps changes made while it ran" in strip.hint.text()
    assert strip.discard_button.text() == "Discard" and len(strip.buttons) == 2
    strip.buttons[0].click()
    wait_idle(window)
    # Laid over both: the ball stays red, the bag turns black, a third step.
    assert doc.undo.count() == 3 and doc.items[2].prompt == "a black handbag"
    assert doc.items[3].prompt == "a red ball" and doc.undo.command(2).before.image is ball
    assert "laid over the changes" in strip.title.text()
    assert "laid over" in doc.undo.text(2) and doc.project.history[-1]["laid_over"] is True
    assert strip.discard_button.text() == "Undo edit"
    strip.discard_button.click()  # now a step: Undo edit takes it back
    assert doc.image is ball and not strip.isVisible()


def test_waiting_results_outlast_undo_and_go_when_discarded_or_another_photo_opens(opened):
    window = opened
    doc, strip = window.doc, window.candidates
    window.editing.text_edit(2, "a white handbag")
    window.editing.text_edit(2, "a black handbag")
    wait_idle(window, 300)
    white = doc.image
    assert "changed meanwhile" in strip.title.text()
    window.act_undo.trigger()  # the white bag goes; the black one still waits
    assert doc.undo.index() == 0 and "black handbag" in strip.title.text()
    window.act_redo.trigger()
    assert doc.image is white and "black handbag" in strip.title.text()
    strip.discard_button.click()  # Discard: the picture stays, nothing comes back
    assert not strip.isVisible() and doc.image is white and doc.undo.count() == 1
    assert window.editing.waiting == []

    window.editing.text_edit(3, "a red ball")
    window.editing.text_edit(3, "a blue ball")
    window.editing.text_edit(2, "a green handbag")
    wait_idle(window, 300)
    assert len(window.editing.waiting) == 1  # the blue ball, behind the green bag
    window.editing.document_changed()  # what opening another photo does
    assert window.editing.waiting == [] and not strip.isVisible()


def test_closing_with_results_waiting_for_a_click_asks_first(opened, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    window = opened
    window.editing.text_edit(2, "a white handbag")
    window.editing.text_edit(2, "a black handbag")
    wait_idle(window, 300)
    asked = []

    def answer(parent, title, text, buttons, default):
        asked.append((title, text))
        return QMessageBox.StandardButton.Cancel

    monkeypatch.setattr(QMessageBox, "question", answer)
    window.ask_to_save = True
    assert not window.close_picture()
    assert asked == [
        (
            "Drop the results?",
            "Waiting for a click: bag → “a black handbag”. Closing drops its results.",
        )
    ]
    assert window.doc is not None and window.editing.unapplied() == ["bag → “a black handbag”"]
    window.ask_to_save = False
