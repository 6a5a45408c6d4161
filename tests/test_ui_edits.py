"""Preparing and editing in the real window with the tiny random SDXL: retype a prompt,
drag an item, Delete, swap from a reference, cancel, undo; and the errors on the way."""

from __future__ import annotations

import dataclasses
import json
import shutil
import threading

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from editor_fixtures import (  # noqa: E402
    NAMES,
    brush_at_bag_edge,
    count_where,
    land_edits,
    open_scene,
    outside_edit,
    tight_undo_budget,
)
from PySide6.QtCore import QMimeData, QPointF, Qt  # noqa: E402
from PySide6.QtGui import QDropEvent  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402

from dedit_app import partition, spill  # noqa: E402
from dedit_app.jobs import JobState  # noqa: E402
from dedit_app.project import Project  # noqa: E402
from ui import engine  # noqa: E402
from ui.canvas_gestures import REF_ITEM_MIME  # noqa: E402
from ui.settings import EditorSettings  # noqa: E402
from ui.testing import (  # noqa: E402
    click,
    drag,
    inner_pixel,
    make_window,
    view_point,
    wait_idle,
    wait_until,
    write_synthetic_photo,
)
from ui.worker import JobRequest  # noqa: E402

pytestmark = pytest.mark.skipif(
    not engine.tiny_model_available(), reason="the D-Edit engine or its tiny models are missing"
)


@pytest.fixture
def window(tiny_window):
    return tiny_window


# ----- preparing ------------------------------------------------------------------------


def test_prepare_shows_progress_and_is_kept_with_the_project(window, tmp_path, qtbot):
    open_scene(window, tmp_path)
    assert not window.editing.prepared()
    assert window.prepare_panel.title.text() == "Not prepared"
    seen = []
    window.jobs.progressed.connect(lambda job_id: seen.append(window.jobs.jobs[job_id].progress))
    window.prepare_panel.button.click()
    record = window.jobs.jobs[window.editing.prepare_job]
    assert record.request.kind == "prepare"
    wait_idle(window, 300)
    assert record.state is JobState.DONE, record.message
    assert any(p.loss is not None for p in seen)
    assert window.editing.prepared()
    assert window.prepare_panel.plot.steps == [1, 2]
    assert window.prepare_panel.title.text() == "Prepared"
    assert [i.tokens for i in window.doc.items][2].startswith("#bag2")
    # Saved with the project, and reopened without training again.
    assert window.save_project(tmp_path / "kept.dedit")
    other = make_window(tmp_path / "settings2")
    qtbot.addWidget(other)
    try:
        other.apply_settings(window.settings)
        assert other.open_path(tmp_path / "kept.dedit")
        assert other.editing.prepared()
        assert not other.jobs.jobs  # nothing was queued: no re-training
    finally:
        other.close()


@pytest.fixture
def on_processor(monkeypatch):
    """The tiny model counts as full size, on a machine with no GPU."""
    import torch

    from dedit_app import slow_device

    monkeypatch.setattr(slow_device, "FULL_SIZE_BYTES", 1)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(slow_device, "no_gpu_reason", lambda: ("no GPU here", ""))


def test_preparing_on_the_processor_starts_only_when_the_user_says_so(
    window, tmp_path, on_processor
):
    open_scene(window, tmp_path)
    window.prepare_panel.button.click()
    # Hours of work (and a model download) wait for a yes.
    assert "preparing a photo takes hours" in window.message_text()
    assert window.editing.prepare_job is None
    assert not [r for r in window.jobs.jobs.values() if r.request.kind == "prepare"]
    assert window.message_bar.action.text() == "Prepare on the processor"
    window.message_bar.action.click()
    record = window.jobs.jobs[window.editing.prepare_job]
    assert record.request.kind == "prepare"
    wait_idle(window, 300)
    assert record.state is JobState.DONE and window.editing.prepared()
    # Said once: preparing again starts at once.
    window.prepare_panel.button.click()
    again = window.editing.prepare_job
    assert again != record.request.id and window.jobs.jobs[again].active
    assert "takes hours" not in window.message_text()
    window.editing.cancel_prepare()
    wait_idle(window, 120)


def test_prepare_during_a_download_of_its_model_waits_for_that_download(opened, monkeypatch):
    import threading

    window = opened
    ended = threading.Event()
    model = window.settings.model
    monkeypatch.setattr(
        window.downloads, "waiting_for", lambda source: ended if source == model else None
    )
    window.prepare_panel.button.click()  # prepare again
    record = window.jobs.jobs[window.editing.prepare_job]
    assert record.request.task.after is ended
    window.editing.cancel_prepare()  # the wait stops at once
    wait_idle(window, 60)
    assert record.state is JobState.CANCELLED


def test_the_first_edit_on_the_processor_says_it_is_slow_and_goes_ahead(opened, on_processor):
    window = opened
    window.editing.text_edit(2, "a white handbag")
    assert window.jobs.active("edit") and "each edit takes minutes" in window.message_text()
    wait_idle(window, 300)
    window.dismiss_message()
    window.editing.text_edit(3, "a red ball")
    assert window.jobs.active("edit") and "takes minutes" not in window.message_text()
    wait_idle(window, 300)


def test_preparing_a_saved_project_writes_its_weights_off_the_ui_thread(opened, monkeypatch):
    import threading

    window = opened
    doc = window.doc
    folder = doc.folder
    before = json.loads((folder / "project.json").read_text())["training"]["weights"]
    writers = []
    real_write = Project._write_weights

    def write(folder, tensors, metadata):
        writers.append(threading.current_thread().name)
        return real_write(folder, tensors, metadata)

    monkeypatch.setattr(Project, "_write_weights", staticmethod(write))
    window.files.weights_aside_from = 0  # tiny weights count as heavy here
    window.prepare_panel.button.click()
    wait_idle(window, 300)
    assert writers and all(name.startswith("dedit-files") for name in writers)
    after = json.loads((folder / "project.json").read_text())["training"]["weights"]
    assert after != before and (folder / after).is_file() and not (folder / before).exists()
    assert not doc.dirty and doc.project.pending_weights is None
    assert Project.load(folder).prepared


def test_a_preparation_saves_itself_only_when_nothing_else_is_unsaved(opened):
    """Other unsaved changes are the designer's to keep or discard: the preparation waits
    with them for Save. A save refused as it lands stays on show, not "Prepared"."""
    window = opened
    doc, folder = window.doc, window.doc.folder
    on_disk = (folder / "project.json").read_bytes()
    doc.set_prompt(1, "a marble table")  # unsaved
    window.prepare_panel.button.click()
    wait_idle(window, 300)
    assert (folder / "project.json").read_bytes() == on_disk  # nothing saved behind them
    assert doc.dirty and doc.project.pending_weights is not None
    assert "Save keeps it with the project." in window.message_text()
    assert window.files.save()
    wait_idle(window)
    kept = Project.load(folder)
    assert kept.items[1].prompt == "a marble table" and kept.prepared
    # another program saves the project while it is prepared again: the save is refused
    other = Project.load(folder)
    window.prepare_panel.button.click()
    other.items[3].prompt = "a tennis ball"
    other.save()
    wait_idle(window, 300)
    assert "was changed by another program" in window.message_text()
    assert Project.load(folder).items[3].prompt == "a tennis ball"
    assert doc.dirty and doc.project.pending_weights is not None  # kept in memory


def test_a_result_that_cannot_be_taken_in_is_said_and_changes_nothing(opened, monkeypatch):
    """A bug, or a full disk, while a finished job's result is taken in on the UI thread
    is the job's failure, said in words; the cards never go on saying "Done" or
    "Preparing…" over a dropped result."""
    window = opened
    doc = window.doc
    image, real = doc.image, engine.result_images

    def broken(*args):
        raise IndexError("list index out of range")

    monkeypatch.setattr(engine, "result_images", broken)
    window.editing.text_edit(2, "a red bag")
    wait_idle(window, 300)
    record = window.jobs.jobs[max(window.jobs.jobs)]
    assert record.state is JobState.FAILED
    said = window.message_text()
    assert "could not be taken in (IndexError: list index out of range)" in said
    assert said == window.status_message.text() == record.message
    assert doc.image is image and doc.undo.count() == 0 and not window.editing.pending
    monkeypatch.setattr(engine, "result_images", real)  # the next edit lands as ever
    window.editing.text_edit(2, "a red bag")
    wait_idle(window, 300)
    assert doc.image is not image and doc.undo.count() == 1
    assert "could not be taken in" not in window.message_text()  # it was the other edit's

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(engine, "store_prepared", disk_full)
    window.prepare_panel.button.click()
    wait_idle(window, 300)
    assert "could not be taken in (OSError: [Errno 28] No space left on device)" in (
        window.message_text()
    )
    assert window.prepare_panel.title.text() == "Prepared"  # the earlier preparation stands
    assert "step" not in window.prepare_panel.status.text()


def test_a_preparation_is_not_given_to_items_found_again_while_it_ran(tiny_window, tmp_path):
    """Find items numbers the items afresh: the tokens learned for item 3 would go to
    whatever item is 3 now (the wall's look to the ball)."""
    window = tiny_window
    labels = open_scene(window, tmp_path)
    window.prepare_panel.button.click()
    # lands only through the event loop: this comes first, whatever the job's speed
    window.doc.set_partition(3 - labels, list(reversed(NAMES)), "Found again")
    wait_idle(window, 300)
    assert not window.editing.prepared()
    assert [i.tokens for i in window.doc.items] == [""] * len(NAMES)
    assert "found again while the photo was being prepared" in window.message_text()


def test_items_refined_after_preparing_are_still_noted_after_reopening(opened):
    window = opened
    doc, folder = window.doc, window.doc.folder
    note = "by hand"  # reshaped (Redraw may paint them) or changed since preparing
    assert note not in window.prepare_panel.status.text()
    a, b = doc.visible_items()[:2]
    y, x = np.argwhere(doc.labels == a)[0]
    doc.paint([(x + 0.5, y + 0.5)], 3, b)
    assert note in window.prepare_panel.status.text()
    doc.undo.undo()  # back to the map it was prepared on
    assert note not in window.prepare_panel.status.text() and not doc.project.refined
    doc.undo.redo()
    assert window.save_project(folder, wait=True) and Project.load(folder).refined
    # The undo steps that told are gone after reopening; the project file still tells.
    assert window.close_picture() and window.open_path(folder)
    assert window.editing.prepared()
    assert note in window.prepare_panel.status.text()


def test_a_project_whose_weights_file_is_gone_opens_and_offers_to_prepare_again(
    window, prepared_bundle, tmp_path
):
    copy = tmp_path / "scene.dedit"
    shutil.copytree(prepared_bundle, copy)
    weights = json.loads((copy / "project.json").read_text())["training"]["weights"]
    (copy / weights).unlink()
    assert window.open_path(copy)  # the photo, items and history are still there
    assert [item.name for item in window.doc.items] == list(NAMES)
    assert not window.editing.prepared()
    status = window.prepare_panel.status.text()
    assert weights in status and "prepare the project again" in status
    assert window.prepare_panel.button.isEnabled()


def test_editing_before_preparing_says_so_and_changes_nothing(window, tmp_path):
    photo = tmp_path / "scene.png"
    labels = write_synthetic_photo(photo)
    window.open_path(photo)
    wait_idle(window)
    doc = window.doc
    doc.set_partition(labels, list(NAMES), "Known items")
    image, lab = doc.image, doc.labels
    click(window.canvas, *inner_pixel(labels, 2))
    field = window.items_panel.prompt_edit
    field.setFocus()
    QTest.keyClicks(field, "a white handbag")
    QTest.keyClick(field, Qt.Key.Key_Return)
    assert "not been prepared" in window.message_text()
    assert window.message_bar.action.isVisible()
    assert window.message_bar.action.text() == "Prepare now"
    assert not window.jobs.active("edit")
    assert doc.image is image and doc.labels is lab
    QTest.keyClick(window.canvas, Qt.Key.Key_Delete)
    assert doc.labels is lab and not window.jobs.active("edit")


@pytest.mark.parametrize(
    "change, words",
    [
        ({"model": "/nowhere/sdxl-model"}, "/nowhere/sdxl-model"),
        ({"model": "nobody-here/not-a-cached-model"}, "not downloaded and the editor is offline"),
        ({"device": "cuda"}, "GPU"),
    ],
)
def test_model_problems_end_in_a_sentence_and_an_unchanged_project(
    window, tmp_path, change, words, monkeypatch
):
    import torch

    if change.get("device") == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    open_scene(window, tmp_path)
    window.apply_settings(dataclasses.replace(window.settings, **change))
    opened = []
    monkeypatch.setattr(window, "open_settings", lambda tab="": opened.append(tab))
    window.editing.prepare()
    wait_idle(window, 120)
    record = window.jobs.jobs[window.editing.prepare_job]
    assert record.state is JobState.FAILED
    assert words in record.message and words in window.message_text()
    assert "Traceback" not in window.message_text()
    assert not window.doc.project.prepared and not window.editing.prepared()
    # The settings mend it: the sentence comes with the way there.
    assert window.message_bar.action.text() == "Open settings"
    window.message_bar.action.click()
    assert opened == ["Model"]  # the page with the model, the device and the precision


def test_a_preparation_whose_numbers_overflow_says_so_with_the_way_to_the_precision(
    window, tmp_path, monkeypatch
):
    from dedit_app import finetune

    real = finetune.F.mse_loss
    monkeypatch.setattr(finetune.F, "mse_loss", lambda *a, **k: real(*a, **k) * float("nan"))
    open_scene(window, tmp_path)
    opened = []
    monkeypatch.setattr(window, "open_settings", lambda tab="": opened.append(tab))
    window.editing.prepare()
    wait_idle(window, 120)
    assert window.jobs.jobs[window.editing.prepare_job].state is JobState.FAILED
    assert window.message_text().startswith("Preparing went wrong: the model's numbers")
    assert not window.doc.project.prepared and not window.editing.prepared()
    window.message_bar.action.click()
    assert opened == ["Model"]  # where Precision is


# ----- edits ------------------------------------------------------------------------------


def test_retype_a_prompt_and_press_enter_changes_the_canvas(opened):
    window = opened
    doc = window.doc
    image, labels = doc.image, doc.labels
    click(window.canvas, *inner_pixel(labels, 2))
    field = window.items_panel.prompt_edit
    field.setFocus()
    field.clear()
    QTest.keyClicks(field, "a white handbag")
    QTest.keyClick(field, Qt.Key.Key_Return)
    assert window.jobs.active("edit")
    wait_idle(window, 300)
    assert doc.image is not image
    # Only the bag and its soft edge changed; every other pixel is the input's.
    keep = outside_edit(labels == 2, window.settings.edge)
    np.testing.assert_array_equal(doc.image[keep], image[keep])
    assert (doc.image[labels == 2] != image[labels == 2]).any()
    assert doc.labels is labels
    assert doc.items[2].prompt == "a white handbag"
    # The canvas shows the new picture and the strip offers both candidates.
    assert window.canvas.shown_image() is doc.image
    strip = window.candidates
    assert strip.isVisible() and len(strip.buttons) == 2
    first = doc.image
    strip.buttons[1].click()
    assert doc.image is not first and strip.buttons[1].isChecked()
    assert doc.undo.count() == 1  # switching candidates stays one step
    assert doc.project.history[-1]["seed"] == 2
    # Hold backslash: the picture before the edit; release: the edit again.
    QTest.keyPress(window, Qt.Key.Key_Backslash)
    assert window.canvas.photo.split == 1.0 and window.canvas.photo._before is not None
    QTest.keyRelease(window, Qt.Key.Key_Backslash)
    assert window.canvas.photo.split is None
    strip.slider.setValue(40)
    assert window.canvas.photo.split == pytest.approx(0.4)
    strip.slider.setValue(100)
    # Enter in a text field is the field's (renaming here); on the picture it is Done,
    # which keeps the chosen result.
    chosen = doc.image
    window.items_panel.name_edit.setFocus()
    QTest.keyClick(window.items_panel.name_edit, Qt.Key.Key_Return)
    assert strip.isVisible()
    window.canvas.setFocus()
    QTest.keyClick(window.canvas, Qt.Key.Key_Return)
    assert not strip.isVisible() and doc.image is chosen and doc.undo.count() == 1
    # Undo: exactly the previous picture, labels and prompt.
    window.act_undo.trigger()
    assert doc.image is image and doc.labels is labels
    assert doc.items[2].prompt == ""


def test_holding_backslash_with_no_results_shows_the_photo_before_its_first_edit(
    opened, tmp_path, qtbot
):
    from ui.original import SHOWING

    window = opened
    photo = window.canvas.photo
    image = window.doc.image

    def hold(on: bool) -> None:
        (QTest.keyPress if on else QTest.keyRelease)(window, Qt.Key.Key_Backslash)

    hold(True)  # nothing edited yet: nothing to compare
    assert photo._before is None and "No edits yet" in window.status_message.text()
    hold(False)
    for prompt in ("a white handbag", "a red handbag"):
        window.editing.text_edit(2, prompt)
        wait_idle(window, 300)
        window.candidates.done_button.click()
    assert len(window.doc.project.history) == 2
    hold(True)  # before both edits, not only the last
    assert photo._before.array is image and photo.split == 1.0
    assert window.status_message.text() == SHOWING
    hold(False)
    assert photo._before is None and window.status_message.text() == ""

    # Saved and opened again, the photo before the edits is read from the project's file.
    assert window.save_project(tmp_path / "edited.dedit", wait=True)
    again = make_window(tmp_path / "settings2")
    qtbot.addWidget(again)
    try:
        again.apply_settings(window.settings)
        assert again.open_path(tmp_path / "edited.dedit")
        wait_idle(again)
        QTest.keyPress(again, Qt.Key.Key_Backslash)
        assert "Reading the photo" in again.status_message.text()
        wait_idle(again)  # still held when it lands: it shows
        assert np.array_equal(again.canvas.photo._before.array, image)
        QTest.keyRelease(again, Qt.Key.Key_Backslash)
        assert again.canvas.photo._before is None
        QTest.keyPress(again, Qt.Key.Key_Backslash)  # kept: no second read
        assert not again.files.busy and again.canvas.photo._before is not None
    finally:
        again.close()


def test_prompts_typed_before_are_suggested_as_you_type(opened):
    window = opened
    window.editing.text_edit(2, "a white leather handbag")
    assert EditorSettings.load(window.qsettings).prompts[0] == "a white leather handbag"
    wait_idle(window, 300)
    window.doc.select([3])
    field = window.items_panel.prompt_edit
    field.setFocus()
    field.clear()
    QTest.keyClicks(field, "LEATHER")  # anywhere in the prompt, any case
    completer = window.items_panel.prompt_completer
    assert completer.popup().isVisible()
    assert completer.completionCount() == 1
    assert completer.currentCompletion() == "a white leather handbag"


class HoldTheWorker:
    """A job that keeps the model's worker busy until released, so an edit stays queued."""

    def __init__(self) -> None:
        import threading

        self.release = threading.Event()

    def run(self, ctx, cancel):
        self.release.wait(60)
        return None


def test_drag_an_item_to_move_it(opened, qtbot):
    window = opened
    doc = window.doc
    image, labels = doc.image, doc.labels
    hold = HoldTheWorker()
    window.jobs.submit(JobRequest("hold the worker", hold))
    x, y = inner_pixel(labels, 3)
    drag(window.canvas, [(x, y), (x - 30, y - 10), (x - 60, y - 20)])
    job = window.jobs.active("edit")
    assert job, window.message_text()
    moves = job[0].request.task.request.moves
    assert moves[0].item == 3
    expected = partition.move_items(labels, list(moves))
    # The new layout shows while the edit still waits for the worker: the preview is
    # worked out on its own thread, not behind the jobs and not on the UI thread.
    wait_until(lambda: window.canvas.previewing, 30, "the move's preview")
    assert job[0].state is JobState.QUEUED
    np.testing.assert_array_equal(window.canvas.shown_labels(), expected)
    hold.release.set()
    wait_idle(window, 300)
    assert not window.canvas.previewing
    np.testing.assert_array_equal(doc.labels, expected)
    assert doc.image is not image
    window.act_undo.trigger()
    assert doc.image is image and doc.labels is labels


def test_dragging_two_selected_items_moves_both_in_one_edit(opened):
    window = opened
    doc = window.doc
    labels = doc.labels
    click(window.canvas, *inner_pixel(labels, 2))
    click(window.canvas, *inner_pixel(labels, 3), modifiers=Qt.KeyboardModifier.ControlModifier)
    x, y = inner_pixel(labels, 3)
    drag(window.canvas, [(x, y), (x - 30, y - 10), (x - 60, y - 20)])
    job = window.jobs.active("edit")
    assert job, window.message_text()
    moves = job[0].request.task.request.moves
    assert [m.item for m in moves] == [2, 3] and moves[0].dx == moves[1].dx
    wait_idle(window, 300)
    np.testing.assert_array_equal(doc.labels, partition.move_items(labels, list(moves)))
    assert doc.undo.undoText() == f"Move {doc.item_name(2)} and {doc.item_name(3)}"


def test_alt_drag_copies_an_item_where_it_is_dropped_and_selects_the_copy(opened):
    window = opened
    doc = window.doc
    image, labels, n = doc.image, doc.labels, len(doc.items)
    name = doc.item_name(3)
    hold = HoldTheWorker()
    window.jobs.submit(JobRequest("hold the worker", hold))
    x, y = inner_pixel(labels, 3)
    alt = Qt.KeyboardModifier.AltModifier
    drag(window.canvas, [(x, y), (x - 30, y - 10), (x - 60, y - 20)], modifiers=alt)
    job = window.jobs.active("edit")
    assert job, window.message_text()
    request = job[0].request.task.request
    assert request.kind == "duplicate" and [m.item for m in request.moves] == [3]
    expected = partition.copy_items(labels, list(request.moves), n)
    wait_until(lambda: window.canvas.previewing, 30, "the copy's preview")
    np.testing.assert_array_equal(window.canvas.shown_labels(), expected)
    hold.release.set()
    wait_idle(window, 300)
    np.testing.assert_array_equal(doc.labels, expected)
    assert len(doc.items) == n + 1 and doc.item_name(n) == f"{name} copy"
    assert (doc.labels == 3).any()  # the item stays where it was
    assert doc.selection == (n,)  # the copy, to drag on
    assert window.editing.prepared()  # the copy has its item's look: no preparing again
    assert doc.undo.undoText() == f"Duplicate {name}"
    assert doc.project.history[-1]["copies"] == [n]
    assert window.items_panel.list.count() == n + 1
    window.act_undo.trigger()
    assert doc.image is image and doc.labels is labels and len(doc.items) == n


def test_copies_asked_back_to_back_both_land_the_later_after_the_earlier(opened):
    """Ctrl+D puts a copy beside the item; an Alt+drag asked while it waits is made from
    the picture before that copy, and lands after it: it takes the next id and name, and
    both copies stay."""
    window = opened
    doc = window.doc
    labels, n = doc.labels, len(doc.items)
    name = doc.item_name(3)
    assert not window.act_duplicate.isEnabled()  # nothing selected yet
    click(window.canvas, *inner_pixel(labels, 3))
    hold = HoldTheWorker()
    window.jobs.submit(JobRequest("hold the worker", hold))
    window.canvas.setFocus()
    QTest.keyClick(window.canvas, Qt.Key.Key_D, Qt.KeyboardModifier.ControlModifier)
    window.act_duplicate.trigger()  # the same copy again, from the same picture: refused
    assert "The copy is selected when it lands; Ctrl+D then copies it on" in window.message_text()
    x, y = inner_pixel(labels, 3)
    alt = Qt.KeyboardModifier.AltModifier
    drag(window.canvas, [(x, y), (x, y + 20), (x, y + 40)], modifiers=alt)
    jobs = window.jobs.active("edit")
    assert len(jobs) == 2, window.message_text()
    second = jobs[1].request.task.request.moves  # 40 pixels down, or snapped near there
    hold.release.set()
    wait_idle(window, 300)
    assert [doc.item_name(k) for k in (n, n + 1)] == [f"{name} copy", f"{name} copy 2"]
    assert (doc.labels == n).any() and (doc.labels == n + 1).any() and (doc.labels == 3).any()
    history = doc.project.history
    assert [h["copies"] for h in history[-2:]] == [[n], [n + 1]]
    assert history[-1].get("laid_over") is True
    # the first copy lies beside the item, where the picture has room
    box = partition.item_bbox(labels, 3)
    dx, dy = partition.copy_offset(box, labels.shape)
    ys, xs = np.nonzero(doc.labels == n)
    assert (xs.min(), ys.min()) == (box[0] + dx, box[1] + dy)
    # the second, laid over the first, is the item's shape where the drag let it go
    assert abs(second[0].dx) <= 6 and abs(second[0].dy - 40) <= 6
    moved = partition.copy_items(labels, list(second), n) == n
    np.testing.assert_array_equal(doc.labels == n + 1, moved)


def test_an_edit_asked_while_a_nudge_waits_comes_after_its_move_and_undo_drops_it(opened):
    window = opened
    doc = window.doc
    canvas = window.canvas
    canvas.set_screen_zoom(1.0)
    click(canvas, *inner_pixel(doc.labels, 3))
    canvas.setFocus()
    undo_count = doc.undo.count()
    QTest.keyClick(canvas, Qt.Key.Key_Right)
    QTest.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # takes them back
    assert not canvas.ghost.isVisible() and doc.undo.count() == undo_count
    assert not window.jobs.active("edit")
    hold = HoldTheWorker()
    window.jobs.submit(JobRequest("hold the worker", hold))
    QTest.keyClick(canvas, Qt.Key.Key_Right)
    QTest.keyClick(canvas, Qt.Key.Key_Right)
    QTest.keyClick(canvas, Qt.Key.Key_Delete)  # before the nudge's wait is over
    titles = [r.request.title for r in window.jobs.active("edit")]
    name = doc.item_name(3)
    assert titles == [f"Move {name}", f"Remove {name}"]
    assert window.jobs.active("edit")[0].request.task.request.moves[0].dx == 2.0
    hold.release.set()
    wait_idle(window, 300)
    # a move of an item that is not there (a nudge asked late) is refused in words
    window.editing.move_items((99,), 5.0, 0.0, 1.0)
    assert "There is no item 99" in window.message_text()
    assert not window.jobs.active("edit")
    # with edits to undo (Undo enabled), Ctrl+Z right after arrow presses still takes
    # back only them
    labels, count = doc.labels, doc.undo.count()
    click(canvas, *inner_pixel(labels, 2))
    canvas.setFocus()
    QTest.keyClick(canvas, Qt.Key.Key_Down)
    assert window.act_undo.isEnabled()
    QTest.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert doc.labels is labels and doc.undo.count() == count and not canvas.ghost.isVisible()
    canvas.end_nudge()
    assert not window.jobs.active("edit")


def test_a_turned_item_lands_turned_and_its_record_keeps_the_angle(opened):
    window = opened
    doc = window.doc
    labels = doc.labels
    window.editing.move_items((3,), 0.0, 0.0, 1.0, 30.0)  # what the handle's turn asks
    wait_idle(window, 300)
    expected = partition.move_items(labels, [partition.Move(3, angle=30.0)])
    np.testing.assert_array_equal(doc.labels, expected)
    assert doc.undo.undoText() == f"Turn {doc.item_name(3)}"
    assert doc.project.history[-1]["moves"] == [[3, 0.0, 0.0, 1.0, False, 30.0]]
    # two selected items turn as one group, about the middle of the box round both
    labels = doc.labels
    boxes = {k: doc.bbox(k) for k in (1, 2)}
    window.editing.move_items((1, 2), 0.0, 0.0, 1.0, 90.0)
    wait_idle(window, 300)
    expected = partition.move_items(labels, list(partition.group_moves(boxes, angle=90.0)))
    np.testing.assert_array_equal(doc.labels, expected)


def test_shift_h_flips_the_selected_items_as_a_group_and_undo_takes_it_back(opened):
    window = opened
    doc = window.doc
    image, labels = doc.image, doc.labels
    assert not window.act_flip.isEnabled()  # nothing selected yet
    window.editing.flip_selected()
    assert "Select the item to flip first" in window.message_text()
    click(window.canvas, *inner_pixel(labels, 2))
    click(window.canvas, *inner_pixel(labels, 3), modifiers=Qt.KeyboardModifier.ControlModifier)
    assert window.act_flip.isEnabled()
    hold = HoldTheWorker()
    window.jobs.submit(JobRequest("hold the worker", hold))
    window.canvas.setFocus()
    QTest.keyClick(window.canvas, Qt.Key.Key_H, Qt.KeyboardModifier.ShiftModifier)
    job = window.jobs.active("edit")
    assert job, window.message_text()
    moves = job[0].request.task.request.moves
    assert [(m.item, m.flip) for m in moves] == [(2, True), (3, True)]
    boxes = {k: partition.item_bbox(labels, k) for k in (2, 3)}
    expected = partition.move_items(labels, list(partition.flip_moves(boxes)))
    wait_until(lambda: window.canvas.previewing, 30, "the flip's preview")
    np.testing.assert_array_equal(window.canvas.shown_labels(), expected)
    hold.release.set()
    wait_idle(window, 300)
    np.testing.assert_array_equal(doc.labels, expected)
    names = f"{doc.item_name(2)} and {doc.item_name(3)}"
    assert doc.undo.undoText() == f"Flip {names}"
    assert doc.project.history[-1]["moves"][0][4] is True
    window.act_undo.trigger()
    assert doc.image is image and doc.labels is labels
    # Shift+V: top to bottom, as one group
    QTest.keyClick(window.canvas, Qt.Key.Key_V, Qt.KeyboardModifier.ShiftModifier)
    wait_idle(window, 300)
    upside = partition.move_items(labels, list(partition.flip_moves(boxes, vertical=True)))
    np.testing.assert_array_equal(doc.labels, upside)
    assert doc.undo.undoText() == f"Flip {names} vertically"


def test_a_move_off_the_picture_is_refused_by_its_preview_at_once(opened):
    window = opened
    doc = window.doc
    image, labels, undo_count = doc.image, doc.labels, doc.undo.count()
    hold = HoldTheWorker()
    window.jobs.submit(JobRequest("hold the worker", hold))
    window.editing.move_items((3,), 100000.0, 0.0, 1.0)
    record = window.jobs.active("edit")[0]
    # Refused while the worker is still busy: the edit does not wait its turn to fail.
    wait_until(lambda: "outside the picture" in window.message_text(), 30, "the refusal")
    assert record.state is JobState.CANCELLING
    assert not window.canvas.previewing
    hold.release.set()
    wait_idle(window, 120)
    assert record.state is JobState.CANCELLED
    assert "outside the picture" in window.message_text()  # not "Cancelled: ..."
    assert doc.image is image and doc.labels is labels and doc.undo.count() == undo_count


def test_a_preview_that_breaks_costs_only_the_preview(opened, monkeypatch, caplog):
    window = opened
    doc = window.doc
    labels = doc.labels

    def broken(*_args):
        raise KeyError("a bug in the sketch")

    monkeypatch.setattr("ui.editing.move_preview", broken)
    window.editing.move_items((3,), -20.0, -10.0, 1.0)
    wait_idle(window, 300)
    expected = partition.move_items(labels, [partition.Move(3, -20.0, -10.0)])
    np.testing.assert_array_equal(doc.labels, expected)  # the edit itself landed
    assert window.message_bar.level != "error" or not window.message_text()
    assert "goes on without it" in caplog.text


def test_delete_removes_the_selected_item_and_undo_brings_it_back(opened, monkeypatch):
    window = opened
    doc = window.doc
    image, labels = doc.image, doc.labels
    click(window.canvas, *inner_pixel(labels, 3))
    window.canvas.setFocus()
    counted = count_where(monkeypatch)
    QTest.keyClick(window.canvas, Qt.Key.Key_Delete)
    assert window.jobs.active("edit"), window.message_text()
    wait_idle(window, 300)
    # The item list's pixel counts come with the result: the UI thread counts nothing.
    assert threading.main_thread() not in counted
    np.testing.assert_array_equal(doc.counts, np.bincount(doc.labels.ravel(), minlength=4))
    assert not (doc.labels == 3).any()
    assert 3 not in doc.visible_items()
    assert window.items_panel.list.count() == 3
    keep = outside_edit(labels == 3, window.settings.edge)
    np.testing.assert_array_equal(doc.image[keep], image[keep])
    # Saved with its history: reopening gives the same picture, items and earlier picture.
    assert window.save_project(doc.folder)
    again = Project.load(doc.folder)
    np.testing.assert_array_equal(again.image, doc.image)
    np.testing.assert_array_equal(again.labels, doc.labels)
    assert again.history[-1]["kind"] == "remove"
    np.testing.assert_array_equal(again.snapshot(again.history[-1])[0], image)
    window.act_undo.trigger()
    assert doc.image is image and doc.labels is labels
    assert window.items_panel.list.count() == 4


def test_with_several_items_selected_enter_regenerates_them_all_and_delete_removes_them_all(
    opened,
):
    window = opened
    doc = window.doc
    image, labels = doc.image, doc.labels
    click(window.canvas, *inner_pixel(labels, 2))
    click(window.canvas, *inner_pixel(labels, 3), modifiers=Qt.KeyboardModifier.ControlModifier)
    assert doc.selection == (2, 3)
    hint = window.items_panel.prompt_hint.text()
    for words in ("regenerates the others", "arrow keys move them all", "Delete removes them."):
        assert words in hint
    field = window.items_panel.prompt_edit
    field.setFocus()
    field.clear()
    QTest.keyClicks(field, "a red bag")
    QTest.keyClick(field, Qt.Key.Key_Return)
    wait_idle(window, 300)
    both = np.isin(labels, [2, 3])
    keep = outside_edit(both, window.settings.edge)
    np.testing.assert_array_equal(doc.image[keep], image[keep])
    for item in (2, 3):  # the ball was regenerated with the bag, not left as it was
        assert (doc.image[labels == item] != image[labels == item]).any(), NAMES[item]
    assert doc.items[2].prompt == "a red bag" and doc.items[3].prompt == ""
    assert doc.project.history[-1]["extra_active"] == [3]
    window.canvas.setFocus()
    QTest.keyClick(window.canvas, Qt.Key.Key_Return)  # Done
    edited = doc.image
    doc.select((3, 2))
    QTest.keyClick(window.canvas, Qt.Key.Key_Delete)
    assert window.jobs.active("edit"), window.message_text()
    assert "Remove ball and bag" in [r.request.title for r in window.jobs.jobs.values()]
    wait_idle(window, 300)
    assert not np.isin(doc.labels, [2, 3]).any()
    assert doc.project.history[-1]["also"] == [2]
    window.act_undo.trigger()
    assert doc.image is edited and doc.labels is labels


def test_redraw_paints_the_pixels_of_reshaped_items_as_their_new_item(opened):
    window = opened
    doc = window.doc
    image, labels = doc.image, doc.labels
    button = window.items_panel.redraw_button
    assert not window.act_redraw.isEnabled() and not button.isEnabled()
    window.editing.redraw()  # nothing reshaped: a sentence, no job
    assert "No item was reshaped" in window.message_text() and not window.jobs.active()
    # Brush the bag out over the wall: the items change, the picture does not yet.
    brush_at_bag_edge(window, labels, [(-5, 20)])
    brushed = doc.labels
    changed = brushed != labels
    assert changed.any() and doc.image is image
    assert window.act_redraw.isEnabled() and button.isEnabled()
    assert "Redraw (Ctrl+R)" in window.prepare_panel.status.text()
    button.click()
    assert window.jobs.active("edit")
    wait_idle(window, 300)
    # The brushed pixels were painted again; the items stay as brushed and every pixel away
    # from the stroke is the picture's own.
    assert doc.labels is brushed and (doc.image[changed] != image[changed]).any()
    keep = outside_edit(changed, window.settings.edge)
    np.testing.assert_array_equal(doc.image[keep], image[keep])
    assert doc.project.history[-1]["kind"] == "redraw"
    assert not window.act_redraw.isEnabled() and not button.isEnabled()
    window.act_undo.trigger()  # the redraw: reshaped again, not yet painted
    assert doc.image is image and doc.labels is brushed and window.act_redraw.isEnabled()
    window.act_undo.trigger()  # the stroke
    assert doc.labels is labels and not window.act_redraw.isEnabled()
    # Saved reshaped, closed and opened again: what is left to redraw is remembered.
    window.act_redo.trigger()
    assert window.save_project(doc.folder, wait=True) and window.close_picture()
    assert window.open_path(doc.folder)
    wait_idle(window)
    again = window.doc
    np.testing.assert_array_equal(again.labels, brushed)
    assert again.project.drawn is not None and window.act_redraw.isEnabled()
    window.act_redraw.trigger()
    wait_idle(window, 300)
    assert (again.image[changed] != image[changed]).any() and again.project.drawn is None
    assert window.save_project(again.folder, wait=True)
    assert "drawn" not in json.loads((again.folder / "project.json").read_text())


def test_cancel_a_running_edit_is_confirmed_and_changes_nothing(opened):
    window = opened
    doc = window.doc
    window.apply_settings(dataclasses.replace(window.settings, steps=400, candidates=1))
    image, labels = doc.image, doc.labels
    window.editing.text_edit(2, "a red bag")
    record = window.jobs.active("edit")[0]
    wait_until(
        lambda: record.progress is not None and record.progress.step >= 1,
        120,
        "the edit to start sampling",
    )
    card = window.jobs_panel.cards[record.request.id]
    card.cancel_button.click()
    assert record.state is JobState.CANCELLING
    wait_until(lambda: record.state is JobState.CANCELLED, 120, "the worker to confirm")
    assert record.progress.step < 400
    assert doc.image is image and doc.labels is labels
    assert doc.undo.count() == 0
    assert "Cancelled" in window.message_text()
    assert card.state.text() == "Cancelled"


def test_an_edit_undone_back_to_while_it_ran_lands_as_made_though_undo_moved_pictures_out(
    opened, tmp_path
):
    window = opened
    doc = window.doc
    tight_undo_budget(doc, tmp_path / "scratch")
    window.apply_settings(dataclasses.replace(window.settings, steps=200, candidates=1))
    base = doc.state()
    window.editing.text_edit(2, "a white handbag")
    assert any(s.image is base.image for s in doc.pinned())  # the edit under way holds it
    land_edits(doc, 4)  # more than the budget keeps: earlier pictures go to files
    assert not any(spill.file_backed(a) for a in (base.image, base.labels))
    while doc.undo.canUndo() and doc.state().image is not base.image:
        window.act_undo.trigger()
    assert doc.state().image is base.image and doc.state().labels is base.labels
    wait_idle(window, 300)
    record = doc.project.history[-1]
    assert record["kind"] == "text" and not record.get("laid_over"), record
    assert any(s.image is base.image for s in doc.pinned())  # its results on show hold it
    window.editing.close_candidates()  # Done
    assert not any(s.image is base.image for s in doc.pinned())


def test_closing_a_picture_stops_its_jobs_and_takes_them_off_the_activity_list(opened):
    window = opened
    window.editing.text_edit(2, "a white handbag")
    wait_idle(window, 300)
    done = list(window.jobs_panel.cards)
    assert len(done) == 1 and window.jobs.jobs[done[0]].state is JobState.DONE
    window.apply_settings(dataclasses.replace(window.settings, steps=400, candidates=1))
    window.editing.text_edit(2, "a red bag")
    running = window.jobs.active("edit")[0]
    assert window.jobs_panel.clear_button.isEnabled()  # the finished edit can go
    cancelled, removed = [], []
    window.jobs.cancelled.connect(cancelled.append)
    window.jobs.removed.connect(removed.append)
    assert window.close_picture()
    assert removed == done  # the finished edit goes at once
    assert running.state is JobState.CANCELLING and running.request.id in window.jobs_panel.cards
    wait_idle(window, 300)
    # The running edit stopped, then left the list; nothing else is listed.
    assert cancelled == [running.request.id] and removed == [*done, running.request.id]
    assert not window.jobs.jobs and not window.jobs_panel.cards
    assert window.jobs_panel.summary.text() == "No jobs"
    assert not window.jobs_panel.clear_button.isEnabled()  # nothing left to clear


def test_swap_an_item_from_a_reference_photo(window, tmp_path):
    photo = tmp_path / "scene.png"
    labels = write_synthetic_photo(photo)
    window.open_path(photo)
    wait_idle(window)
    doc = window.doc
    doc.set_partition(labels, list(NAMES), "Known items")
    ref_photo = tmp_path / "reference.png"
    write_synthetic_photo(ref_photo, 200, 260)
    assert window.reference_photo.open(ref_photo)
    wait_idle(window)
    ref = window.editing.reference
    assert len(ref.visible_items()) >= 2
    assert window.reference_panel.items.count() == len(ref.visible_items())
    window.editing.prepare()  # jointly, since the reference is open
    wait_idle(window, 300)
    assert engine.prepared_with(doc.project, ref.project)
    doc.set_prompt(2, "a white handbag")  # typed before: no longer its look once swapped
    image = doc.image
    ref_item = ref.visible_items()[-1]
    # Drop the reference item (as its list drags it) onto the bag.
    md = QMimeData()
    md.setData(REF_ITEM_MIME, str(ref_item).encode())
    pos = QPointF(view_point(window.canvas, *inner_pixel(labels, 2)))
    event = QDropEvent(
        pos, Qt.DropAction.CopyAction, md, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    window.canvas.dropEvent(event)
    job = window.jobs.active("edit")
    assert job, window.message_text()
    assert job[0].request.task.request.reference_item == ref_item
    wait_idle(window, 300)
    assert doc.image is not image
    record = doc.project.history[-1]
    assert record["kind"] == "swap" and record["reference"] == "reference.png"
    # the record `dedit edit swap --apply` writes: one key for the reference's item
    assert record["reference_item"] == ref_item and "ref_item" not in record
    assert doc.items[2].prompt == ""
    keep = outside_edit(labels == 2, window.settings.edge)
    np.testing.assert_array_equal(doc.image[keep], image[keep])
    # the list says how the bag looks now, and so does the prompt's hint
    from ui.items_panel import ITEM_ROLE, PROMPT_ROLE

    looks = f"looks like “{ref.item_name(ref_item)}” from reference.png"
    rows = window.items_panel.list
    row = next(rows.item(i) for i in range(rows.count()) if rows.item(i).data(ITEM_ROLE) == 2)
    assert row.data(PROMPT_ROLE) == looks
    doc.select([2])
    assert f"It {looks}; “*” in the prompt stands for that." in (
        window.items_panel.prompt_hint.text()
    )
    # undone, the bag has its learned look again
    doc.undo.undo()
    row = next(rows.item(i) for i in range(rows.count()) if rows.item(i).data(ITEM_ROLE) == 2)
    assert row.data(PROMPT_ROLE) == "a white handbag"


def _found_as_one_item(monkeypatch):
    """Find items that splits every picture into one item: a segmenter that splits the
    reference otherwise than when it was prepared (other settings, a newer version)."""
    from dedit_app.segment.base import Segmentation
    from ui.tasks import SegmentAuto

    def run(self, ctx, cancel):
        yield from ()
        return Segmentation(np.zeros(self.image.shape[:2], np.int32), ("everything",))

    monkeypatch.setattr(SegmentAuto, "run", run)


def test_a_reference_photo_opened_again_has_the_items_it_was_prepared_with(
    window, tmp_path, monkeypatch
):
    photo, ref_photo = tmp_path / "scene.png", tmp_path / "reference.png"
    labels = write_synthetic_photo(photo)
    write_synthetic_photo(ref_photo, 200, 260)
    window.open_path(photo)
    wait_idle(window)
    window.doc.set_partition(labels, list(NAMES), "Known items")
    assert window.reference_photo.open(ref_photo)
    wait_idle(window)
    learned = window.editing.reference.labels
    names = [item.name for item in window.editing.reference.items]
    assert len(names) >= 2
    window.editing.prepare()  # jointly
    wait_idle(window, 300)
    assert window.save_project(tmp_path / "scene.dedit", wait=True)
    window.reference_photo.close()
    _found_as_one_item(monkeypatch)
    for order in ("reference after the project", "project after the reference"):
        if order == "project after the reference":
            assert window.close_picture()
            window.reference_photo.close()
            assert window.reference_photo.open(ref_photo)
            wait_idle(window)
            assert len(window.editing.reference.items) == 1  # found afresh: split otherwise
            assert window.open_path(tmp_path / "scene.dedit")
        else:
            assert window.reference_photo.open(ref_photo)
        wait_idle(window)
        ref = window.editing.reference
        np.testing.assert_array_equal(ref.labels, learned, err_msg=order)
        assert [item.name for item in ref.items] == names
        assert engine.prepared_with(window.doc.project, ref.project), order
        assert "as your photo was prepared with them" in window.reference_panel.status.text()


def test_a_saved_project_with_changes_prepared_again_with_a_reference_can_swap(opened, tmp_path):
    # The new weights wait for the save; the old file was read instead ("not this
    # project's"): Not prepared, every edit and the swap refused until a save.
    window = opened
    window.doc.rename(1, "desk")  # an unsaved change: the preparation waits with it
    ref_photo = tmp_path / "reference.png"
    write_synthetic_photo(ref_photo, 200, 260)
    assert window.reference_photo.open(ref_photo)
    wait_idle(window)
    window.editing.prepare()
    wait_idle(window, 300)
    assert window.doc.dirty and window.editing.prepared(), window.prepare_panel.status.text()
    assert engine.prepared_with(window.doc.project, window.editing.reference.project)
    assert window.prepare_panel.title.text() == "Prepared"


def test_prepare_waits_for_the_reference_photos_items(window, tmp_path):
    # Prepared while the reference's items were still being found, it was learned as one
    # item, its whole photo: the swap then said "not prepared together" after minutes.
    open_scene(window, tmp_path)
    ref_photo = tmp_path / "reference.png"
    write_synthetic_photo(ref_photo, 200, 260)
    assert window.reference_photo.open(ref_photo)
    assert window.reference_panel.status.text() == "Finding items…"
    window.editing.prepare()
    assert window.editing.prepare_job is None and not window.jobs.active("prepare")
    assert "items are still being found; prepare once they are listed" in window.message_text()
    cancelled = window.jobs.active("segment")[0]
    window.jobs.cancel(cancelled.request.id)  # from the Jobs panel: it stays one item
    wait_idle(window)
    assert window.reference_panel.status.text() == (
        "1 item. Prepare (Ctrl+P) to learn both photos together, then drag an item onto your photo."
    )
    assert window.reference_photo.open(ref_photo)  # found this time
    wait_idle(window)
    ref = window.editing.reference
    window.editing.prepare()
    wait_idle(window, 300)
    assert engine.prepared_with(window.doc.project, ref.project)


def test_a_reference_closed_or_replaced_stops_finding_its_items(window, tmp_path):
    # Its items went unused, yet the job ran on, ahead of the jobs queued after it.
    open_scene(window, tmp_path)
    first, second = tmp_path / "first.png", tmp_path / "second.png"
    write_synthetic_photo(first, 200, 260)
    write_synthetic_photo(second, 120, 160)
    assert window.reference_photo.open(first)
    finding = window.jobs.active("segment")
    assert window.reference_photo.open(second)
    assert finding[0].cancel.cancelled and finding[0].retired
    replacing = window.jobs.active("segment")[-1]
    window.reference_photo.close()
    assert replacing.cancel.cancelled
    wait_idle(window)
    assert not window.jobs.jobs.get(replacing.request.id)  # off the Jobs panel once ended
    assert window.reference_photo.open(first)  # nothing left over from before
    wait_idle(window)
    assert len(window.editing.reference.visible_items()) > 1


def test_a_reference_whose_items_wait_for_the_model_says_what_they_wait_for(
    window, tmp_path, monkeypatch
):
    """With a segmenter that needs the model (SAM), the reference's items are found after
    the job on the model's worker: "Finding items…" stayed for a preparation's minutes."""
    from test_ui_parts import Held

    from ui.worker import JobRequest

    open_scene(window, tmp_path)
    preparing = Held("prepared")
    window.jobs.submit(JobRequest("Prepare project", preparing, kind="prepare"))
    monkeypatch.setattr(window.segmenting, "backend", lambda *_: ("sam", ()))
    photo = tmp_path / "reference.png"
    write_synthetic_photo(photo, 120, 160)
    assert window.reference_photo.open(photo)
    wait_until(lambda: window.jobs.active("segment"), 10, "the reference's Find items")
    assert window.reference_panel.status.text() == (
        "Its items are found when “Prepare project” is done: one job at a time uses the model."
    )
    window.reference_photo.close()
    preparing.release.set()
    wait_idle(window)


def test_the_reference_panel_says_what_is_true_now_and_what_to_do_next(
    window, tmp_path, prepared_bundle
):
    open_scene(window, tmp_path)
    reference = tmp_path / "reference.dedit"
    shutil.copytree(prepared_bundle, reference)
    window.files.aside_from = 0  # read on the files thread, as a large one is
    assert window.reference_photo.open(reference)
    assert window.reference_panel.status.text() == "Opening reference.dedit…"
    wait_idle(window)
    prepare = "4 items. Prepare (Ctrl+P) to learn both photos together, then drag an item"
    assert window.reference_panel.status.text().startswith(prepare)  # was "Opening…" still
    window.editing.prepare()
    wait_idle(window, 300)
    drag_one = "drag one onto your photo to swap it in."
    assert window.reference_panel.status.text() == f"4 items, prepared with your photo: {drag_one}"
    assert window.save_project(tmp_path / "scene.dedit", wait=True)
    window.reference_photo.close()
    assert window.reference_photo.open(tmp_path / "scene.png")  # the reference's own photo
    wait_idle(window)
    kept = f"4 items, as your photo was prepared with them: {drag_one}"
    assert window.reference_panel.status.text() == kept
    other = tmp_path / "other.png"
    write_synthetic_photo(other, 100, 100)
    assert window.open_path(other)
    wait_idle(window)
    assert window.reference_panel.status.text().startswith(prepare)
    assert window.close_picture()
    assert window.reference_panel.status.text() == (
        "4 items. Open your photo, prepare the two together (Ctrl+P), then drag an item onto it."
    )


_WATCH_TORCH = """
import dataclasses, importlib.abc, os, sys, threading
from pathlib import Path

first_import = {}


class Watch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        # (dedit_app.finetune's spec is looked up, not imported, on the UI thread)
        if name in ("torch", "dedit_app.sampler"):
            first_import.setdefault(name, threading.current_thread().name)
        return None


sys.meta_path.insert(0, Watch())
from ui import engine
from ui.testing import make_window

folder, project, model = sys.argv[1:4]
w = make_window(Path(folder))
w.apply_settings(dataclasses.replace(w.settings, model=model, device="cpu"))
assert w.open_path(Path(project))
assert w.editing.prepared(), w.prepare_panel.status.text()
engine._loaded()
task = engine.edit_task(w.doc.project, w.settings, "text", item=1, prompt="a red ball")
print(first_import.get("torch"), first_import.get("dedit_app.sampler"), type(task).__name__)
sys.stdout.flush()
os._exit(0)
"""


def test_a_fresh_editor_loads_torch_ahead_on_a_thread_of_its_own(
    prepared_bundle, tiny_sdxl_path, tmp_path
):
    # Reading a prepared project's metadata imported torch on the UI thread (3 s frozen at
    # open on a 2-core machine), and so did the first Prepare (5 s) and edit (3 s).
    import os
    import subprocess
    import sys

    copy = tmp_path / "scene.dedit"
    shutil.copytree(prepared_bundle, copy)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    out = subprocess.run(
        [sys.executable, "-c", _WATCH_TORCH, str(tmp_path), str(copy), str(tiny_sdxl_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["dedit-engine-import", "dedit-engine-import", "EditTask"]


def test_the_editor_quits_only_once_the_engine_import_under_way_is_done(monkeypatch, qtbot):
    """Quit within seconds of starting, the interpreter tore torch's half-imported modules
    down, and torch's finalizers printed errors: main() waits for the import first."""
    import threading
    import time
    from types import SimpleNamespace

    from PySide6.QtWidgets import QApplication, QWidget

    from ui import app, engine, mainwindow

    importing = threading.Thread(target=time.sleep, args=(0.3,), daemon=True)
    monkeypatch.setattr(engine, "_loading", importing)
    importing.start()
    engine.finish_loading()
    assert not importing.is_alive()

    class Window(QWidget):  # main()'s window, without the user's own settings
        def __init__(self, settings) -> None:
            super().__init__()
            self.recovery = SimpleNamespace(offer=lambda: None)

    order: list[str] = []
    monkeypatch.setattr(mainwindow, "MainWindow", Window)
    monkeypatch.setattr(app, "close_on_interrupt", lambda window: None)
    monkeypatch.setattr(QApplication, "exec", lambda self: order.append("quit") or 0)
    monkeypatch.setattr(engine, "finish_loading", lambda: order.append("import done"))
    assert app.main([]) == 0
    assert order == ["quit", "import done"]
